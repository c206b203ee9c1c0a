"""The channel driver: the one loop that runs a ChannelPlane for a facade, and
the rules for calls that wait for a connection.

Both facades' Channel classes inherit :class:`ChannelDriver` and add only
I/O and waiting.  Every method here runs under the facade's channel lock
(sync) or on its event loop (aio), never blocks, and takes the time as
``now`` (the facade's monotonic clock: time.monotonic or loop.time).

The hooks a facade implements (none may block; each reports back through
the inputs below):

==============================================  ====================================================
``_io_resolve(host, port)``                      look the name up, then ``_lookup_done(now, infos)``
                                                 (getaddrinfo's answer) or
                                                 ``_lookup_failed(now, host, port, error)``
``_io_connect(sub_id, address, deadline)``       open a transport to the Address (TLS:
                                                 ``_tls_verdict``), wait for the server's HTTP/2
                                                 preface, then ``_connect_done(now, sub_id, conn)``
                                                 or ``_connect_failed(now, sub_id, address, error)``
``_io_close(sub_id, conn)``                      close ``conn``; None: give up the attempt
``_io_arm_timer(when)``                          replace the timer: ``_timer_fired(now, when)`` at
                                                 ``when``
``_on_state_change(state)``                      wake what waits for a ChannelConnectivity change
==============================================  ====================================================

and it reports a lost connection with ``_connection_lost(now, conn)``.  A
connection object has ``sub_id``, ``closed`` and ``core`` (its sans-IO
ClientConnection, whose ``closed``, ``local_open`` and ``too_many_pings`` the
driver reads).

Calls.  ``_pick_now()`` is the per-call path: the ready connection the
policy picks, or None.  A call that gets None goes to ``_submit(call, now)``,
which applies the queued-call rules, the same for both facades:

- the channel is closed (or closes while it waits): CANCELLED "Channel closed!";
- the channel's service config is unusable: INVALID_ARGUMENT, as grpcio;
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
import math
import socket

from grpcpy import _cext, _credentials, _types
from grpcpy._channel.lb.base import IDLE, TRANSIENT_FAILURE
from grpcpy._channel.plane import ChannelPlane
from grpcpy._channel.target import Address, parse_target
from grpcpy._options import ChannelOptions

__all__ = ["ChannelDriver", "NO_PREFACE"]

_INF = math.inf
_MAX_KEEPALIVE = (2 ** 31 - 1) / 1000.0    # grpc's INT_MAX milliseconds
_STATES = list(_types.ChannelConnectivity)
_StatusCode = _types.StatusCode

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

    # -- for the facade's connections ----------------------------------------------------

    def _new_core(self):
        """The sans-IO client connection of a new transport."""
        opts = self._options
        return _cext.ClientConnection(self._authority.encode("ascii"), self._scheme.encode("ascii"),
                                      opts.h2_config(keepalive_time=self._keepalive_time),
                                      opts.max_receive_message_length,
                                      opts.max_send_message_length, opts.user_agent)

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

    def _pick_now(self):
        """The connection a call starts on now, or None (then ``_submit``)."""
        self._picks += 1
        sub = self._plane.pick()
        if sub is None:
            return None
        conn = self._connections.get(sub)
        if conn is None or conn.closed or conn.core.closed:
            # (core.closed: the core ended it - a keepalive timeout - and the
            # facade has yet to report the loss; the call waits for the next one)
            return None
        return conn

    def _submit(self, call, now):
        """Start, fail or queue a call that found no ready connection."""
        if self._closed:
            call._fail_start(_StatusCode.CANCELLED, "Channel closed!")
            return
        plane = self._plane
        if plane.config_error is not None:
            call._fail_start(_StatusCode.INVALID_ARGUMENT, "Failed to create channel to '%s':%s"
                             % (self._target.target, plane.config_error))
            return
        plane.request_connection(now)
        self._drive(now)
        conn = self._pick_now()
        if conn is not None:
            call._start_on(conn)
            return
        failure = self._waiting_failure(call, now)
        if failure is not None:
            call._fail_start(*failure)
            return
        self._queue.append(call)
        deadline = call._deadline
        if deadline is not None and deadline < self._timer_at:
            self._timer_at = deadline
            self._io_arm_timer(deadline)

    def _waiting_failure(self, call, now):
        if self._plane.state == TRANSIENT_FAILURE and not call._wait_for_ready:
            return _StatusCode.UNAVAILABLE, self._plane.last_error or "failed to connect"
        if call._deadline is not None and call._deadline <= now:
            return _StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"
        return None

    def _run_queue(self, now):
        queue = self._queue
        while queue:
            conn = self._pick_now()
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
                    call._fail_start(*failure)

    # -- the loop ---------------------------------------------------------------------------

    def _connectivity(self):
        return _STATES[self._plane.state]

    def _request_connection(self, now):
        """try_to_connect: leave IDLE."""
        if not self._closed and self._plane.config_error is None:
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
                    self._io_close(action[1], self._connections.pop(action[1], None))
                else:
                    self._io_resolve(action[1], action[2])
            actions = plane.take_actions()   # a refused connect moves the policy on
        if plane.take_state_changes():
            self._on_state_change(_STATES[plane.state])
        when = min(plane.next_timer(), self._idle_check_at)
        if self._queue:
            self._run_queue(now)
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

    def _lookup_done(self, now, infos):
        """getaddrinfo's answer for an ``_io_resolve``."""
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
        self._plane.resolved(now, addresses)
        self._drive(now)

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
        if self._idle_check_at == _INF and self._idle_timeout != _INF:
            self._picks_seen = self._picks
            self._idle_check_at = now + self._idle_timeout
        self._plane.connect_succeeded(now, sub_id)
        if conn.closed and self._connections.get(sub_id) is conn:
            # lost before it was registered (e.g. reset by a server that is
            # going away): its report found nothing to remove
            del self._connections[sub_id]
            self._plane.connection_lost(now, sub_id)
        self._drive(now)
        return True

    def _connect_failed(self, now, sub_id, address, error):
        if not self._closed:
            self._plane.connect_failed(now, sub_id, _connect_error(address, error))
            self._drive(now)

    def _connection_lost(self, now, conn):
        """A registered connection closed, failed or got GOAWAY."""
        core = getattr(conn, "core", None)
        if core is not None and core.too_many_pings and self._keepalive_time != _INF:
            # the server's ping policy: ping half as often from now on (gRFC A8)
            self._keepalive_time = min(self._keepalive_time * 2, _MAX_KEEPALIVE)
        if self._connections.get(conn.sub_id) is conn:
            del self._connections[conn.sub_id]
            if not self._closed:
                self._plane.connection_lost(now, conn.sub_id)
                self._drive(now)

    # -- closing --------------------------------------------------------------------------------

    def _close_queue(self):
        """The channel is closing: no call starts any more; the waiting ones
        end CANCELLED "Channel closed!" (grpcio's words)."""
        self._closed = True
        waiting = list(self._queue)
        self._queue.clear()
        for call in waiting:
            call._fail_start(_StatusCode.CANCELLED, "Channel closed!")

    def _shutdown(self, now):
        """After ``_close_queue`` and the calls in flight: stop the plane and
        close every connection and attempt."""
        self._plane.shutdown()
        self._drive(now)
        for sub_id, conn in list(self._connections.items()):
            self._io_close(sub_id, conn)
        self._connections.clear()


def _connect_error(address, error):
    return "failed to connect to %s: %s" % (address, str(error) or "timed out")
