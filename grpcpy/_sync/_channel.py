"""grpcpy.insecure_channel(): the threaded channel, compatible with grpc.Channel.

The channel performs what the sans-IO channel plane asks for (DNS lookups and
connects on short-lived threads, timers on a timer thread) and starts calls on
the connection the plane picks. Calls block on Conditions that share their
connection's lock; the connection's I/O thread wakes them.
"""
import collections
import logging
import socket
import ssl
import threading
import time

from grpcpy import _cext, _credentials, _types
from grpcpy import _channel_plane as plane_mod
from grpcpy._options import ChannelOptions
from grpcpy._rpc.events import dispatch_client
from grpcpy._sync._call import (StreamStreamMultiCallable, StreamUnaryMultiCallable, UnaryStreamMultiCallable,
                                UnaryUnaryMultiCallable)
from grpcpy._sync._conn import SyncConnection, tls_handshake

_LOGGER = logging.getLogger("grpcpy.channel")
_INF = float("inf")
_STATES = list(_types.ChannelConnectivity)
StatusCode = _types.StatusCode
monotonic = time.monotonic


class _ClientConnection(SyncConnection):
    def __init__(self, channel, sub_id, sock):
        opts = channel._options
        core = _cext.ClientConnection(channel._authority.encode("ascii"), channel._scheme.encode("ascii"),
                                      opts.h2_config(),
                                      opts.max_receive_message_length, opts.max_send_message_length,
                                      opts.user_agent)
        super().__init__(core, sock, name="grpcpy-channel-io")
        self.channel = channel
        self.sub_id = sub_id
        self._reported = False
        self.handshake = threading.Event()   # the server's HTTP/2 preface arrived
        self.call_refusal = None             # (status, details) every call on it fails with

    dispatch = dispatch_client

    def handshake_done(self):
        self.handshake.set()

    def lost_locked(self):
        self.handshake.set()   # wake a connect waiting for the preface
        self.report_lost()

    def report_lost(self):
        if not self._reported:
            self._reported = True
            # the channel lock is taken on another thread: never under ours
            threading.Thread(target=self.channel._subchannel_lost, args=(self,), daemon=True).start()


class Channel(_types.Channel):
    """grpc.Channel: thread-safe, shared by any number of threads."""

    def __init__(self, target, options=None, credentials=None, compression=None):
        self._credentials = credentials
        self._has_call_credentials = bool(credentials is not None and credentials._call_credentials)
        self._tls = credentials is not None and credentials.is_tls
        self._scheme = "https" if self._tls else "http"
        self._options = ChannelOptions(options, compression)
        self._target = plane_mod.parse_target(target)
        self._authority, self._server_hostname, self._check_call_host = _credentials.channel_names(
            self._target.authority, self._options.default_authority,
            self._options.raw.get("grpc.ssl_target_name_override"), self._tls)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._plane = plane_mod.ChannelPlane(self._target, self._options.raw)
        self._connections = {}
        self._closed = False
        self._timer = None
        self._timer_at = _INF
        self._subscribers = []
        self._last_published = None
        self._notifier = _Notifier()

    # -- multicallables --------------------------------------------------------------

    def unary_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return UnaryUnaryMultiCallable(self, method, request_serializer, response_deserializer)

    def unary_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return UnaryStreamMultiCallable(self, method, request_serializer, response_deserializer)

    def stream_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return StreamUnaryMultiCallable(self, method, request_serializer, response_deserializer)

    def stream_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return StreamStreamMultiCallable(self, method, request_serializer, response_deserializer)

    # -- connectivity ------------------------------------------------------------------

    def subscribe(self, callback, try_to_connect=False):
        with self._lock:
            self._subscribers.append(callback)
            # the current state first, then every change, in order (one
            # delivery thread per channel, as grpcio)
            self._notifier.post(callback, _STATES[self._plane.state])
            if try_to_connect and not self._closed:
                self._plane.request_connection(monotonic())
                self._drive_locked()

    def unsubscribe(self, callback):
        with self._lock:
            try:
                self._subscribers.remove(callback)
            except ValueError:
                pass

    def _state(self, try_to_connect=False):
        with self._lock:
            if try_to_connect and not self._closed:
                self._plane.request_connection(monotonic())
                self._drive_locked()
            return _STATES[self._plane.state]

    def close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # calls in flight end CANCELLED "Channel closed!" (grpcio), before
            # the plane's shutdown closes their connections
            for conn in self._connections.values():
                with conn.lock:
                    if not conn.closed:
                        for stream in list(conn.core.streams.values()):
                            if stream.call is not None:
                                conn.core.cancel_call(stream.call, "Channel closed!")
                        conn.after_action_locked()
            self._plane.shutdown()
            self._drive_locked()
            connections = list(self._connections.values())
            self._connections.clear()
            if self._timer is not None:
                self._timer.cancel()
            self._changed.notify_all()
            self._notifier.stop()
        for conn in connections:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    # -- picking ---------------------------------------------------------------------------

    def _needs_wait(self):
        with self._lock:
            return self._pick_locked() is None

    def _pick_locked(self):
        sub = self._plane.pick()
        if sub is None:
            return None
        conn = self._connections.get(sub)
        if conn is None or conn.closed:
            return None
        return conn

    def _get_connection(self, state):
        """A ready connection for the call, waiting for one as the plane
        allows; None after failing the call."""
        with self._lock:
            while True:
                if self._closed:
                    state._fail(StatusCode.CANCELLED, "Channel closed!")
                    return None
                conn = self._pick_locked()
                if conn is not None:
                    return conn
                self._plane.request_connection(monotonic())
                self._drive_locked()
                conn = self._pick_locked()
                if conn is not None:
                    return conn
                if self._plane.state == plane_mod.TRANSIENT_FAILURE and not state._wait_for_ready:
                    state._fail(StatusCode.UNAVAILABLE, self._plane.last_error or "failed to connect")
                    return None
                if state._deadline is not None:
                    remaining = state._deadline - monotonic()
                    if remaining <= 0:
                        state._fail(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
                        return None
                    self._changed.wait(remaining)
                else:
                    self._changed.wait()

    # -- the plane's actions -----------------------------------------------------------------

    def _drive_locked(self):
        plane = self._plane
        for action in plane.take_actions():
            kind = action[0]
            if kind == "resolve":
                threading.Thread(target=self._resolve, args=(action[1], action[2]), daemon=True).start()
            elif kind == "connect":
                _, sub_id, address, deadline = action
                threading.Thread(target=self._connect, args=(sub_id, address, deadline), daemon=True).start()
            elif kind == "close":
                conn = self._connections.pop(action[1], None)
                if conn is not None:
                    conn._reported = True
                    threading.Thread(target=conn.close, daemon=True).start()
        changes = plane.take_state_changes()
        if changes:
            self._changed.notify_all()
            state = _STATES[plane.state]
            if self._subscribers and state != self._last_published:
                self._last_published = state
                for callback in self._subscribers:
                    self._notifier.post(callback, state)
        when = plane.next_timer()
        if when < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = threading.Timer(max(0.0, when - monotonic()), self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _on_timer(self):
        with self._lock:
            self._timer = None
            self._timer_at = _INF
            if not self._closed:
                self._plane.timer(monotonic())
                self._drive_locked()

    def _resolve(self, host, port):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            with self._lock:
                if not self._closed:
                    self._plane.resolution_failed(monotonic(), "DNS resolution failed for %s:%s: %s" % (host, port, exc))
                    self._drive_locked()
            return
        addresses = []
        for family, _, _, _, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6):
                addr = plane_mod.Address.ip(sockaddr[0], sockaddr[1])
                if addr not in addresses:
                    addresses.append(addr)
        with self._lock:
            if not self._closed:
                self._plane.resolved(monotonic(), addresses)
                self._drive_locked()

    def _connect(self, sub_id, address, deadline):
        call_refusal = None
        try:
            timeout = max(0.001, deadline - monotonic())
            refusal = _credentials.local_refusal(self._credentials, address)
            if refusal:
                raise OSError(refusal)
            if address.family == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                try:
                    sock.connect(address.path)
                except OSError:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((address.host, address.port), timeout=timeout)
            if self._tls:
                try:
                    tls = tls_handshake(sock, self._credentials.client_context(), False,
                                        self._server_hostname, max(0.001, deadline - monotonic()))
                    problem = _credentials.check_alpn(tls.ssl_object)
                    if problem:
                        raise OSError(problem)
                    if self._check_call_host:
                        call_refusal = _credentials.call_host_refusal(self._authority, tls.ssl_object)
                except (OSError, ssl.SSLError):
                    sock.close()
                    raise
                sock = tls
        except (OSError, ssl.SSLError) as exc:
            with self._lock:
                if not self._closed:
                    self._plane.connect_failed(monotonic(), sub_id, "failed to connect to %s: %s" % (address, exc))
                    self._drive_locked()
            return
        conn = _ClientConnection(self, sub_id, sock)
        conn.call_refusal = call_refusal
        conn.start()
        # established only once the server's HTTP/2 preface arrived
        if not conn.handshake.wait(max(0.0, deadline - monotonic())) or conn.closed:
            conn._reported = True
            conn.close()
            with self._lock:
                if not self._closed:
                    self._plane.connect_failed(monotonic(), sub_id, "failed to connect to %s: no HTTP/2 preface "
                                               "from the server (is it a gRPC server on this port, with the same "
                                               "transport security?)" % (address,))
                    self._drive_locked()
            return
        with self._lock:
            if self._closed:
                conn.close()
                return
            self._connections[sub_id] = conn
            self._plane.connect_succeeded(monotonic(), sub_id)
            if conn.closed:
                # lost before it was registered (e.g. reset by a server
                # that is going away): its report found nothing to remove
                del self._connections[sub_id]
                self._plane.connection_lost(monotonic(), sub_id)
            self._drive_locked()

    def _subchannel_lost(self, conn):
        with self._lock:
            if self._connections.get(conn.sub_id) is conn:
                del self._connections[conn.sub_id]
                if not self._closed:
                    self._plane.connection_lost(monotonic(), conn.sub_id)
                    self._drive_locked()


class _Notifier:
    """Delivers connectivity callbacks in order on one thread, started when
    there is something to deliver and gone when there is not."""

    def __init__(self):
        self._lock = threading.Lock()
        self._queue = collections.deque()
        self._running = False
        self._stopped = False

    def post(self, callback, state):
        with self._lock:
            if self._stopped:
                return
            self._queue.append((callback, state))
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._deliver, name="grpcpy-connectivity", daemon=True).start()

    def stop(self):
        with self._lock:
            self._stopped = True
            self._queue.clear()

    def _deliver(self):
        while True:
            with self._lock:
                if not self._queue:
                    self._running = False
                    return
                callback, state = self._queue.popleft()
            _safe_call(callback, state)


def _safe_call(callback, state):
    try:
        callback(state)
    except Exception:
        _LOGGER.exception("connectivity callback raised")


def secure_channel(target, credentials, options=None, compression=None):
    """A channel with channel credentials: TLS, mTLS or local (grpc.secure_channel)."""
    if credentials is None:
        raise TypeError("secure_channel needs channel credentials")
    return Channel(target, options, credentials, compression)


def insecure_channel(target, options=None, compression=None):
    """A channel without transport security (grpc.insecure_channel)."""
    return Channel(target, options, None, compression)


class _ChannelReadyFuture(_types.Future):
    def __init__(self, channel):
        self._channel = channel
        self._ready = threading.Event()
        self._cancelled = False
        self._callbacks = []
        self._lock = threading.Lock()
        channel.subscribe(self._update, try_to_connect=True)

    def _update(self, state):
        if state == _types.ChannelConnectivity.READY:
            with self._lock:
                if self._ready.is_set() or self._cancelled:
                    return
                self._ready.set()
                callbacks, self._callbacks = self._callbacks, []
            self._channel.unsubscribe(self._update)
            for cb in callbacks:
                _safe_call(cb, self)

    def cancel(self):
        with self._lock:
            if self._ready.is_set():
                return False
            self._cancelled = True
            callbacks, self._callbacks = self._callbacks, []
        self._channel.unsubscribe(self._update)
        self._ready.set()
        for cb in callbacks:
            _safe_call(cb, self)
        return True

    def cancelled(self):
        return self._cancelled

    def running(self):
        return not self._ready.is_set()

    def done(self):
        return self._ready.is_set()

    def result(self, timeout=None):
        if not self._ready.wait(timeout):
            raise _types.FutureTimeoutError()
        if self._cancelled:
            raise _types.FutureCancelledError()
        return None

    def exception(self, timeout=None):
        self.result(timeout)
        return None

    def traceback(self, timeout=None):
        self.result(timeout)
        return None

    def add_done_callback(self, fn):
        with self._lock:
            if not self._ready.is_set():
                self._callbacks.append(fn)
                return
        fn(self)


def channel_ready_future(channel):
    """A Future that completes when the channel is READY (grpc.channel_ready_future)."""
    return _ChannelReadyFuture(channel)
