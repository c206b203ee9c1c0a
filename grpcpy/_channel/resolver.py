"""Name resolution: the Resolver interface and the registry of resolvers by
target scheme.

A resolver works one of three ways:

- it knows a target's addresses outright (``addresses()``: ipv4, ipv6,
  unix, unix-abstract, passthrough, and dns targets that name an IP literal);
- it names what the facade must look up (``lookup()`` -> (host, port),
  which the facade resolves, and which the plane asks again to re-resolve);
  the resolver itself does no I/O;
- it pushes: ``start(listener)`` is called once, when the channel first
  needs addresses, and the resolver calls ``listener.update(addresses,
  service_config=None)`` whenever it learns something (from any thread, at
  any time: a registry watch, a file, a timer), ``listener.error(message)``
  when it cannot resolve; ``resolve_now()`` is a hint that the channel lost
  a connection and wants fresh news; ``close()`` comes with the channel's.

Applications add a scheme with ``grpcpy.experimental.register_resolver``::

    class Fleet(Resolver):
        def addresses(self):                 # fleet:///blue -> its machines
            return [Address.ip("10.0.0.7", 50051), Address.ip("10.0.0.8", 50051)]

    class Watched(Resolver):                 # addresses that change
        def start(self, listener):
            registry.watch(self.target.path, lambda hosts: listener.update(
                [Address.ip(h, 50051, weight=w) for h, w in hosts]))

    register_resolver("fleet", Fleet)
    channel = grpcpy.insecure_channel("fleet:///blue")

A target of a registered scheme is parsed as ``scheme:[//authority/]path``;
the resolver gets the :class:`~grpcpy._channel.target.Target` (``path``,
``dns_server`` holding the URI authority, ``target`` the whole string) and
the :authority of its calls is the path without its leading '/'.
"""

import re

from grpcpy._channel.target import Address, is_ip_literal

__all__ = ["Resolver", "DnsResolver", "register_resolver", "resolver_for", "registered_schemes"]


class Resolver:
    """Turns one channel's target into addresses; made per channel by the
    factory registered for the target's scheme, ``factory(target)``.

    Override ``addresses()`` to give the addresses without a lookup, or
    ``lookup()`` (and ``addresses()`` returning None) to have the facade
    resolve a host name; ``lookup_done`` may rewrite what the lookup found.
    """

    def __init__(self, target):
        self.target = target

    def start(self, listener):
        """Override to push addresses (see the module docstring): keep
        ``listener`` and call ``listener.update(addresses,
        service_config=None)`` / ``listener.error(message)`` at any time,
        from any thread."""
        raise NotImplementedError

    def resolve_now(self):
        """A pushing resolver's hint: the channel wants fresh addresses."""

    def close(self):
        """The channel is closing: stop pushing."""

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

    def service_config(self):
        """The target's service config, asked after ``addresses()`` and after
        every lookup: None (the resolver has none: the channel uses its
        ``grpc.service_config``), JSON text, or a dict decoded from it.  A
        config that does not validate (or an exception raised here) leaves
        the channel on its previous config; with none before and no
        ``grpc.service_config``, the channel's calls fail UNAVAILABLE until a
        good one comes (gRFC A21)."""
        return None


class DnsResolver(Resolver):
    """dns: the system resolver, or the DNS server the target names
    (dns://server/name), unless the host is an IP literal.  Its service
    config comes from the name's TXT records (gRFC A2), which the facade
    looks up with the addresses when the plane asks for them
    (``ChannelPlane.lookup_txt``) and the plane chooses from."""

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
