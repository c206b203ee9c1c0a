"""Channel targets: what a target string names, per gRPC's naming doc
(doc/naming.md), and the addresses a resolver hands to the plane.

Parsing is syntax only: which scheme resolves how is the resolvers' business
(resolver.py), and a scheme registered there is parsed here as a plain URI.
"""

import ipaddress
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import List, Mapping, Optional
from urllib.parse import unquote

__all__ = ["Address", "Target", "parse_target", "is_ip_literal"]


def _is_ipv4(host):
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _is_ipv6(host):
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Address:
    """One place to connect to.

    ``family`` is 'inet', 'inet6', 'unix' (or 'memory': a grpcpy.testing
    server in this process, named by ``path``).  inet/inet6 addresses have
    ``host`` (an IP literal without brackets; for passthrough targets an
    unresolved host name) and ``port``; unix addresses have ``path``, which
    starts with a NUL character for Linux abstract sockets.

    ``attributes``: what a resolver tells the balancers about the address
    (read-only mapping; by convention "weight", "hash_key", "locality").
    They are not part of the address's identity: the same address with
    new attributes keeps its subchannel and connection.
    """
    family: str
    host: Optional[str] = None
    port: Optional[int] = None
    path: Optional[str] = None
    attributes: Mapping = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if type(self.attributes) is not MappingProxyType:
            object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    @classmethod
    def ip(cls, host, port, **attributes):
        """An inet or inet6 address from an IP literal (what a resolver
        returns), with balancer attributes."""
        return cls("inet6" if ":" in host else "inet", host, int(port), attributes=attributes)

    @classmethod
    def unix(cls, path, **attributes):
        return cls("unix", path=path, attributes=attributes)

    def with_attributes(self, **attributes):
        """This address with these attributes added (or replaced)."""
        merged = dict(self.attributes)
        merged.update(attributes)
        return Address(self.family, self.host, self.port, self.path, merged)

    def __str__(self):
        if self.family == "memory":      # grpcpy.testing's in-memory servers
            return "memory:" + self.path
        if self.family == "unix":
            if self.path.startswith("\0"):
                return "unix-abstract:" + self.path[1:]
            return "unix:" + self.path
        if self.family == "inet6":
            return "ipv6:[%s]:%d" % (self.host, self.port)
        if _is_ipv4(self.host):
            return "ipv4:%s:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)  # unresolved (passthrough) name


@dataclass(frozen=True)
class Target:
    """A parsed channel target (see :func:`parse_target`)."""
    scheme: str
    authority: str
    host: Optional[str] = None
    port: Optional[int] = None
    addresses: Optional[List[Address]] = None
    dns_server: Optional[str] = None   # the authority part of dns://server/name
    target: str = field(default="", compare=False)
    path: Optional[str] = None         # the URI path, for a registered scheme


_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)\Z", re.S)
_HOSTNAME_RE = re.compile(r"[^\s/?#@\[\]:%]+\Z")


def _bad(target, why):
    return ValueError("invalid target %r: %s" % (target, why))


def _parse_port(target, text, default_port):
    if text is None or text == "":
        return default_port
    if not text.isdigit() or not text.isascii():
        raise _bad(target, "bad port %r" % text)
    port = int(text)
    if not 0 < port < 65536:
        raise _bad(target, "port %d out of range 1..65535" % port)
    return port


def _split_host_port(target, text, default_port):
    """'host:port' | 'host' | '[v6]:port' | '[v6]' | bare v6 -> (host, port, bracketed)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _bad(target, "missing ']' in %r" % text)
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise _bad(target, "unexpected %r after ']'" % rest)
        port = rest[1:] if rest else None
        if not _is_ipv6(host):
            raise _bad(target, "bad IPv6 address %r" % host)
        return host, _parse_port(target, port, default_port), True
    if text.count(":") == 1:
        host, port = text.split(":")
    else:  # no colon, or a bare IPv6 literal (which then takes the default port)
        host, port = text, None
    if not host:
        raise _bad(target, "no host")
    return host, _parse_port(target, port, default_port), False


def _split_authority(target, rest):
    """'//authority/path' | 'path' -> (authority or None, path)."""
    if not rest.startswith("//"):
        return None, rest
    authority, slash, path = rest[2:].partition("/")
    if not slash:
        raise _bad(target, "no path after the authority (did you mean three slashes, "
                           "as in 'dns:///host:port'?)")
    return authority, path


def _parse_named(target, scheme, rest, default_port):
    """dns and passthrough targets: a host name (or literal) with an optional port."""
    authority, path = _split_authority(target, rest)
    if scheme == "passthrough" and authority:
        raise _bad(target, "passthrough targets take no authority")
    if not path:
        raise _bad(target, "no host")
    host, port, bracketed = _split_host_port(target, path, default_port)
    if not bracketed:
        if ":" in host:
            if not _is_ipv6(host):
                raise _bad(target, "bad IPv6 address %r" % host)
        elif not _HOSTNAME_RE.match(host):
            raise _bad(target, "bad host name %r" % host)
    header = path if ":" not in host or bracketed else "[%s]" % host
    return Target(scheme, header, host, port, None, authority or None, target)


def _parse_ip_list(target, scheme, rest, default_port):
    authority, path = _split_authority(target, rest)
    if authority:
        raise _bad(target, "%s targets take no authority" % scheme)
    if path.startswith("/"):
        path = path[1:]
    items = path.split(",")
    addresses = []
    for item in items:
        if not item:
            raise _bad(target, "empty address")
        if scheme == "ipv4":
            host, port, bracketed = _split_host_port(target, item, default_port)
            if bracketed or not _is_ipv4(host):
                raise _bad(target, "bad IPv4 address %r" % host)
            addresses.append(Address("inet", host, port))
        else:
            if item.startswith("["):
                host, port, _ = _split_host_port(target, item, default_port)
            else:
                host, port = item, default_port
                if not _is_ipv6(host):
                    raise _bad(target, "bad IPv6 address %r" % host)
            addresses.append(Address("inet6", host, port))
    return Target(scheme, items[0], None, None, addresses, None, target)


def _parse_unix(target, scheme, rest, default_port):
    authority, path = _split_authority(target, rest)
    if authority:
        raise _bad(target, "%s targets take no authority; an absolute path is written "
                           "'unix:/path' or 'unix:///path'" % scheme)
    if authority is not None:
        path = "/" + path  # unix:///abs/path
    path = unquote(path)
    if not path or (scheme == "unix" and path == "/"):
        raise _bad(target, "no path")
    if scheme == "unix-abstract":
        path = "\0" + path
    return Target(scheme, "localhost", None, None, [Address("unix", path=path)], None, target)


def _parse_uri(target, scheme, rest):
    """A scheme a user registered: ``scheme:[//authority/]path``.  The
    :authority header is the path without its leading '/', as gRPC does for
    resolvers it does not know; the resolver makes sense of the rest."""
    authority, path = _split_authority(target, rest)
    header = path.lstrip("/")
    if not header:
        raise _bad(target, "no path")
    return Target(scheme, header, None, None, None, authority or None, target, path)


_PARSERS = {
    "dns": _parse_named,
    "passthrough": _parse_named,
    "ipv4": _parse_ip_list,
    "ipv6": _parse_ip_list,
    "unix": _parse_unix,
    "unix-abstract": _parse_unix,
}


def parse_target(target, default_port=443):
    """Parse a channel target per gRPC's naming doc into a :class:`Target`.

    Forms: ``host[:port]``, ``[v6]:port``, ``dns:[//server/]host[:port]``,
    ``ipv4:a.b.c.d[:port][,...]``, ``ipv6:[v6][:port][,...]`` (or a bare v6
    literal without port), ``unix:path``, ``unix:///abs/path``,
    ``unix-abstract:name``, ``passthrough:///host[:port]``, and
    ``scheme:[//authority/]path`` for a scheme registered with
    :func:`grpcpy._channel.resolver.register_resolver`.  A target with no known
    scheme is a dns name.  Raises ValueError for an invalid target.
    """
    if not isinstance(target, str):
        raise TypeError("target must be a str, not %s" % type(target).__name__)
    if not target:
        raise ValueError("invalid target '': empty")
    if any(ch.isspace() for ch in target):
        raise _bad(target, "contains whitespace")
    match = _SCHEME_RE.match(target)
    if match:
        scheme = match.group(1).lower()
        parser = _PARSERS.get(scheme)
        if parser is not None:
            return parser(target, scheme, match.group(2), default_port)
        # the registry lives with the resolvers, which import this module
        from grpcpy._channel.resolver import registered_schemes
        schemes = registered_schemes()
        if scheme in schemes:
            return _parse_uri(target, scheme, match.group(2))
        if match.group(2).startswith("//"):
            raise _bad(target, "unknown scheme %r (known: %s)"
                       % (match.group(1), ", ".join(sorted(schemes))))
    # 'localhost:50051', '[::1]:50051', 'example.com': a dns name.
    return _parse_named(target, "dns", target, default_port)


def is_ip_literal(host):
    return _is_ipv4(host) or _is_ipv6(host)
