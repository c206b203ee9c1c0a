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
import sys
import threading
import time

from grpcpy import _cext, _credentials, _types
from grpcpy import _channel_plane as plane_mod
from grpcpy._options import ChannelOptions
from grpcpy._sync._conn import SyncConnection, tls_handshake

_LOGGER = logging.getLogger("grpcpy.channel")
_INF = float("inf")
_STATES = list(_types.ChannelConnectivity)
StatusCode = _types.StatusCode
monotonic = time.monotonic
CE_INITIAL_METADATA = _cext.CE_INITIAL_METADATA
CE_MESSAGE = _cext.CE_MESSAGE
CE_CALL_ENDED = _cext.CE_CALL_ENDED
CE_WRITE_READY = _cext.CE_WRITE_READY
CE_GOAWAY = _cext.CE_GOAWAY
CE_CONNECTION_CLOSED = _cext.CE_CONNECTION_CLOSED
CE_CONNECTION_READY = _cext.CE_CONNECTION_READY


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

    def dispatch(self, events):
        for ev in events:
            kind = ev.kind
            if kind == CE_MESSAGE:
                ev.call._on_message(ev.data, ev.value)
            elif kind == CE_CALL_ENDED:
                ev.call._on_end(ev.code, ev.details, ev.metadata)
            elif kind == CE_INITIAL_METADATA:
                ev.call._on_initial_metadata(ev.metadata)
            elif kind == CE_WRITE_READY:
                ev.call._cond.notify_all()
            elif kind == CE_CONNECTION_READY:
                self.handshake.set()
            elif kind == CE_GOAWAY or kind == CE_CONNECTION_CLOSED:
                self._report_lost()

    def lost_locked(self):
        self.handshake.set()   # wake a connect waiting for the preface
        self._report_lost()

    def _report_lost(self):
        if not self._reported:
            self._reported = True
            # the channel lock is taken on another thread: never under ours
            threading.Thread(target=self.channel._subchannel_lost, args=(self,), daemon=True).start()


class _EOFType:
    pass


_EOF = _EOFType()


class _Call:
    """State of one client call; the I/O thread fills it under the lock."""

    def __init__(self, channel, method, serializer, deserializer, timeout, metadata, wait_for_ready,
                 compression):
        self._channel = channel
        self._method = method
        self._serializer = serializer
        self._deserializer = deserializer
        self._deadline = None if timeout is None else monotonic() + timeout
        self._metadata = metadata
        self._wait_for_ready = wait_for_ready
        self._compression = _types.compression_name(compression) or channel._options.compression
        self._conn = None
        self._core_call = None
        self._cond = None
        self._messages = collections.deque()
        self._initial_metadata = None
        self._code = None
        self._details = None
        self._trailing_metadata = None
        self._call_credentials = None
        self._done_event = threading.Event()
        self._callbacks = []
        self._cb_lock = threading.Lock()
        self._cancelled = False

    # -- start ---------------------------------------------------------------------

    def _start(self, first_message=None, unary=False):
        """Put the call on a connection (waiting for one if needed), and send
        the request if it is a unary request."""
        if not self._authenticate():
            return
        conn = self._channel._get_connection(self)
        if conn is None:
            return
        if conn.call_refusal is not None:
            self._fail(*conn.call_refusal)
            return
        with conn.lock:
            if self._done_event.is_set():
                return
            self._conn = conn
            self._cond = threading.Condition(conn.lock)
            now = monotonic()
            timeout = -1.0 if self._deadline is None else max(0.0, self._deadline - now)
            try:
                self._core_call = conn.core.start_call(self._method, now, timeout, self._metadata,
                                                       self._compression, self)
            except (_cext.MetadataError, ValueError) as exc:
                self._finish_locked(StatusCode.INTERNAL, str(exc))
                return
            if unary:
                conn.core.send_unary(self._core_call, first_message)
            conn.after_action_locked()

    def _authenticate(self):
        """Run the call's metadata plugins (call credentials) in this
        thread; False when the call failed instead."""
        channel = self._channel
        plugins, refusal = _credentials.call_plugins(channel._credentials, self._call_credentials)
        if refusal is not None:
            self._fail(*refusal)
            return False
        if not plugins:
            return True
        context = _credentials.auth_context_for(channel._scheme, channel._authority, self._method)
        extra = []
        for plugin in plugins:
            answer = []
            ready = threading.Event()

            def done(metadata, error, answer=answer, ready=ready):
                answer.append((metadata, error))
                ready.set()

            _credentials.run_plugin(plugin, context, done)
            remaining = None if self._deadline is None else max(0.0, self._deadline - monotonic())
            if not ready.wait(remaining):
                self._fail(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
                return False
            metadata, error = answer[0]
            if error is not None:
                self._fail(StatusCode.UNAVAILABLE, error)
                return False
            extra.extend(metadata)
        self._metadata = tuple(self._metadata or ()) + tuple(extra)
        return True

    def _fail(self, code, details):
        """The channel could not give the call a connection."""
        self._code = code
        self._details = details
        self._trailing_metadata = ()
        if self._initial_metadata is None:
            self._initial_metadata = ()
        self._set_done()

    def _finish_locked(self, code, details):
        self._fail(code, details)
        if self._cond is not None:
            self._cond.notify_all()

    # -- events (I/O thread, connection lock held) ----------------------------------------

    def _on_initial_metadata(self, metadata):
        self._initial_metadata = metadata
        self._cond.notify_all()

    def _on_message(self, data, wire):
        self._messages.append((data, wire))
        self._cond.notify_all()

    def _on_end(self, code, details, trailing):
        if self._done_event.is_set():
            return
        self._code = _types.status_from_number(code)
        self._details = details
        self._trailing_metadata = trailing
        if self._initial_metadata is None:
            self._initial_metadata = ()
        if self._cond is not None:
            self._cond.notify_all()
        self._set_done()

    def _set_done(self):
        with self._cb_lock:
            self._done_event.set()
            callbacks, self._callbacks = self._callbacks, []
        if callbacks:
            threading.Thread(target=self._run_callbacks, args=(callbacks,), daemon=True).start()

    def _run_callbacks(self, callbacks):
        for cb in callbacks:
            try:
                cb()
            except Exception:
                _LOGGER.exception("callback raised")

    # -- waiting ----------------------------------------------------------------------------

    def _wait_done(self, timeout=None):
        return self._done_event.wait(timeout)

    def _read_raw(self):
        cond = self._cond
        if cond is None:       # never got a connection
            self._done_event.wait()
            return _EOF
        with cond:
            while not self._messages:
                if self._done_event.is_set():
                    return _EOF
                cond.wait()
            data, wire = self._messages.popleft()
            if not self._done_event.is_set():
                self._conn.core.message_consumed(self._core_call, wire)
                self._conn.flush_locked()
            return data

    def _send(self, message):
        """Send one request message, waiting while flow control holds it."""
        payload = message if self._serializer is None else self._serializer(message)
        cond = self._cond
        with cond:
            if self._done_event.is_set():
                return False
            self._conn.core.send_message(self._core_call, payload)
            self._conn.after_action_locked()
            while not self._done_event.is_set() and self._conn.core.write_pending(self._core_call):
                cond.wait()
            self._conn.wait_writable_locked()
        return not self._done_event.is_set()

    def _close_send(self):
        with self._cond:
            if not self._done_event.is_set():
                self._conn.core.close_send(self._core_call)
                self._conn.after_action_locked()

    def _consume_requests(self, request_iterator):
        """Send every request from the application's iterator, on a thread of
        its own (as grpcio does), then half-close."""
        def pump():
            try:
                for request in request_iterator:
                    if not self._send(request):
                        return
                if self._cond is not None:
                    self._close_send()
            except Exception:  # the application's iterator raised
                _LOGGER.exception("Exception iterating requests!")
                # grpcio's status for this case; the call was not cancelled
                # by the application, so it fails as an RpcError
                self._cancel(StatusCode.UNKNOWN, "Exception iterating requests!", by_application=False)
        if self._cond is None:
            return
        threading.Thread(target=pump, name="grpcpy-requests", daemon=True).start()

    def _cancel(self, code=StatusCode.CANCELLED, details="Locally cancelled by application!",
                by_application=True):
        conn = self._conn
        if conn is None:
            if self._done_event.is_set():
                return False
            self._cancelled = by_application
            self._fail(code, details)
            return True
        with conn.lock:
            if self._done_event.is_set():
                return False
            self._cancelled = by_application
            # the status is ours: settle it before the core reports the
            # reset, so its CANCELLED never replaces the code we were given
            self._code = code
            self._details = details
            if self._trailing_metadata is None:
                self._trailing_metadata = ()
            if self._initial_metadata is None:
                self._initial_metadata = ()
            self._cond.notify_all()
            self._set_done()
            conn.core.cancel_call(self._core_call)
            conn.after_action_locked()
        return True

    def _debug_string(self):
        return "grpc_status:%d, grpc_message:%r" % (self._code.value[0], self._details)


class _CallView(_types.Call):
    """grpc.Call methods over a _Call state."""

    def __init__(self, state):
        self._state = state

    def initial_metadata(self):
        s = self._state
        if s._initial_metadata is None:
            if s._cond is None:
                s._done_event.wait()
            else:
                with s._cond:
                    while s._initial_metadata is None:
                        s._cond.wait()
        return tuple(_types.Metadatum(k, v) for k, v in s._initial_metadata)

    def trailing_metadata(self):
        self._state._wait_done()
        return tuple(_types.Metadatum(k, v) for k, v in (self._state._trailing_metadata or ()))

    def code(self):
        self._state._wait_done()
        return self._state._code

    def details(self):
        self._state._wait_done()
        return self._state._details

    def debug_error_string(self):
        self._state._wait_done()
        return self._state._debug_string()

    def is_active(self):
        return not self._state._done_event.is_set()

    def time_remaining(self):
        deadline = self._state._deadline
        return None if deadline is None else max(0.0, deadline - monotonic())

    def cancel(self):
        return self._state._cancel()

    def add_callback(self, callback):
        state = self._state
        with state._cb_lock:
            if state._done_event.is_set():
                return False
            state._callbacks.append(callback)
            return True


class RpcErrorCall(_types.RpcError, _CallView, _types.Future):
    """The RpcError a finished call raises; it is also the call and a done future."""

    def __init__(self, state):
        _types.RpcError.__init__(self)
        _CallView.__init__(self, state)

    def __str__(self):
        s = self._state
        return ('<_InactiveRpcError of RPC that terminated with:\n\tstatus = %s\n\tdetails = "%s"\n'
                '\tdebug_error_string = "%s"\n>' % (s._code, s._details, s._debug_string()))

    __repr__ = __str__

    def cancelled(self):
        return self._state._code == StatusCode.CANCELLED and self._state._cancelled

    def running(self):
        return False

    def done(self):
        return True

    def result(self, timeout=None):
        raise self

    def exception(self, timeout=None):
        return self

    def traceback(self, timeout=None):
        try:
            raise self
        except _types.RpcError:
            return sys.exc_info()[2]

    def add_done_callback(self, fn):
        fn(self)


class _ResultCall(_CallView):
    """The call of a successful with_call()."""


class _UnaryFuture(_CallView, _types.Future):
    """grpc.Future + grpc.Call of a unary-response call started with future()."""

    def __init__(self, state, response_getter):
        super().__init__(state)
        self._get = response_getter

    def cancel(self):
        return self._state._cancel()

    def cancelled(self):
        s = self._state
        return s._done_event.is_set() and s._cancelled

    def running(self):
        return not self._state._done_event.is_set()

    def done(self):
        return self._state._done_event.is_set()

    def result(self, timeout=None):
        if not self._state._wait_done(timeout):
            raise _types.FutureTimeoutError()
        if self.cancelled():
            raise _types.FutureCancelledError()
        return self._get()

    def exception(self, timeout=None):
        if not self._state._wait_done(timeout):
            raise _types.FutureTimeoutError()
        if self.cancelled():
            raise _types.FutureCancelledError()
        try:
            self._get()
        except _types.RpcError as exc:
            return exc
        return None

    def traceback(self, timeout=None):
        if not self._state._wait_done(timeout):
            raise _types.FutureTimeoutError()
        if self.cancelled():
            raise _types.FutureCancelledError()
        try:
            self._get()
        except _types.RpcError:
            return sys.exc_info()[2]
        return None

    def add_done_callback(self, fn):
        state = self._state
        with state._cb_lock:
            if not state._done_event.is_set():
                state._callbacks.append(lambda: fn(self))
                return
        fn(self)


class _Rendezvous(_UnaryFuture, _types.RpcError):
    """The iterator of responses of a streaming-response call; also a Call
    and a Future, and the RpcError it raises when the call fails."""

    def __init__(self, state):
        _types.RpcError.__init__(self)
        _UnaryFuture.__init__(self, state, self._final)

    def _final(self):
        s = self._state
        if s._code != StatusCode.OK:
            raise self
        return None

    def __iter__(self):
        return self

    def __next__(self):
        raw = self._state._read_raw()
        if raw is _EOF:
            s = self._state
            s._wait_done()
            if s._code != StatusCode.OK:
                raise self
            raise StopIteration
        d = self._state._deserializer
        return raw if d is None else d(raw)

    next = __next__

    def __str__(self):
        s = self._state
        if not s._done_event.is_set():
            return "<_MultiThreadedRendezvous object of in-flight RPC>"
        return ('<_MultiThreadedRendezvous of RPC that terminated with:\n\tstatus = %s\n\tdetails = "%s"\n'
                '\tdebug_error_string = "%s"\n>' % (s._code, s._details, s._debug_string()))

    __repr__ = __str__

    def __del__(self):
        state = getattr(self, "_state", None)
        if state is not None and not state._done_event.is_set():
            state._cancel()


def _unary_response(state):
    """The response of a finished unary-response call, or raise."""
    if state._code != StatusCode.OK:
        raise RpcErrorCall(state)
    with state._cond if state._cond is not None else _NullLock():
        if state._messages:
            raw = state._messages[0][0]
        else:
            state._code = StatusCode.INTERNAL
            state._details = "No response message received for a unary call"
            raise RpcErrorCall(state)
    d = state._deserializer
    return raw if d is None else d(raw)


class _NullLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _MultiCallable:
    def __init__(self, channel, method, request_serializer, response_deserializer):
        self._channel = channel
        self._method = method.encode("ascii") if isinstance(method, str) else method
        self._serializer = request_serializer
        self._deserializer = response_deserializer

    def _state(self, timeout, metadata, wait_for_ready, compression, credentials=None):
        channel = self._channel
        if channel._closed:
            raise ValueError("Cannot invoke RPC on closed channel!")
        state = _Call(channel, self._method, self._serializer, self._deserializer, timeout, metadata,
                      wait_for_ready, compression)
        state._call_credentials = credentials
        return state


class UnaryUnaryMultiCallable(_MultiCallable, _types.UnaryUnaryMultiCallable):
    def _invoke(self, request, timeout, metadata, wait_for_ready, compression, credentials=None):
        state = self._state(timeout, metadata, wait_for_ready, compression, credentials)
        payload = request if self._serializer is None else self._serializer(request)
        state._start(payload, unary=True)
        return state

    def __call__(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                 compression=None):
        state = self._invoke(request, timeout, metadata, wait_for_ready, compression, credentials)
        state._wait_done()
        return _unary_response(state)

    def with_call(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                  compression=None):
        state = self._invoke(request, timeout, metadata, wait_for_ready, compression, credentials)
        state._wait_done()
        return _unary_response(state), _ResultCall(state)

    def future(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
               compression=None):
        state = self._state(timeout, metadata, wait_for_ready, compression, credentials)
        payload = request if self._serializer is None else self._serializer(request)
        future = _UnaryFuture(state, lambda: _unary_response(state))
        threading.Thread(target=state._start, args=(payload, True), daemon=True).start() \
            if self._channel._needs_wait() else state._start(payload, unary=True)
        return future


class UnaryStreamMultiCallable(_MultiCallable, _types.UnaryStreamMultiCallable):
    def __call__(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                 compression=None):
        state = self._state(timeout, metadata, wait_for_ready, compression, credentials)
        payload = request if self._serializer is None else self._serializer(request)
        state._start(payload, unary=True)
        return _Rendezvous(state)


class StreamUnaryMultiCallable(_MultiCallable, _types.StreamUnaryMultiCallable):
    def _invoke(self, request_iterator, timeout, metadata, wait_for_ready, compression, credentials=None):
        state = self._state(timeout, metadata, wait_for_ready, compression, credentials)
        state._start()
        state._consume_requests(request_iterator)
        return state

    def __call__(self, request_iterator, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                 compression=None):
        state = self._invoke(request_iterator, timeout, metadata, wait_for_ready, compression, credentials)
        state._wait_done()
        return _unary_response(state)

    def with_call(self, request_iterator, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                  compression=None):
        state = self._invoke(request_iterator, timeout, metadata, wait_for_ready, compression, credentials)
        state._wait_done()
        return _unary_response(state), _ResultCall(state)

    def future(self, request_iterator, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
               compression=None):
        state = self._invoke(request_iterator, timeout, metadata, wait_for_ready, compression, credentials)
        return _UnaryFuture(state, lambda: _unary_response(state))


class StreamStreamMultiCallable(_MultiCallable, _types.StreamStreamMultiCallable):
    def __call__(self, request_iterator, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                 compression=None):
        state = self._state(timeout, metadata, wait_for_ready, compression, credentials)
        state._start()
        state._consume_requests(request_iterator)
        return _Rendezvous(state)


class Channel(_types.Channel):
    """grpc.Channel: thread-safe, shared by any number of threads."""

    def __init__(self, target, options=None, credentials=None, compression=None):
        self._credentials = credentials
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
                        conn.dispatch(conn.core.cancel_all_calls("Channel closed!"))
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
