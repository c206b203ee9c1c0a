"""The channel plane: the sans-IO control plane of one client channel.

It owns target parsing, name resolution bookkeeping, one subchannel per
address, the load-balancing policy (pick_first by default), the channel's
connectivity state and reconnection with exponential backoff.

Nothing here touches a socket, a thread, asyncio or a clock.  Time comes in as
``now`` (seconds, any monotonic origin) and randomness is injectable.  The
facades drive a :class:`ChannelPlane` like this::

    plane.request_connection(now)
    for action in plane.take_actions():
        ('resolve', host, port)             -> look the name up, then
                                               plane.resolved(now, [Address...])
                                               or plane.resolution_failed(now, error)
        ('connect', sub_id, address, deadline)
                                            -> open a transport, then
                                               plane.connect_succeeded(now, sub_id)
                                               or plane.connect_failed(now, sub_id, error)
        ('close', sub_id)                   -> close that transport / abandon the attempt
    ... and call plane.timer(now) at plane.next_timer().

A ``sub_id`` names one connection attempt and, when it succeeds, the
connection it produced: every 'connect' action carries a fresh id, so a late
answer about an attempt the plane has already given up on is recognised and
ignored (a late success is answered with a 'close', even after shutdown).

Choices where the specs leave room:

- Losing a READY connection (close, error or GOAWAY: the facade reports
  ``connection_lost``) takes the subchannel and, under pick_first, the channel
  to IDLE; the plane reconnects on the next ``request_connection``, which
  every new call makes.  Calls never wait in READY (``pick`` succeeds), so at
  the moment of loss there is nothing queued that would justify reconnecting
  unasked; this is grpcio's and gRPC's documented pick_first behaviour.  The
  plane sends no 'close' for a lost connection: after a GOAWAY the facade lets
  the calls on it finish and closes it itself.
- pick_first reports TRANSIENT_FAILURE once every address has failed since
  the last success and stays there while it keeps retrying (sticky
  TRANSIENT_FAILURE, gRFC A62, as grpcio does), so calls without
  wait_for_ready fail fast instead of waiting through each retry.
- Backoff is per subchannel (address), as in grpcio: a failed subchannel sits
  in TRANSIENT_FAILURE until its backoff ends, then goes IDLE; pick_first
  always connects the first IDLE address in order, one at a time.
- dns targets naming an IP literal, passthrough targets and ipv4/ipv6/unix
  targets need no 'resolve' action.  A passthrough target gives one 'inet'
  (or 'inet6') address whose ``host`` may be a name the facade's connect
  resolves.
- Re-resolution (dns only) is asked for when pick_first loses its connection
  or all addresses fail, no sooner than grpc.dns_min_time_between_resolutions_ms
  (30 s) after the previous lookup; failed lookups retry with backoff.  A
  failed or empty re-resolution keeps the addresses already in use.

Specs followed: gRPC naming (doc/naming.md), connection backoff
(doc/connection-backoff.md), connectivity semantics
(doc/connectivity-semantics-and-api.md), load balancing (doc/load-balancing.md)
and pick_first's sticky TRANSIENT_FAILURE (gRFC A62).
"""

import ipaddress
import math
import random as _random_module
import re
from dataclasses import dataclass, field
from typing import List, Optional
from urllib.parse import unquote

__all__ = [
    "IDLE", "CONNECTING", "READY", "TRANSIENT_FAILURE", "SHUTDOWN", "STATE_NAMES",
    "Address", "Target", "parse_target", "Backoff",
    "Subchannel", "LoadBalancingPolicy", "PickFirst", "RoundRobin", "POLICIES",
    "ChannelPlane",
]

# Connectivity states, in the order of grpcpy's ChannelConnectivity enum.
IDLE = 0
CONNECTING = 1
READY = 2
TRANSIENT_FAILURE = 3
SHUTDOWN = 4
STATE_NAMES = ("IDLE", "CONNECTING", "READY", "TRANSIENT_FAILURE", "SHUTDOWN")

_INF = math.inf


# --------------------------------------------------------------------------
# Addresses and targets
# --------------------------------------------------------------------------

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

    ``family`` is 'inet', 'inet6' or 'unix'.  inet/inet6 addresses have
    ``host`` (an IP literal without brackets; for passthrough targets an
    unresolved host name) and ``port``; unix addresses have ``path``, which
    starts with a NUL character for Linux abstract sockets.
    """
    family: str
    host: Optional[str] = None
    port: Optional[int] = None
    path: Optional[str] = None

    @classmethod
    def ip(cls, host, port):
        """An inet or inet6 address from an IP literal (what a resolver returns)."""
        return cls("inet6" if ":" in host else "inet", host, int(port))

    @classmethod
    def unix(cls, path):
        return cls("unix", path=path)

    def __str__(self):
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
    ``unix-abstract:name``, ``passthrough:///host[:port]``.  A target with no
    known scheme is a dns name.  Raises ValueError for an invalid target.
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
        if match.group(2).startswith("//"):
            raise _bad(target, "unknown scheme %r (known: %s)"
                       % (match.group(1), ", ".join(sorted(_PARSERS))))
    # 'localhost:50051', '[::1]:50051', 'example.com': a dns name.
    return _parse_named(target, "dns", target, default_port)


# --------------------------------------------------------------------------
# Connection backoff
# --------------------------------------------------------------------------

def _options_dict(options):
    if options is None:
        return {}
    if isinstance(options, dict):
        return options
    return dict(options)  # grpcio style: a sequence of (name, value) pairs


def _ms_option(options, name, default_seconds, floor=0.1):
    value = options.get(name)
    if value is None:
        return default_seconds
    return max(floor, int(value) / 1000.0)


class Backoff:
    """Exponential connection backoff per gRPC's connection-backoff spec.

    ``start(now)`` begins an attempt and returns its connect deadline,
    ``max(current_deadline, now + min_connect_timeout)``.  ``failed(now)``
    ends it and returns when the next attempt may start (``current_deadline``,
    or ``now`` if that has passed).  The next ``start`` then grows the backoff:
    ``current_backoff = min(current_backoff * multiplier, maximum)`` and
    ``current_deadline = now + current_backoff`` plus a uniform jitter in
    ``[-jitter, +jitter] * current_backoff``.  ``reset()`` (after a success)
    starts over at ``initial``.
    """

    def __init__(self, initial=1.0, multiplier=1.6, jitter=0.2, maximum=120.0,
                 min_connect_timeout=20.0, random=_random_module.random):
        if initial <= 0 or maximum <= 0 or multiplier < 1 or not 0 <= jitter <= 1 \
                or min_connect_timeout < 0:
            raise ValueError("bad backoff parameters")
        self.initial = float(initial)
        self.multiplier = float(multiplier)
        self.jitter = float(jitter)
        self.maximum = float(maximum)
        self.min_connect_timeout = float(min_connect_timeout)
        self._random = random
        self.reset()

    @classmethod
    def from_options(cls, options, random=_random_module.random):
        """Parameters from grpcio channel options (milliseconds, floor 100 ms as in grpcio):
        grpc.initial_reconnect_backoff_ms, grpc.max_reconnect_backoff_ms,
        grpc.min_reconnect_backoff_ms (the minimum connect timeout) and
        grpc.testing.fixed_reconnect_backoff_ms (no growth, no jitter)."""
        options = _options_dict(options)
        fixed = options.get("grpc.testing.fixed_reconnect_backoff_ms")
        if fixed is not None:
            value = max(0.1, int(fixed) / 1000.0)
            return cls(value, 1.0, 0.0, value, value, random)
        return cls(
            initial=_ms_option(options, "grpc.initial_reconnect_backoff_ms", 1.0),
            maximum=_ms_option(options, "grpc.max_reconnect_backoff_ms", 120.0),
            min_connect_timeout=_ms_option(options, "grpc.min_reconnect_backoff_ms", 20.0),
            random=random)

    def reset(self):
        self.current_backoff = None
        self.current_deadline = None
        self._grow = False

    def start(self, now):
        if self.current_backoff is None:
            self.current_backoff = self.initial
            self.current_deadline = now + self.initial
        elif self._grow:
            self.current_backoff = min(self.current_backoff * self.multiplier, self.maximum)
            spread = self.jitter * self.current_backoff
            self.current_deadline = (now + self.current_backoff
                                     + (2.0 * self._random() - 1.0) * spread)
        self._grow = False
        return max(self.current_deadline, now + self.min_connect_timeout)

    def failed(self, now):
        self._grow = True
        if self.current_deadline is None:
            return now
        return max(self.current_deadline, now)


# --------------------------------------------------------------------------
# Subchannels and load-balancing policies
# --------------------------------------------------------------------------

class Subchannel:
    """The plane's record of one address: its state and its own backoff.

    States: IDLE (no connection, none being made), CONNECTING (a 'connect'
    action is outstanding, ``sub_id`` names it), READY (``sub_id`` names the
    live connection), TRANSIENT_FAILURE (the last attempt failed; the
    subchannel goes back to IDLE by itself at ``retry_at``).  Policies read
    these fields and ask the plane (their helper) to change them.
    """
    __slots__ = ("address", "state", "sub_id", "backoff", "deadline", "retry_at", "error")

    def __init__(self, address, backoff):
        self.address = address
        self.state = IDLE
        self.sub_id = None
        self.backoff = backoff
        self.deadline = _INF     # connect deadline while CONNECTING
        self.retry_at = _INF     # end of the backoff while TRANSIENT_FAILURE
        self.error = None

    def __repr__(self):
        return "<Subchannel %s %s id=%s>" % (self.address, STATE_NAMES[self.state], self.sub_id)


class LoadBalancingPolicy:
    """What a policy implements.  ``helper`` is the plane, which offers:

    - ``helper.subchannel(address)`` -> the Subchannel for an address (shared),
    - ``helper.connect(sub, now)``: start connecting an IDLE subchannel,
    - ``helper.disconnect(sub)``: drop its connection or attempt, back to IDLE
      with a fresh backoff,
    - ``helper.release(sub)``: the policy no longer uses it,
    - ``helper.update_state(state, error)``: the policy's aggregate state,
    - ``helper.request_reresolution(now)``.

    The plane calls ``subchannel_state_changed`` for changes it makes itself
    (connect results, timeouts, end of backoff, connection loss), not for the
    ones the policy asked for.
    """
    name = None

    def __init__(self, helper):
        self.helper = helper

    def update_addresses(self, now, addresses):
        raise NotImplementedError

    def subchannel_state_changed(self, now, sub):
        raise NotImplementedError

    def exit_idle(self, now):
        raise NotImplementedError

    def pick(self):
        raise NotImplementedError

    def shutdown(self):
        pass


def _reuse(helper, old, addresses):
    """The subchannels for ``addresses``, releasing old ones no longer listed."""
    new = [helper.subchannel(a) for a in addresses]
    keep = set(map(id, new))
    for sub in old:
        if id(sub) not in keep:
            helper.release(sub)
    return new


class PickFirst(LoadBalancingPolicy):
    """pick_first: one connection, to the first address that works.

    Addresses are tried in order, one connect at a time.  When every address
    has failed since the last success the policy reports TRANSIENT_FAILURE and
    stays there (sticky, as gRFC A62 and grpcio do) while it keeps retrying
    each address as its backoff expires, until one connects.  Losing the READY
    connection takes the policy to IDLE; it reconnects on the next
    ``exit_idle``.
    """
    name = "pick_first"

    def __init__(self, helper):
        super().__init__(helper)
        self.subchannels = []
        self.selected = None
        self.idle = True
        self._failed = set()        # ids of subchannels failed since the episode began
        self._sticky_failure = False
        self._error = None

    def update_addresses(self, now, addresses):
        if [s.address for s in self.subchannels] == list(addresses):
            return
        self.subchannels = _reuse(self.helper, self.subchannels, addresses)
        if self.selected is not None and self.selected not in self.subchannels:
            self.selected = None
        if self.selected is None:
            self._failed.clear()
            self._sticky_failure = False
            self._connect_next(now)
        else:
            for sub in self.subchannels:
                if sub is not self.selected:
                    self.helper.disconnect(sub)
        self._report()

    def exit_idle(self, now):
        if self.idle:
            self.idle = False
            self._connect_next(now)
            self._report()

    def subchannel_state_changed(self, now, sub):
        if sub not in self.subchannels:
            return
        if sub is self.selected:
            if sub.state != READY:  # connection lost: go IDLE, reconnect when asked
                self.selected = None
                self.idle = True
                self._failed.clear()
                self._sticky_failure = False
                self.helper.request_reresolution(now)
        elif sub.state == READY:
            if self.selected is None and not self.idle:
                self.selected = sub
                self._failed.clear()
                self._sticky_failure = False
                self._error = None
                for other in self.subchannels:
                    if other is not sub:
                        self.helper.disconnect(other)
            else:  # not wanted (cannot happen with one attempt at a time)
                self.helper.disconnect(sub)
        elif sub.state == TRANSIENT_FAILURE:
            self._error = sub.error
            self._failed.add(id(sub))
            if not self._sticky_failure and len(self._failed) >= len(self.subchannels):
                self._sticky_failure = True
                self.helper.request_reresolution(now)
            self._connect_next(now)
        elif sub.state == IDLE:
            self._connect_next(now)
        self._report()

    def _connect_next(self, now):
        if self.idle or self.selected is not None:
            return
        if any(s.state == CONNECTING for s in self.subchannels):
            return
        for sub in self.subchannels:
            if sub.state == IDLE:
                self.helper.connect(sub, now)
                return

    def _report(self):
        if self.selected is not None:
            self.helper.update_state(READY, None)
        elif self.idle:
            self.helper.update_state(IDLE, None)
        elif self._sticky_failure:
            self.helper.update_state(
                TRANSIENT_FAILURE, "failed to connect to all addresses; last error: %s" % self._error)
        else:
            self.helper.update_state(CONNECTING, None)

    def pick(self):
        return self.selected.sub_id if self.selected is not None else None


class RoundRobin(LoadBalancingPolicy):
    """round_robin: a connection to every address, picks rotate over the READY ones.

    It never goes IDLE: a subchannel that becomes IDLE (connection lost, or
    end of backoff) is reconnected at once.  READY if any subchannel is
    READY; TRANSIENT_FAILURE once all have failed, sticky until one is READY;
    otherwise CONNECTING.
    """
    name = "round_robin"

    def __init__(self, helper):
        super().__init__(helper)
        self.subchannels = []
        self.idle = True
        self._next = 0
        self._failed = set()
        self._sticky_failure = False
        self._error = None

    def update_addresses(self, now, addresses):
        if [s.address for s in self.subchannels] == list(addresses):
            return
        self.subchannels = _reuse(self.helper, self.subchannels, addresses)
        self._failed &= set(map(id, self.subchannels))
        self._connect_all(now)
        self._report()

    def exit_idle(self, now):
        if self.idle:
            self.idle = False
            self._connect_all(now)
            self._report()

    def subchannel_state_changed(self, now, sub):
        if sub not in self.subchannels:
            return
        if sub.state == READY:
            self._failed.clear()
            self._sticky_failure = False
        elif sub.state == TRANSIENT_FAILURE:
            self._error = sub.error
            self._failed.add(id(sub))
            if len(self._failed) >= len(self.subchannels) and not self._sticky_failure:
                self._sticky_failure = True
                self.helper.request_reresolution(now)
        elif sub.state == IDLE:
            self.helper.request_reresolution(now)
            self._connect_all(now)
        self._report()

    def _connect_all(self, now):
        if not self.idle:
            for sub in self.subchannels:
                if sub.state == IDLE:
                    self.helper.connect(sub, now)

    def _report(self):
        if any(s.state == READY for s in self.subchannels):
            self.helper.update_state(READY, None)
        elif self.idle:
            self.helper.update_state(IDLE, None)
        elif self._sticky_failure:
            self.helper.update_state(
                TRANSIENT_FAILURE, "failed to connect to all addresses; last error: %s" % self._error)
        else:
            self.helper.update_state(CONNECTING, None)

    def pick(self):
        subs = self.subchannels
        for i in range(len(subs)):
            sub = subs[(self._next + i) % len(subs)]
            if sub.state == READY:
                self._next = (self._next + i + 1) % len(subs)
                return sub.sub_id
        return None


POLICIES = {PickFirst.name: PickFirst, RoundRobin.name: RoundRobin}


# --------------------------------------------------------------------------
# The plane
# --------------------------------------------------------------------------

class ChannelPlane:
    """The control plane of one channel (see the module docstring)."""

    def __init__(self, target, options=None, random=_random_module.random):
        if isinstance(target, str):
            target = parse_target(target)
        self.target = target
        self.options = _options_dict(options)
        self._random = random
        Backoff.from_options(self.options)  # validate the options once, early
        self.state = IDLE
        self.last_error = None
        self._actions = []
        self._changes = []
        self._listener = None
        self._subchannels = {}      # Address -> Subchannel
        self._by_id = {}            # sub_id -> Subchannel
        self._next_id = 1
        self._shutdown = False

        name = self.options.get("grpc.lb_policy_name", "pick_first")
        if name not in POLICIES:
            raise ValueError("unknown load-balancing policy %r (known: %s)"
                             % (name, ", ".join(sorted(POLICIES))))
        self._policy = POLICIES[name](self)
        self._policy_state = IDLE
        self._policy_error = None

        # Resolution.  Targets that need no lookup feed the policy at once.
        self._resolve_backoff = Backoff.from_options(self.options, random)
        self._min_resolve_interval = _ms_option(
            self.options, "grpc.dns_min_time_between_resolutions_ms", 30.0, floor=0.0)
        self._resolving = False
        self._resolve_at = _INF         # a scheduled (re-)resolution
        self._last_resolve_at = None
        self._resolve_error = None
        self._wanted = False            # asked to connect before any address was known
        self._have_addresses = False
        static = self._static_addresses(target)
        self._needs_resolver = static is None
        if static is not None:
            self._have_addresses = True
            self._policy.update_addresses(0.0, static)

    @staticmethod
    def _static_addresses(target):
        if target.addresses is not None:
            return list(target.addresses)
        if target.scheme == "passthrough":
            if ":" in target.host:
                return [Address("inet6", target.host, target.port)]
            return [Address("inet", target.host, target.port)]
        if _is_ipv4(target.host) or _is_ipv6(target.host):  # a dns target naming an IP literal
            return [Address.ip(target.host, target.port)]
        return None

    # ----- outputs

    def take_actions(self):
        actions, self._actions = self._actions, []
        return actions

    def take_state_changes(self):
        changes, self._changes = self._changes, []
        return changes

    def set_listener(self, listener):
        """``listener(old, new)`` is called on every state change, from inside the
        input method that caused it (in addition to ``take_state_changes``)."""
        self._listener = listener

    def pick(self):
        if self.state != READY:
            return None
        return self._policy.pick()

    def next_timer(self):
        when = self._resolve_at
        for sub in self._subchannels.values():
            if sub.state == CONNECTING:
                when = min(when, sub.deadline)
            elif sub.state == TRANSIENT_FAILURE:
                when = min(when, sub.retry_at)
        return when

    # ----- inputs

    def request_connection(self, now):
        if self._shutdown:
            return
        if self._have_addresses:
            self._policy.exit_idle(now)
        elif not self._wanted:
            self._wanted = True
            if not self._resolving and self._resolve_at == _INF:
                self._start_resolution(now)
        self._update()

    def resolved(self, now, addresses):
        if self._shutdown or not self._resolving:
            return
        self._resolving = False
        unique = list(dict.fromkeys(addresses))
        if not unique:
            self._resolution_error(now, "resolver returned no addresses")
        else:
            self._resolve_backoff.reset()
            self._resolve_error = None
            self._have_addresses = True
            self._policy.update_addresses(now, unique)
            if self._wanted:
                self._wanted = False
                self._policy.exit_idle(now)
        self._update()

    def resolution_failed(self, now, error):
        if self._shutdown or not self._resolving:
            return
        self._resolving = False
        self._resolution_error(now, error)
        self._update()

    def connect_succeeded(self, now, sub_id):
        sub = self._by_id.get(sub_id)
        if self._shutdown or sub is None or sub.state != CONNECTING:
            self._actions.append(("close", sub_id))  # an attempt we gave up on
            return
        sub.state = READY
        sub.deadline = _INF
        sub.error = None
        sub.backoff.reset()
        self._policy.subchannel_state_changed(now, sub)
        self._update()

    def connect_failed(self, now, sub_id, error):
        sub = self._by_id.get(sub_id)
        if self._shutdown or sub is None or sub.state != CONNECTING:
            return
        self._fail(now, sub, error)
        self._update()

    def connection_lost(self, now, sub_id):
        sub = self._by_id.get(sub_id)
        if self._shutdown or sub is None:
            return
        if sub.state == CONNECTING:  # lost before it was reported up: a failed attempt
            self._fail(now, sub, "connection closed while connecting")
        else:
            del self._by_id[sub_id]
            sub.sub_id = None
            sub.state = IDLE
            self._policy.subchannel_state_changed(now, sub)
        self._update()

    def timer(self, now):
        if self._shutdown:
            return
        if self._resolve_at <= now:
            self._resolve_at = _INF
            if not self._resolving:
                self._start_resolution(now)
        for sub in list(self._subchannels.values()):
            if sub.state == CONNECTING and sub.deadline <= now:
                self._actions.append(("close", sub.sub_id))
                self._fail(now, sub, "connect timed out")
            elif sub.state == TRANSIENT_FAILURE and sub.retry_at <= now:
                self._back_to_idle(now, sub)
        self._update()

    def shutdown(self):
        if self._shutdown:
            return
        self._shutdown = True
        for sub in self._subchannels.values():
            if sub.sub_id is not None:
                self._actions.append(("close", sub.sub_id))
            sub.state = IDLE
            sub.sub_id = None
        self._subchannels.clear()
        self._by_id.clear()
        self._policy.shutdown()
        self._resolve_at = _INF
        self._resolving = False
        self._set_state(SHUTDOWN)

    # ----- helper interface for the policy

    def subchannel(self, address):
        sub = self._subchannels.get(address)
        if sub is None:
            sub = Subchannel(address, Backoff.from_options(self.options, self._random))
            self._subchannels[address] = sub
        return sub

    def connect(self, sub, now):
        if sub.state != IDLE:
            raise RuntimeError("connect() on a subchannel that is %s" % STATE_NAMES[sub.state])
        sub.sub_id = self._next_id
        self._next_id += 1
        self._by_id[sub.sub_id] = sub
        sub.state = CONNECTING
        sub.deadline = sub.backoff.start(now)
        sub.retry_at = _INF
        self._actions.append(("connect", sub.sub_id, sub.address, sub.deadline))

    def disconnect(self, sub):
        if sub.sub_id is not None:
            self._actions.append(("close", sub.sub_id))
            del self._by_id[sub.sub_id]
            sub.sub_id = None
        sub.state = IDLE
        sub.deadline = sub.retry_at = _INF
        sub.backoff.reset()

    def release(self, sub):
        self.disconnect(sub)
        self._subchannels.pop(sub.address, None)

    def update_state(self, state, error):
        self._policy_state = state
        self._policy_error = error

    def request_reresolution(self, now):
        if not self._needs_resolver or self._shutdown or self._resolving:
            return
        earliest = now
        if self._last_resolve_at is not None:
            earliest = self._last_resolve_at + self._min_resolve_interval
        if earliest <= now:
            self._start_resolution(now)
        else:
            self._resolve_at = min(self._resolve_at, earliest)

    # ----- internals

    def _start_resolution(self, now):
        self._resolving = True
        self._resolve_at = _INF
        self._last_resolve_at = now
        self._resolve_backoff.start(now)
        self._actions.append(("resolve", self.target.host, self.target.port))

    def _resolution_error(self, now, error):
        self._resolve_at = self._resolve_backoff.failed(now)
        if not self._have_addresses:  # with addresses in hand, keep using them
            self._resolve_error = "DNS resolution failed for %s: %s" % (self.target.authority, error)

    def _fail(self, now, sub, error):
        self._by_id.pop(sub.sub_id, None)
        sub.sub_id = None
        sub.state = TRANSIENT_FAILURE
        sub.deadline = _INF
        sub.error = "%s: %s" % (sub.address, error)
        sub.retry_at = sub.backoff.failed(now)
        self._policy.subchannel_state_changed(now, sub)
        if sub.state == TRANSIENT_FAILURE and sub.retry_at <= now:
            self._back_to_idle(now, sub)

    def _back_to_idle(self, now, sub):
        sub.state = IDLE
        sub.retry_at = _INF
        self._policy.subchannel_state_changed(now, sub)

    def _update(self):
        if self._shutdown:
            return
        if self._have_addresses:
            state, error = self._policy_state, self._policy_error
        elif not self._wanted:
            state, error = IDLE, None
        elif self._resolve_error is not None:
            state, error = TRANSIENT_FAILURE, self._resolve_error
        else:
            state, error = CONNECTING, None
        if state == TRANSIENT_FAILURE:
            self.last_error = error
        elif state == READY:
            self.last_error = None
        self._set_state(state)

    def _set_state(self, state):
        old = self.state
        if state == old:
            return
        self.state = state
        self._changes.append((old, state))
        if self._listener is not None:
            self._listener(old, state)
