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
        ('resolve', host, port)             -> look the name up (at plane.dns_server,
                                               and its TXT records if plane.lookup_txt),
                                               then plane.resolved(now, [Address...],
                                               txt_records) or
                                               plane.resolution_failed(now, error)
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
  staggers its first attempts 250 ms apart (gRFC A61, lb/pick_first.py),
  then reconnects each address as its backoff ends.
- dns targets naming an IP literal, passthrough targets and ipv4/ipv6/unix
  targets need no 'resolve' action (their resolver knows the addresses).  A passthrough target gives one 'inet'
  (or 'inet6') address whose ``host`` may be a name the facade's connect
  resolves.
- Re-resolution (resolvers that look up) is asked for when pick_first loses its connection
  or all addresses fail (again each time they all fail once more), when a
  round_robin subchannel loses its connection or fails; no sooner than
  grpc.dns_min_time_between_resolutions_ms (30 s) after the previous lookup; failed lookups retry with backoff.  A
  failed or empty re-resolution keeps the addresses already in use.

- The service config (service_config.py) in force is ``service_config``
  (EMPTY when there is none), and ``config_version`` counts its changes.
  It is the resolver's (``Resolver.service_config()``; the dns resolver's
  comes from TXT records, gRFC A2), else the user's grpc.service_config,
  which is also the only one with grpc.service_config_disable_resolution.
  An invalid config from the resolver keeps the one in force; if there
  never was one, the default if there is one, else the channel is in
  TRANSIENT_FAILURE with ``config_error`` (calls fail UNAVAILABLE) and
  resolves again with backoff (gRFC A21).  A config that names another LB
  policy switches to it: the new policy takes over the subchannels, so the
  connections and the calls on them live on.  ``retry_throttle`` is the
  channel's token bucket while the config has retryThrottling.

Specs followed: gRPC naming (doc/naming.md), connection backoff
(doc/connection-backoff.md), connectivity semantics
(doc/connectivity-semantics-and-api.md), load balancing (doc/load-balancing.md),
pick_first's sticky TRANSIENT_FAILURE (gRFC A62), the service config
(doc/service_config.md) from DNS (gRFC A2) and its error handling (gRFC A21).
"""

import json
import logging
import math
import platform
import random as _random_module

from grpcpy._channel.backoff import Backoff
from grpcpy._channel.lb.base import (CONNECTING, IDLE, READY, SHUTDOWN, STATE_NAMES, TRANSIENT_FAILURE,
                                     PickInfo, Subchannel, policy_named)
from grpcpy._channel.resolver import DnsResolver, Resolver, resolver_for
from grpcpy._channel.service_config import (EMPTY, RetryThrottle, ServiceConfig, ServiceConfigError,
                                            choose_from_txt, parse_service_config)
from grpcpy._channel.target import parse_target
from grpcpy._options import ChannelOptions

_WATCH = "/grpc.health.v1.Health/Watch"
_SERVING = 1
_SERVING_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
_UNIMPLEMENTED = 12
_CODE_NAMES = {0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 4: "DEADLINE_EXCEEDED", 13: "INTERNAL", 14: "UNAVAILABLE"}
_LOGGER = logging.getLogger("grpcpy.channel")

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
        self._health_in_force = None    # the service name subchannels watch (gRFC A17)
        self._by_id = {}            # sub_id -> Subchannel
        self._next_id = 1
        self._shutdown = False

        # The service config in force (see _take_config): what calls read,
        # with config_version bumped on every change.
        self.service_config = EMPTY
        self.config_version = 0
        self.retry_throttle = None      # RetryThrottle while the config has retryThrottling
        self.config_error = None        # the resolver's config is invalid and there is no other
        self._config_key = None
        self._config_ok = False         # a config was in force once (gRFC A21)
        self._default_config = self.options.service_config
        disable = self.options.service_config_disable_resolution
        self._ignore_resolver_config = disable is True
        cls, policy_config = self._policy_choice(self._default_config)
        self._policy = cls(self, policy_config)
        self._policy_config = policy_config
        self._policy_state = IDLE
        self._policy_error = None
        self._hostname = None
        if self._default_config is not None:
            # in force until the resolver gives another (the default, A21)
            self._set_config(0.0, self._default_config)

        # Resolution.  Targets whose resolver knows the addresses feed the policy at once.
        self._resolver = resolver_for(target)
        # The dns resolver's lookups: against the target's DNS server if it
        # names one; TXT records for the service config (gRFC A2) only where
        # they can matter and are asked for: never for localhost (or an IP
        # literal, never looked up); by default only for targets naming a DNS
        # server (dns://server/name, the service owner's DNS, where the config
        # is published), unless grpc.service_config_disable_resolution is 1;
        # for names of the system resolver only when that option is 0, as
        # grpcio, whose default is not to look TXT up (a TXT query to the
        # system's DNS on every resolution of every channel costs a round
        # trip and leaks the names to whoever serves it).
        dns = isinstance(self._resolver, DnsResolver)
        self.dns_server = target.dns_server if dns else None
        self.lookup_txt = bool(dns and disable is not True and target.host.lower() != "localhost"
                               and (target.dns_server is not None or disable is False))
        self._resolve_backoff = Backoff.from_options(self.options, random)
        self._min_resolve_interval = self.options.dns_min_time_between_resolutions
        self._resolving = False
        self._resolve_at = _INF         # a scheduled (re-)resolution
        self._last_resolve_at = None
        self._resolve_error = None
        self._wanted = False            # asked to connect before any address was known
        self._have_addresses = False
        self._addresses = []
        # a resolver that pushes its addresses (Resolver.start) is started
        # by the driver on the first need ('start_resolver') and then
        # updates the channel whenever it likes (``pushed``)
        self._push = type(self._resolver).start is not Resolver.start
        self._push_started = False
        self._pushed_config = None
        static = None if self._push else self._resolver.addresses()
        self._needs_resolver = static is None
        # until the first resolution, may a config still come from the resolver?
        self._config_expected = bool(static is None and not self._ignore_resolver_config
                                     and (self.lookup_txt or not dns))
        if static is not None:
            self._use_result(0.0, list(static))
            self._update()

    @property
    def config_settled(self):
        """False while the first resolution may still bring a service config
        (calls made meanwhile look their method config up again when they
        start)."""
        return self._have_addresses or not self._config_expected

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

    @property
    def picks_per_call(self):
        """Whether the policy's picks depend on the call (PickInfo)."""
        return self._policy.uses_pick_info

    def pick(self, call=None):
        """The policy's pick for ``call`` (see LoadBalancingPolicy.pick):
        None, a sub_id, or (sub_id, done)."""
        if self.state != READY:
            return None
        policy = self._policy
        try:
            if policy.uses_pick_info:
                return policy.pick(PickInfo(None if call is None else call._lb_call))
            return policy.pick(None)
        except Exception as exc:        # an application's policy
            self._policy_broke("pick", exc)
            return None

    def next_timer(self):
        when = self._resolve_at
        if not self._shutdown:
            when = min(when, self._policy.next_timer())
        for sub in self._subchannels.values():
            if sub.state == CONNECTING:
                when = min(when, sub.deadline)
            elif sub.state == TRANSIENT_FAILURE:
                when = min(when, sub.retry_at)
            if sub.health_retry_at < when:
                when = sub.health_retry_at
        return when

    # ----- inputs

    def request_connection(self, now):
        if self._shutdown:
            return
        if self._have_addresses:
            self._policy.exit_idle(now)
        elif not self._wanted:
            self._wanted = True
            if self._needs_resolver and not self._resolving and self._resolve_at == _INF:
                self._start_resolution(now)
        self._update()

    def resolved(self, now, addresses, txt_records=None):
        """A lookup's answer: the addresses and, when ``lookup_txt`` asked
        for them, the TXT records of ``_grpc_config.<name>`` (each record's
        strings joined; [] when there are none, None when their lookup
        failed: the config in force stays)."""
        if self._shutdown or not self._resolving:
            return
        self._resolving = False
        unique = list(dict.fromkeys(self._resolver.lookup_done(addresses)))
        if not unique:
            self._resolution_error(now, "resolver returned no addresses")
        else:
            self._resolve_error = None
            self._use_result(now, unique, txt_records)
        self._update()

    def pushed(self, now, addresses, service_config=None):
        """A pushing resolver's update (``Resolver.start``): its addresses
        and its service config (None: it has none; as
        ``Resolver.service_config``)."""
        if self._shutdown:
            return
        self._pushed_config = service_config
        unique = list(dict.fromkeys(addresses))
        if not unique:
            self._resolution_error(now, "resolver returned no addresses")
        else:
            self._resolve_error = None
            self._use_result(now, unique)
        self._update()

    def push_failed(self, now, error):
        """A pushing resolver reports it cannot resolve (it keeps trying
        itself; addresses already in use stay)."""
        if self._shutdown:
            return
        if not self._have_addresses:
            self._resolve_error = "name resolution failed for %s: %s" % (self.target.authority, error)
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
        sub.deadline = _INF
        sub.error = None
        sub.backoff.reset()
        sub.connected = True
        if self._health_service() is not None:
            # READY for the policy once the server says SERVING (gRFC A17)
            self._watch_health(now, sub)
            self._update()
            return
        sub.state = READY
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
        if not sub.connected:  # lost before it was reported up: a failed attempt
            self._fail(now, sub, "connection closed while connecting")
        else:
            del self._by_id[sub_id]
            sub.sub_id = None
            sub.state = IDLE
            self._unwatch(sub)
            self._policy.subchannel_state_changed(now, sub)
        self._update()

    def timer(self, now):
        if self._shutdown:
            return
        if self._resolve_at <= now:
            self._resolve_at = _INF
            if not self._resolving:
                self._start_resolution(now)
        if self._policy.next_timer() <= now:
            try:
                self._policy.timer(now)
            except Exception as exc:
                self._policy_broke("timer", exc)
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
        self._unwatch(sub)
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

    def open_stream(self, sub, method, request, on_message, on_end):
        """A server-streaming call on ``sub``'s connection (see
        LoadBalancingPolicy): the driver starts it ('stream' action)."""
        stream = SubchannelStream(self, sub.sub_id, method, request, on_message, on_end)
        self._actions.append(("stream", stream))
        return stream

    def random(self):
        return self._random()

    def update_state(self, state, error):
        self._policy_state = state
        self._policy_error = error

    def request_reresolution(self, now):
        if not self._needs_resolver or self._shutdown or self._resolving:
            return
        if self._push:
            if self._push_started:
                self._actions.append(("resolve_now",))
            return
        earliest = now
        if self._last_resolve_at is not None:
            earliest = self._last_resolve_at + self._min_resolve_interval
        if earliest <= now:
            self._start_resolution(now)
        else:
            self._resolve_at = min(self._resolve_at, earliest)

    # ----- the service config

    def _use_result(self, now, addresses, txt_records=None):
        """A resolution's addresses (not empty) and the config that comes
        with them.  Without a usable config the addresses wait: the channel
        is in TRANSIENT_FAILURE with ``config_error`` and resolves again
        with backoff, for a better config."""
        self._addresses = addresses
        if not self._take_config(now, txt_records):
            self._have_addresses = False
            if self._needs_resolver:
                self._resolve_at = self._resolve_backoff.failed(now)
            return
        self._resolve_backoff.reset()
        self._have_addresses = True
        self._policy.update_addresses(now, addresses)
        if self._wanted:
            self._wanted = False
            self._policy.exit_idle(now)

    def _take_config(self, now, txt_records):
        """Put the resolver's config in force, or the default (the user's
        grpc.service_config, else none) when it has none or its configs are
        ignored (grpc.service_config_disable_resolution).  An invalid config
        from the resolver keeps the config in force; with none ever in
        force, the default if there is one, else ``config_error`` (gRFC
        A21).  True when a config is in force."""
        config = error = None
        if not self._ignore_resolver_config:
            try:
                raw = self._pushed_config if self._push else self._resolver.service_config()
                if raw is None and self.lookup_txt:
                    if txt_records is None:         # the TXT lookup failed: no news
                        if self._config_ok:
                            return True
                    else:
                        if self._hostname is None:
                            self._hostname = platform.node()
                        raw = choose_from_txt(txt_records, self._hostname, self._random)
                if raw is not None:
                    config = raw if isinstance(raw, ServiceConfig) else parse_service_config(raw)
            except ServiceConfigError as exc:
                error = str(exc)
            except Exception as exc:    # an application's resolver
                error = "%s: %s" % (type(exc).__name__, exc)
        if error is not None:
            if self._config_ok:
                return True
            if self._default_config is None:
                self.config_error = "invalid service config from the resolver of %s: %s" % (
                    self.target.authority, error)
                return False
        self.config_error = None
        self._config_ok = True
        self._set_config(now, config or self._default_config or EMPTY)
        return True

    def _set_config(self, now, config):
        # the same config again (every resolution brings it) is no change
        if config.raw is not None:
            key = json.dumps(json.loads(config.raw), sort_keys=True)
        else:
            key = None if config is EMPTY else id(config)   # made by an application's resolver
        if key == self._config_key:
            return
        self._config_key = key
        self.service_config = config
        self.config_version += 1
        throttling = config.retry_throttling
        current = self.retry_throttle
        if throttling is None:
            self.retry_throttle = None
        elif current is None or (current.max_tokens, current.token_ratio) != (
                throttling.max_tokens, throttling.token_ratio):
            self.retry_throttle = RetryThrottle.of(throttling)
        cls, policy_config = self._policy_choice(config)
        if type(self._policy) is cls:
            if policy_config != self._policy_config:
                self._policy_config = policy_config
                self._policy.update_config(now, policy_config)
        else:
            # another policy: it takes over the subchannels (and the calls
            # on their connections) of the old one
            self._policy_config = policy_config
            old, new = self._policy, cls(self, policy_config)
            subchannels, active = old.subchannels, not old.idle
            old.subchannels = []
            old.shutdown()
            self._policy = new
            new.take_over(now, subchannels, active)
        health = self._health_service()
        if health != self._health_in_force:
            # health checking turned on, off or to another service name:
            # the connected subchannels watch anew (or are READY unchecked)
            self._health_in_force = health
            for sub in list(self._subchannels.values()):
                if sub.connected:
                    stream, sub.health = sub.health, None
                    if stream is not None:
                        stream.cancel()
                    sub.health_retry_at = _INF
                    if health is not None:
                        self._watch_health(now, sub)
                    elif sub.state != READY:
                        sub.state = READY
                        sub.error = None
                        self._policy.subchannel_state_changed(now, sub)

    def _policy_broke(self, what, exc):
        """A policy raised: logged, and the channel is in TRANSIENT_FAILURE
        with the error (calls fail fast, wait_for_ready ones wait) until the
        policy reports a state again."""
        _LOGGER.error("load-balancing policy %s: %s raised", self._policy.name, what, exc_info=exc)
        self._policy_state = TRANSIENT_FAILURE
        self._policy_error = "load-balancing policy %s failed in %s: %s: %s" % (
            self._policy.name, what, type(exc).__name__, exc)
        self._update()

    def _policy_choice(self, config):
        """(class, config) of the policy a service config (or None) asks
        for, else of grpc.lb_policy_name, else pick_first."""
        if config is not None and config.lb_policy is not None:
            return config.lb_policy
        cls = policy_named(None, self.options.lb_policy_name)
        try:
            return cls, cls.parse_config({})
        except ValueError:
            return cls, None

    # ----- internals

    def _start_resolution(self, now):
        if self._push:
            if not self._push_started:
                self._push_started = True
                self._actions.append(("start_resolver", self._resolver))
            return
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

    # ----- client-side health checking (gRFC A17)

    def _health_service(self):
        """The service name subchannels watch, or None: health checking is
        on when the service config has healthCheckConfig, the policy uses it
        (not pick_first) and grpc.inhibit_health_checking is not set."""
        name = self.service_config.health_check_service
        if name is None or not self._policy.health_checks or self.options.inhibit_health_checking:
            return None
        return name

    def _watch_health(self, now, sub):
        """Open the Watch of a connected subchannel; until the first answer
        the policy sees it CONNECTING."""
        from grpcpy._protos import health_pb       # (protobuf only for channels that health-check)
        name = self._health_service()
        request = health_pb.HealthCheckRequest(service=name).SerializeToString()
        if sub.health_backoff is None:
            sub.health_backoff = Backoff.from_options(self.options, self._random)
        stream = None

        def on_message(now, data):
            if sub.health is stream:
                sub.health_backoff.reset()
                try:
                    status = health_pb.HealthCheckResponse.FromString(data).status
                except Exception:
                    status = -1
                self._health_verdict(now, sub, status == _SERVING, "health check: %s" % _SERVING_NAMES.get(
                    status, "a response that does not parse"))

        def on_end(now, code, details):
            if sub.health is not stream:
                return
            sub.health = None
            if not sub.connected:
                return
            if code == _UNIMPLEMENTED:
                # the server has no health service: this backend is not
                # checked (gRFC A17), and says so once
                _LOGGER.error("health checking is configured but the server at %s does not implement "
                              "grpc.health.v1.Health: its subchannel is used without checks", sub.address)
                self._health_verdict(now, sub, True, None)
                return
            sub.health_retry_at = sub.health_backoff.failed(now)
            self._health_verdict(now, sub, False, "health check failed: %s: %s" % (
                _CODE_NAMES.get(code, code), details))

        stream = sub.health = self.open_stream(sub, _WATCH, request, on_message, on_end)
        if sub.state != CONNECTING:
            sub.state = CONNECTING
            self._policy.subchannel_state_changed(now, sub)

    def _health_verdict(self, now, sub, serving, error):
        if not sub.connected:
            return
        state = READY if serving else TRANSIENT_FAILURE
        sub.error = None if serving else "%s: %s" % (sub.address, error)
        if state != sub.state:
            sub.state = state
            sub.retry_at = _INF
            self._policy.subchannel_state_changed(now, sub)
        self._update()

    def _unwatch(self, sub):
        sub.connected = False
        sub.health_retry_at = _INF
        stream, sub.health = sub.health, None
        if stream is not None:
            stream.cancel()

    def _fail(self, now, sub, error):
        self._unwatch(sub)
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
        if self.config_error is not None:
            state, error = TRANSIENT_FAILURE, self.config_error
        elif self._have_addresses:
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


class SubchannelStream:
    """A policy's server-streaming call on one subchannel's connection
    (``helper.open_stream``): the driver starts it on the connection
    ``sub_id`` names and reports its messages and end through
    ``on_message(now, data)`` / ``on_end(now, code, details)``.  After
    ``cancel()`` nothing more is reported."""

    __slots__ = ("plane", "sub_id", "method", "request", "on_message", "on_end", "cancelled", "call")

    def __init__(self, plane, sub_id, method, request, on_message, on_end):
        self.plane = plane
        self.sub_id = sub_id
        self.method = method
        self.request = request
        self.on_message = on_message
        self.on_end = on_end
        self.cancelled = False
        self.call = None        # the driver's call carrying it

    def cancel(self):
        if not self.cancelled:
            self.cancelled = True
            self.plane._actions.append(("cancel_stream", self))
