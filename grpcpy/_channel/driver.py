"""The channel driver: the one loop that runs a ChannelPlane for a facade, and
the rules for calls that wait for a connection.

Both facades' Channel classes inherit :class:`ChannelDriver` and add only
I/O and waiting.  Every method here runs under the facade's channel lock
(sync) or on its event loop (aio), never blocks, and takes the time as
``now`` (the facade's monotonic clock: time.monotonic or loop.time).

The hooks a facade implements (none may block; each reports back through
the inputs below):

==============================================  ====================================================
``_io_resolve(host, port)``                      run ``_lookup_call(host, port)`` off the loop (it
                                                 blocks), then ``_lookup_done(now, *answer)`` or, if
                                                 it raised OSError (or UnicodeError),
                                                 ``_lookup_failed(now, host, port, error)``
``_io_connect(sub_id, address, deadline)``       open a transport to the Address (TLS:
                                                 ``_tls_verdict``), wait for the server's HTTP/2
                                                 preface, then ``_connect_done(now, sub_id, conn)``
                                                 or ``_connect_failed(now, sub_id, address, error)``
``_io_close(sub_id, conn)``                      close ``conn``; None: give up the attempt
``_io_arm_timer(when)``                          replace the timer: ``_timer_fired(now, when)`` at
                                                 ``when``
``_on_state_change(state)``                      wake what waits for a ChannelConnectivity change
``_io_post()``                                   (any thread) soon, on the channel's thread with its
                                                 lock: ``_run_posted(now)``
``_io_start_stream(call, conn)``                 start a policy's stream call on ``conn`` (the sync
                                                 facade takes the connection's lock)
``_io_cancel_stream(call)``                      cancel it
``_clock()``                                     the facade's monotonic clock
==============================================  ====================================================

and it reports a lost connection with ``_connection_lost(now, conn)``.  A
connection object has ``sub_id``, ``closed`` and ``core`` (its sans-IO
ClientConnection, whose ``closed``, ``local_open`` and ``too_many_pings`` the
driver reads).

Calls.  ``_pick_now(call)`` is the per-call path: the ready connection the
policy picks, or None.  A policy that wants to hear how the attempt ends
(load reports, outlier counts, calls in flight) gives a ``done`` with its
pick: the call keeps it as ``_lb_done(code, trailing)`` and calls it when
the attempt ends; the report reaches the policy through ``_lb_report``, on
the channel's thread (in the sync facade, posted to the I/O loop: the end
arrives under a connection's lock, which must not wait for the channel's).
Pushing resolvers and the policies' stream calls report the same way:
anything from another thread is posted (``_post``) and run under the
channel's lock by ``_run_posted``.  A call that gets None goes to ``_submit(call, now)``,
which applies the queued-call rules, the same for both facades:

- the channel is closed (or closes while it waits): CANCELLED "Channel closed!";
- the resolver gave no usable service config (and there is no default):
  the channel is in TRANSIENT_FAILURE with the config's error (below);
- a connection is ready: the call starts on it;
- the channel is in TRANSIENT_FAILURE and the call is not wait_for_ready:
  UNAVAILABLE with the plane's last error (at once, or when the channel
  gets there while the call waits);
- the call's deadline passes while it waits: DEADLINE_EXCEEDED "Deadline Exceeded";
- otherwise it waits, and starts on the first connection that is ready.

A waiting call is any object with ``_deadline`` (None or the facade's
clock), ``_wait_for_ready``, ``_start_on(conn)`` and ``_fail_start(code,
details)``: an aio call is one; the sync channel queues a small waiter for
the blocked thread.  Calls wait in the driver's queue, whose deadlines share
the plane's timer.  While calls wait, an IDLE plane (its connection was lost
before they could start) is asked to connect again.

Connection management at the channel level (the connections' own keepalive
timers are the core's):

- keepalive_time: a connection that ends with GOAWAY(ENHANCE_YOUR_CALM,
  "too_many_pings") doubles the channel's keepalive time, for every later
  connection of the channel (gRFC A8).
- grpc.client_idle_timeout_ms: a channel whose connections carried no call
  for that long goes IDLE and closes them; the next call reconnects.  The
  check runs on the driver's timer every idle_timeout while connected: it
  finds the channel idle when no call was picked since the previous check
  and no stream is open, so an idle channel closes between one and two
  timeouts after its last call.
"""

import collections
import functools
import logging
import math
import os
import socket
import weakref

from grpcpy import _cext, _channelz, _credentials, _types
from grpcpy._channel import dns
from grpcpy._channel.lb.base import IDLE, READY, TRANSIENT_FAILURE
from grpcpy._channel.plane import ChannelPlane
from grpcpy._channel.streams import StreamCall
from grpcpy._channel.target import Address, parse_target
from grpcpy._options import ChannelOptions
from grpcpy.stats import split as stats_split

__all__ = ["ChannelDriver", "NO_PREFACE"]

_INF = math.inf
_DRAIN_POLL = 0.05      # how often a connection let go is checked for its last call
_MAX_KEEPALIVE = (2 ** 31 - 1) / 1000.0    # grpc's INT_MAX milliseconds
_STATES = list(_types.ChannelConnectivity)
_StatusCode = _types.StatusCode
_UNAVAILABLE = _types.status_number(_StatusCode.UNAVAILABLE)
_LOGGER = logging.getLogger("grpcpy.channel")

# why a transport that connected is not a gRPC connection
NO_PREFACE = ("no HTTP/2 preface from the server (is it a gRPC server on this port, "
              "with the same transport security?)")


class ChannelDriver:
    """The facade-independent half of a client channel (see the module docstring)."""

    def _init_driver(self, target, options, credentials, compression):
        """Parse the options and the target (ValueError for a bad one), name
        the channel's authority, and make the plane."""
        self._credentials = credentials
        self._has_call_credentials = bool(credentials is not None and credentials._call_credentials)
        self._tls = credentials is not None and credentials.is_tls
        self._scheme = "https" if self._tls else "http"
        self._options = ChannelOptions(options, compression)
        self._target = parse_target(target)
        self._authority, self._server_hostname, self._check_call_host = _credentials.channel_names(
            self._target.authority, self._options.default_authority,
            self._options.ssl_target_name_override, self._tls)
        self._plane = ChannelPlane(self._target, self._options)
        # grpcpy.stats: the hooks this channel's calls report to, and what
        # they know of it (gRFC A66's grpc.target is the canonical URI)
        self._stats_hooks = self._options.stats_hooks      # all of them (any: calls are observed)
        self._stats_calls, self._stats_tallies = stats_split(self._stats_hooks)
        self._tally_series = {}             # (method, call type) -> the tallies' series
        self._registered_methods = set()    # methods a generated stub named as registered
        text = self._target.target
        scheme = self._target.scheme
        self._target_text = text if text.startswith(scheme + ":") else "%s:///%s" % (scheme, text)
        # retries (grpcpy._rpc.attempts): on unless grpc.enable_retries is 0; the
        # request bytes a call keeps for a replay until it commits, and all of
        # the channel's calls together (ChannelOptions)
        opts = self._options
        self._retries = opts.enable_retries
        self._retry_buffer_size = opts.per_rpc_retry_buffer_size
        self._retry_buffer_total = opts.retry_buffer_size
        self._retry_buffered = 0    # bytes kept for replays by the channel's calls
        self._retry_throttle = None
        self._config_seen = None
        self._config_changed()
        self._connections = {}      # sub_id -> the facade's connection
        self._queue = collections.deque()
        self._closed = False
        self._timer_at = _INF       # when the armed timer fires
        self._keepalive_time = self._options.keepalive_time
        idle = self._options.client_idle_timeout
        self._idle_timeout = idle if idle > 0 else _INF
        self._picks = 0             # calls that looked for a connection (activity, for the idle check)
        self._picks_seen = 0        # ... at the previous idle check
        self._idle_check_at = _INF
        # channelz: this channel's node (figures of closed connections and of
        # calls that failed before reaching one) and the live connections
        # with their subchannel's node
        self._channelz = _channelz.Node(_channelz.CHANNEL, self)
        self._channelz_live = {}
        self._posted = collections.deque()     # (fn, args) to run on the channel's thread
        self._resolver = None           # a pushing resolver once started
        self._streams = {}              # SubchannelStream -> its call, while open
        self._draining = {}             # sub_id -> a connection let go while calls ran on it

    # -- hooks (the facade's) ----------------------------------------------------------

    def _io_resolve(self, host, port):
        raise NotImplementedError

    def _io_connect(self, sub_id, address, deadline):
        raise NotImplementedError

    def _io_close(self, sub_id, conn):
        raise NotImplementedError

    def _io_arm_timer(self, when):
        raise NotImplementedError

    def _on_state_change(self, state):
        raise NotImplementedError

    def _io_post(self):
        raise NotImplementedError

    def _io_start_stream(self, call, conn):
        raise NotImplementedError

    def _io_cancel_stream(self, call):
        raise NotImplementedError

    def _clock(self):
        raise NotImplementedError

    # -- reports from other threads ------------------------------------------------------

    def _post(self, fn, *args):
        """Run ``fn(now, *args)`` on the channel's thread, under its lock (any thread)."""
        self._posted.append((fn, args))
        self._io_post()

    def _run_posted(self, now):
        posted = self._posted
        if not posted:
            return
        while posted:
            fn, args = posted.popleft()
            if not self._closed:
                fn(now, *args)
        self._drive(now)

    def _lb_report(self, done, code, trailing):
        """A picked attempt ended (the call's ``_lb_done``)."""
        self._post(_report_done, done, code, trailing)

    # -- for the facade's connections ----------------------------------------------------

    def _new_core(self):
        """The sans-IO client connection of a new transport."""
        opts = self._options
        core = _cext.ClientConnection(self._authority.encode("ascii"), self._scheme.encode("ascii"),
                                      opts.h2_config(keepalive_time=self._keepalive_time),
                                      opts.max_receive_message_length,
                                      opts.max_send_message_length, opts.user_agent)
        # grpc.enable_retries=0: no retry at all, the core's resend of a
        # refused stream included
        core.replay_refused = self._retries
        return core

    def _tls_verdict(self, ssl_object):
        """After the TLS handshake: raise OSError when the server did not
        agree on h2; else what every call on the connection fails with
        (the call host check of grpc.ssl_target_name_override), or None."""
        problem = _credentials.check_alpn(ssl_object)
        if problem:
            raise OSError(problem)
        if self._check_call_host:
            return _credentials.call_host_refusal(self._authority, ssl_object)
        return None

    # -- calls ----------------------------------------------------------------------------

    def _config_changed(self):
        """A new service config: the plane's retry throttle, a new one when
        the config's retryThrottling changed (gRFC A6 keeps the bucket per
        channel and config)."""
        plane = self._plane
        self._config_seen = plane.config_version
        config = plane.service_config
        # what calls read: None when no method has a config (the everyday
        # case); the plane itself while its first resolution may still bring one
        self._method_configs = config if config.has_method_configs else None
        self._config_settled = plane.config_settled
        self._retry_throttle = plane.retry_throttle

    def _pick_now(self, call=None):
        """The connection ``call`` starts on now, or None (then ``_submit``).
        A queued entry stands for its call through ``_lb_call``."""
        self._picks += 1
        sub = self._plane.pick(call)
        if sub is None:
            return None
        if type(sub) is tuple:
            return self._tracked_pick(call, *sub)
        conn = self._connections.get(sub)
        if conn is None or conn.closed or conn._reported or conn.core.closed:
            # (core.closed: the core ended it - a keepalive timeout - and the
            # facade has yet to report the loss; _reported: lost or going
            # away, and the channel hears of it soon; the call waits for the
            # next one)
            return None
        return conn

    def _tracked_pick(self, call, sub, done):
        """A pick with the policy's ``done``: the call reports its attempt's
        end through it; a pick that is not used is reported at once (code None)."""
        conn = self._connections.get(sub)
        if conn is None or conn.closed or conn._reported or conn.core.closed or call is None:
            done(self._clock(), None, None)
            return None
        call = call._lb_call
        if call._lb_done is not None:       # a pick before, never used
            call._lb_done(None, None)
        call._lb_done = functools.partial(self._lb_report, done)
        return conn

    def _submit(self, call, now):
        """Start, fail or queue a call that found no ready connection."""
        if self._closed:
            self._fail_waiting(call, _StatusCode.CANCELLED, "Channel closed!")
            return
        plane = self._plane
        plane.request_connection(now)
        self._drive(now)
        conn = self._pick_now(call)
        if conn is not None:
            call._start_on(conn)
            return
        failure = self._waiting_failure(call, now)
        if failure is not None:
            self._fail_waiting(call, *failure)
            return
        self._queue.append(call)
        deadline = call._deadline
        if deadline is not None and deadline < self._timer_at:
            self._timer_at = deadline
            self._io_arm_timer(deadline)

    def _fail_waiting(self, call, code, details):
        """A call ends without reaching a connection: channelz counts it on
        the channel (its connections count the others)."""
        node = self._channelz
        node.calls_started += 1
        node.calls_failed += 1
        node.last_call_started_ns = _cext.wall_ns()
        call._fail_start(code, details)

    def _waiting_failure(self, call, now):
        if self._plane.state == TRANSIENT_FAILURE and not call._wait_for_ready:
            return _StatusCode.UNAVAILABLE, self._plane.last_error or "failed to connect"
        if call._deadline is not None and call._deadline <= now:
            return _StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"
        return None

    def _run_queue(self, now):
        queue = self._queue
        if self._plane.picks_per_call and queue:
            # the policy places each call by what it carries (ring_hash's
            # header): one waiting for its backend holds back no other
            waiting = list(queue)
            queue.clear()
            for call in waiting:
                conn = self._pick_now(call) if self._plane.state == READY else None
                if conn is None:
                    queue.append(call)
                else:
                    call._start_on(conn)
        while queue:
            conn = self._pick_now(queue[0])
            if conn is None:
                break
            queue.popleft()._start_on(conn)
        if queue:
            waiting = list(queue)
            queue.clear()
            for call in waiting:
                failure = self._waiting_failure(call, now)
                if failure is None:
                    queue.append(call)
                else:
                    self._fail_waiting(call, *failure)

    # -- the loop ---------------------------------------------------------------------------

    def _connectivity(self):
        return _STATES[self._plane.state]

    def _request_connection(self, now):
        """try_to_connect: leave IDLE."""
        if not self._closed:
            self._plane.request_connection(now)
            self._drive(now)

    def _drive(self, now):
        """Perform the plane's actions, wake on its state changes, start or
        fail waiting calls, re-arm the timer."""
        plane = self._plane
        if self._queue and plane.state == IDLE and not self._closed:
            plane.request_connection(now)      # waiting calls still want a connection
        actions = plane.take_actions()
        while actions:
            for action in actions:
                kind = action[0]
                if kind == "connect":
                    _, sub_id, address, deadline = action
                    refusal = _credentials.local_refusal(self._credentials, address)
                    if refusal:
                        plane.connect_failed(now, sub_id, _connect_error(address, refusal))
                    else:
                        self._io_connect(sub_id, address, deadline)
                elif kind == "close":
                    self._close_connection(action[1], self._connections.pop(action[1], None))
                elif kind == "resolve":
                    self._io_resolve(action[1], action[2])
                elif kind == "stream":
                    self._start_stream(now, action[1])
                elif kind == "cancel_stream":
                    call = self._streams.pop(action[1], None)
                    if call is not None:
                        self._io_cancel_stream(call)
                elif kind == "start_resolver":
                    self._start_resolver(now, action[1])
                elif kind == "resolve_now":
                    self._resolver_hint()
            actions = plane.take_actions()   # a refused connect moves the policy on
        if plane.config_version != self._config_seen or self._config_settled != plane.config_settled:
            self._config_changed()
        if plane.take_state_changes():
            self._on_state_change(_STATES[plane.state])
        when = min(plane.next_timer(), self._idle_check_at)
        if self._draining:
            self._sweep_draining()
            if self._draining:
                when = min(when, now + _DRAIN_POLL)
        if self._queue:
            self._run_queue(now)
            # (a waiting call's pick may have asked the policy for a
            # connection, which it starts from its timer)
            when = min(when, plane.next_timer())
            for call in self._queue:
                if call._deadline is not None and call._deadline < when:
                    when = call._deadline
        if when < self._timer_at:
            self._timer_at = when
            self._io_arm_timer(when)

    def _timer_fired(self, now, when):
        if when != self._timer_at or self._closed:
            return          # replaced by an earlier timer
        self._timer_at = _INF
        now = max(now, when)    # a loop may run a timer a hair early
        self._plane.timer(now)
        if self._idle_check_at <= now:
            self._idle_check(now)
        self._drive(now)

    def _close_connection(self, sub_id, conn):
        """The plane no longer wants this connection: one still carrying
        calls (its address left the resolver's list, the policy dropped it)
        takes no new call and closes when the last one ends."""
        if conn is not None and not conn.closed and not self._closed and conn.core.local_open:
            self._draining[sub_id] = conn
        else:
            self._io_close(sub_id, conn)

    def _sweep_draining(self):
        draining = self._draining
        for sub_id, conn in list(draining.items()):
            if conn.closed or not conn.core.local_open:
                del draining[sub_id]
                self._io_close(sub_id, conn)

    def _start_resolver(self, now, resolver):
        self._resolver = resolver
        try:
            resolver.start(_ResolverListener(self))
        except Exception as exc:    # an application's resolver
            self._plane.push_failed(now, "%s: %s" % (type(exc).__name__, exc))

    def _resolver_hint(self):
        try:
            self._resolver.resolve_now()
        except Exception:
            _LOGGER.exception("resolve_now of %r failed", self._resolver)

    def _on_pushed(self, now, addresses, config):
        self._plane.pushed(now, addresses, config)

    def _on_push_failed(self, now, message):
        self._plane.push_failed(now, message)

    def _stream_done(self, now, stream, code, details):
        self._streams.pop(stream, None)
        _stream_ended(now, stream, code, details)

    def _start_stream(self, now, stream):
        """A policy's stream call on its subchannel's connection (see
        grpcpy._channel.streams); one whose connection is gone ends at once."""
        conn = self._connections.get(stream.sub_id)
        if stream.cancelled:
            return
        if conn is None or conn.closed or conn._reported or conn.core.closed:
            self._post(_stream_ended, stream, _UNAVAILABLE, "connection lost")
            return
        call = StreamCall(self, stream)
        self._streams[stream] = call
        self._io_start_stream(call, conn)

    def _idle_check(self, now):
        """grpc.client_idle_timeout_ms (see the module docstring)."""
        self._idle_check_at = _INF
        if not self._connections or self._closed:
            return          # armed again by the next connection
        busy = (self._queue or self._picks != self._picks_seen
                or any(conn.core.local_open for conn in self._connections.values()))
        if busy:
            self._picks_seen = self._picks
            self._idle_check_at = now + self._idle_timeout
        else:
            self._plane.enter_idle(now)     # 'close' actions for the connections

    # -- the facade's reports ------------------------------------------------------------------

    def _lookup_done(self, now, infos, txt_records=None):
        """The answer to an ``_io_resolve``: getaddrinfo-shaped ``infos`` and
        the TXT records ``grpcpy._channel.dns.lookup`` found (see
        ChannelPlane.resolved)."""
        if self._closed:
            return
        addresses = []
        for family, _, _, _, sockaddr in infos:
            if family == socket.AF_INET:
                address = Address("inet", sockaddr[0], sockaddr[1])
            elif family == socket.AF_INET6:
                address = Address("inet6", sockaddr[0], sockaddr[1])
            else:
                continue
            if address not in addresses:
                addresses.append(address)
        self._plane.resolved(now, addresses, txt_records)
        self._drive(now)

    def _lookup_call(self, host, port):
        """(function, args) for a facade's ``_io_resolve``: the blocking lookup
        of grpcpy._channel.dns, with the DNS server and TXT choice of the plane."""
        return dns.lookup, (host, port, self._plane.dns_server, self._plane.lookup_txt)

    def _lookup_failed(self, now, host, port, error):
        if not self._closed:
            self._plane.resolution_failed(now, "DNS resolution failed for %s:%s: %s" % (host, port, error))
            self._drive(now)

    def _connect_done(self, now, sub_id, conn):
        """The attempt ``sub_id`` made a connection.  False when the channel is
        closed: the facade then closes it."""
        if self._closed:
            return False
        self._connections[sub_id] = conn
        sub = self._plane._by_id.get(sub_id)
        self._channelz_live[conn] = None if sub is None else _channelz.subchannel_node(sub, self._channelz)
        if self._idle_check_at == _INF and self._idle_timeout != _INF:
            self._picks_seen = self._picks
            self._idle_check_at = now + self._idle_timeout
        self._plane.connect_succeeded(now, sub_id)
        if conn.closed and self._connections.get(sub_id) is conn:
            # lost before it was registered (e.g. reset by a server that is
            # going away): its report found nothing to remove
            del self._connections[sub_id]
            self._channelz_sweep()
            self._plane.connection_lost(now, sub_id)
        self._drive(now)
        return True

    def _connect_failed(self, now, sub_id, address, error):
        if not self._closed:
            self._plane.connect_failed(now, sub_id, _connect_error(address, error))
            self._drive(now)

    def _connection_lost(self, now, conn):
        """A registered connection closed, failed or got GOAWAY."""
        self._channelz_sweep()
        core = getattr(conn, "core", None)
        if core is not None and core.too_many_pings and self._keepalive_time != _INF:
            # the server's ping policy: ping half as often from now on (gRFC A8)
            self._keepalive_time = min(self._keepalive_time * 2, _MAX_KEEPALIVE)
        if self._connections.get(conn.sub_id) is conn:
            del self._connections[conn.sub_id]
            if not self._closed:
                self._plane.connection_lost(now, conn.sub_id)
                self._drive(now)

    def _channelz_sweep(self):
        """A connection was lost: the call figures of those now closed stay
        with the channel and their subchannel. One that only went away
        (GOAWAY) may still finish calls: it stays among the live ones, read
        as they are, until a later report finds it closed."""
        live = self._channelz_live
        for closed in [c for c in live if c.closed]:
            sub_node = live.pop(closed)
            core = getattr(closed, "core", None)
            if isinstance(core, _cext.GrpcConnection):      # (not a test's stand-in)
                self._channelz.retire(core)
                if sub_node is not None:
                    sub_node.retire(core)

    # -- closing --------------------------------------------------------------------------------

    def _close_queue(self):
        """The channel is closing: no call starts any more; the waiting ones
        end CANCELLED "Channel closed!" (grpcio's words)."""
        self._closed = True
        _channelz.forget(self._channelz)
        waiting = list(self._queue)
        self._queue.clear()
        for call in waiting:
            self._fail_waiting(call, _StatusCode.CANCELLED, "Channel closed!")

    def _shutdown(self, now):
        """After ``_close_queue`` and the calls in flight: stop the plane and
        close every connection and attempt."""
        resolver, self._resolver = self._resolver, None
        if resolver is not None:
            try:
                resolver.close()
            except Exception:
                _LOGGER.exception("close of %r failed", resolver)
        for call in list(self._streams.values()):
            self._io_cancel_stream(call)
        self._streams.clear()
        self._plane.shutdown()
        self._drive(now)
        for sub_id, conn in list(self._connections.items()) + list(self._draining.items()):
            self._io_close(sub_id, conn)
        self._connections.clear()
        self._draining.clear()


class _ResolverListener:
    """What a pushing resolver reports to (any thread, any time)."""

    __slots__ = ("_driver",)

    def __init__(self, driver):
        self._driver = weakref.ref(driver)

    def update(self, addresses, service_config=None):
        """The target's addresses (Address objects) now, and its service
        config (JSON text, a dict, or None for none)."""
        addresses = list(addresses)
        for address in addresses:
            if not isinstance(address, Address):
                raise TypeError("a resolver gives Address objects, not %r" % (address,))
        driver = self._driver()
        if driver is not None:
            driver._post(driver._on_pushed, addresses, service_config)

    def error(self, message):
        """Resolution failed (the resolver keeps trying by itself)."""
        driver = self._driver()
        if driver is not None:
            driver._post(driver._on_push_failed, str(message))


def _report_done(now, done, code, trailing):
    try:
        done(now, code, trailing)
    except Exception:
        _LOGGER.exception("a load-balancing policy's done callback failed")


def _stream_ended(now, stream, code, details):
    if not stream.cancelled:
        stream.cancelled = True
        stream.on_end(now, code, details)


def _connect_error(address, error):
    """Why an attempt failed, in words (the plane puts the address in front):
    an OSError's text without its errno ("Connection refused"; asyncio's
    own wording of a refusal names the address again)."""
    if isinstance(error, OSError):
        if isinstance(error.errno, int) and error.errno > 0 and not isinstance(error, socket.gaierror):
            return os.strerror(error.errno)
        if error.strerror:
            return error.strerror
    if isinstance(error, TimeoutError):
        return "connect timed out"
    return str(error) or "connect timed out"
