"""Name resolution: the Resolver interface and the registry of resolvers by
target scheme.

A resolver is sans-IO.  It either knows a target's addresses outright
(``addresses()``: ipv4, ipv6, unix, unix-abstract, passthrough, and dns
targets that name an IP literal) or names what the facade must look up
(``lookup()`` -> (host, port), which the facade resolves with the system
resolver, getaddrinfo, and which the plane asks again to re-resolve).  It
never does I/O itself.

Applications add a scheme with ``grpcpy.experimental.register_resolver``::

    class Fleet(Resolver):
        def addresses(self):                 # fleet:///blue -> its machines
            return [Address.ip("10.0.0.7", 50051), Address.ip("10.0.0.8", 50051)]

    register_resolver("fleet", Fleet)
    channel = grpcpy.insecure_channel("fleet:///blue")

A target of a registered scheme is parsed as ``scheme:[//authority/]path``;
the resolver gets the :class:`~grpcpy._channel.target.Target` (``path``,
``dns_server`` holding the URI authority, ``target`` the whole string) and
the :authority of its calls is the path without its leading '/'.
"""

import re

from grpcpy._channel.target import Address, is_ip_literal

__all__ = ["Resolver", "register_resolver", "resolver_for", "registered_schemes"]


class Resolver:
    """Turns one channel's target into addresses; made per channel by the
    factory registered for the target's scheme, ``factory(target)``.

    Override ``addresses()`` to give the addresses without a lookup, or
    ``lookup()`` (and ``addresses()`` returning None) to have the facade
    resolve a host name; ``lookup_done`` may rewrite what the lookup found.
    """

    def __init__(self, target):
        self.target = target

    def addresses(self):
        """The addresses, known without any I/O (asked once, when the channel
        is made), or None when they come from ``lookup()``."""
        return None

    def lookup(self):
        """(host, port) for the facade to look up; asked when the channel
        first needs addresses and on every re-resolution."""
        raise NotImplementedError("%s gives neither addresses nor a lookup" % type(self).__name__)

    def lookup_done(self, addresses):
        """The addresses to use from a lookup's answer."""
        return addresses


class DnsResolver(Resolver):
    """dns: the facade's system resolver, unless the host is an IP literal."""

    def addresses(self):
        if is_ip_literal(self.target.host):
            return [Address.ip(self.target.host, self.target.port)]
        return None

    def lookup(self):
        return self.target.host, self.target.port


class StaticResolver(Resolver):
    """ipv4, ipv6, unix, unix-abstract: the addresses are in the target."""

    def addresses(self):
        return list(self.target.addresses)


class PassthroughResolver(Resolver):
    """passthrough: one address whose host the facade's connect resolves."""

    def addresses(self):
        t = self.target
        return [Address("inet6" if ":" in t.host else "inet", t.host, t.port)]


_FACTORIES = {
    "dns": DnsResolver,
    "passthrough": PassthroughResolver,
    "ipv4": StaticResolver,
    "ipv6": StaticResolver,
    "unix": StaticResolver,
    "unix-abstract": StaticResolver,
}
_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.\-]*\Z")


def register_resolver(scheme, factory):
    """Resolve targets ``scheme:...`` with ``factory(target)`` -> a Resolver.
    Channels made afterwards use it; a built-in scheme can be replaced."""
    if not isinstance(scheme, str) or not _SCHEME_RE.match(scheme.lower()):
        raise ValueError("invalid URI scheme %r" % (scheme,))
    if not callable(factory):
        raise TypeError("a resolver factory is called with the target and returns a Resolver")
    _FACTORIES[scheme.lower()] = factory


def registered_schemes():
    return _FACTORIES.keys()


def resolver_for(target):
    """The Resolver of a parsed target."""
    resolver = _FACTORIES[target.scheme](target)
    if not isinstance(resolver, Resolver):
        raise TypeError("the resolver factory of %r returned %r, not a Resolver" % (target.scheme, resolver))
    return resolver
