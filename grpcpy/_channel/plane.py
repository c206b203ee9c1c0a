"""The channel plane: the sans-IO control plane of one client channel.

It owns name resolution bookkeeping (the resolver of the target's scheme,
resolver.py), one subchannel per address, the load-balancing policy (lb/,
pick_first by default), the channel's connectivity state and reconnection
with exponential backoff (backoff.py).

Nothing here touches a socket, a thread, asyncio or a clock.  Time comes in as
``now`` (seconds, any monotonic origin) and randomness is injectable.  The
driver (driver.py) runs a :class:`ChannelPlane` for the facades like this::

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
  the moment of loss there is normally nothing queued that would justify
  reconnecting unasked (this is grpcio's and gRPC's documented pick_first
  behaviour); when calls do wait, the driver asks again.  The
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
  targets need no 'resolve' action (their resolver knows the addresses).  A passthrough target gives one 'inet'
  (or 'inet6') address whose ``host`` may be a name the facade's connect
  resolves.
- Re-resolution (resolvers that look up) is asked for when pick_first loses its connection
  or all addresses fail, no sooner than grpc.dns_min_time_between_resolutions_ms
  (30 s) after the previous lookup; failed lookups retry with backoff.  A
  failed or empty re-resolution keeps the addresses already in use.

Specs followed: gRPC naming (doc/naming.md), connection backoff
(doc/connection-backoff.md), connectivity semantics
(doc/connectivity-semantics-and-api.md), load balancing (doc/load-balancing.md)
and pick_first's sticky TRANSIENT_FAILURE (gRFC A62).
"""

import math
import random as _random_module

from grpcpy._channel.backoff import Backoff
from grpcpy._channel.lb import policy_for
from grpcpy._channel.lb.base import (CONNECTING, IDLE, READY, SHUTDOWN, STATE_NAMES, TRANSIENT_FAILURE,
                                     Subchannel)
from grpcpy._channel.resolver import resolver_for
from grpcpy._channel.target import parse_target
from grpcpy._options import ChannelOptions

__all__ = ["ChannelPlane", "IDLE", "CONNECTING", "READY", "TRANSIENT_FAILURE", "SHUTDOWN", "STATE_NAMES"]

_INF = math.inf


class ChannelPlane:
    """The control plane of one channel (see the module docstring)."""

    def __init__(self, target, options=None, random=_random_module.random):
        if isinstance(target, str):
            target = parse_target(target)
        self.target = target
        self.options = ChannelOptions.of(options)
        self._random = random
        self.state = IDLE
        self.last_error = None
        self._actions = []
        self._changes = []
        self._listener = None
        self._subchannels = {}      # Address -> Subchannel
        self._by_id = {}            # sub_id -> Subchannel
        self._next_id = 1
        self._shutdown = False

        # A service config the channel cannot use fails every call (driver.py).
        self.config_error = self.options.service_config_error
        try:
            policy = policy_for(self.options)
        except ValueError as exc:
            self.config_error = str(exc)
            policy = policy_for(ChannelOptions(None))
        self._policy = policy(self)
        self._policy_state = IDLE
        self._policy_error = None

        # Resolution.  Targets whose resolver knows the addresses feed the policy at once.
        self._resolver = resolver_for(target)
        self._resolve_backoff = Backoff.from_options(self.options, random)
        self._min_resolve_interval = self.options.dns_min_time_between_resolutions
        self._resolving = False
        self._resolve_at = _INF         # a scheduled (re-)resolution
        self._last_resolve_at = None
        self._resolve_error = None
        self._wanted = False            # asked to connect before any address was known
        self._have_addresses = False
        static = self._resolver.addresses()
        self._needs_resolver = static is None
        if static is not None:
            self._have_addresses = True
            self._policy.update_addresses(0.0, list(static))

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
        unique = list(dict.fromkeys(self._resolver.lookup_done(addresses)))
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

    def enter_idle(self, now):
        """The channel went unused (grpc.client_idle_timeout_ms): drop every
        connection ('close' actions) and go IDLE; the next
        ``request_connection`` connects again."""
        if self._shutdown:
            return
        self._policy.enter_idle()
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
        try:
            host, port = self._resolver.lookup()
        except Exception as exc:   # an application's resolver: a failed resolution, retried
            self._resolving = False
            self._resolution_error(now, "%s: %s" % (type(exc).__name__, exc))
            return
        self._actions.append(("resolve", host, port))

    def _resolution_error(self, now, error):
        self._resolve_at = self._resolve_backoff.failed(now)
        if not self._have_addresses:  # with addresses in hand, keep using them
            what = "DNS" if self.target.scheme == "dns" else "name"
            self._resolve_error = "%s resolution failed for %s: %s" % (what, self.target.authority, error)

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
