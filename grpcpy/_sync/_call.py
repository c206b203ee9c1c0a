"""Client calls of the threaded API (grpc.Call, grpc.Future, the response
iterator and the multicallables).

The rules of a call are grpcpy._rpc.client's; this module adds the waiting:
a call blocks on a Condition that shares its connection's lock, and the
process's I/O thread (grpcpy._sync._loop) wakes it. Call credentials and the channel's
connection wait run in the calling thread; a request iterator is consumed on
a thread of its own (as grpcio does).
"""
import logging
import sys
import threading
import time

from grpcpy import _credentials, _types
from grpcpy._rpc import client as _client
from grpcpy._sync._conn import call_condition
from grpcpy._sync._loop import get_loop

_LOGGER = logging.getLogger("grpcpy.channel")
StatusCode = _types.StatusCode
_OK = StatusCode.OK
_NOTHING = _client._NOTHING
monotonic = time.monotonic


class _EOFType:
    pass


_EOF = _EOFType()


class _Call(_client.ClientCall):
    """State of one client call; the I/O thread fills it under the lock."""

    _cond = None

    def __init__(self, channel, method, serializer, deserializer, timeout, metadata, credentials,
                 wait_for_ready, compression, request=_NOTHING):
        self._done_event = threading.Event()
        self._callbacks = []
        self._cb_lock = threading.Lock()
        _client.ClientCall.__init__(self, channel, method, serializer, deserializer, timeout, metadata,
                                    credentials, wait_for_ready, compression, request)

    # -- facade hooks (the connection's lock is held when there is one) ------------------

    def _now(self):
        return monotonic()

    def _wake(self):
        cond = self._cond
        if cond is not None:
            cond.notify_all()

    _wake_initial = _wake_message = _wake_write = _wake

    def _wake_end(self):
        self._wake()
        with self._cb_lock:
            self._done_event.set()
            callbacks, self._callbacks = self._callbacks, []
        if callbacks:
            # application code never runs on the I/O thread under the lock
            threading.Thread(target=_run_callbacks, args=(callbacks,), daemon=True).start()

    def _error(self):
        return RpcErrorCall(self)

    # -- start ---------------------------------------------------------------------

    def _start(self):
        """Put the call on a connection (waiting for one if needed); a
        unary request goes with it."""
        if self._ended or not self._authenticate():
            return
        # the lock of every connection of the channel: the call's attempts
        # may be on any of them
        self._cond = call_condition(self._channel._io_lock)
        conn = self._channel._get_connection(self)
        if conn is None:
            return
        with conn.lock:
            if self._ended:
                return
            self._start_on(conn)

    def _fail(self, code, details):
        """The channel could not give the call a connection (a retry policy
        may try again)."""
        with self._cond:
            self._pick_failed(code, details)

    # -- later attempts (grpcpy._rpc.attempts) -----------------------------------------

    def _call_at(self, when, fn):
        return get_loop().call_at(when, fn)

    def _attempt_timer(self):
        """On the loop thread: the next attempt is due."""
        with self._cond:
            due = self._attempt_due()
        if due:
            self._channel._start_attempt(self)

    def _authenticate(self):
        """Run the call's metadata plugins in this thread, within the
        call's deadline; False when the call failed instead."""
        if self._credentials is None and not self._channel._has_call_credentials:
            return True
        plugins = self._auth_plugins()
        if plugins is None:
            return False
        if not plugins:
            return True
        context = self._auth_context()
        extra = []
        for plugin in plugins:
            answer = []
            ready = threading.Event()

            def done(metadata, error, answer=answer, ready=ready):
                answer.append((metadata, error))
                ready.set()

            # on a thread of its own: a plugin that blocks cannot hold the
            # call past its deadline
            threading.Thread(target=_credentials.run_plugin, args=(plugin, context, done), daemon=True,
                             name="grpcpy-call-credentials").start()
            if not ready.wait(self._auth_remaining()):
                self._auth_timed_out()
                return False
            if not self._auth_answer(extra, *answer[0]):
                return False
        self._auth_done(extra)
        return True

    # -- waiting ----------------------------------------------------------------------

    def _wait_done(self, timeout=None):
        return self._done_event.wait(timeout)

    def _read_raw(self):
        cond = self._cond
        if cond is None:       # never got a connection
            self._done_event.wait()
            return _EOF
        with cond:
            data = self._poll_message()
            while data is None:
                cond.wait()
                data = self._poll_message()
        return _EOF if data is _client.NO_MORE else data

    def _read(self):
        """The next response (deserialized), or _EOF once the call has
        ended (the caller looks at the status)."""
        raw = self._read_raw()
        if raw is not _EOF:
            message = self._deserialize(raw)
            if message is not _NOTHING:
                return message
        self._done_event.wait()
        return _EOF

    def _write(self, message):
        """Send one request message, waiting while flow control holds it."""
        try:
            payload = self._serialize(message)
        except _client.CallSerializationError:
            return False
        cond = self._cond
        with cond:
            if self._ended:
                return False
            if self._send(payload):
                while not self._ended and self._conn.core.write_pending(self._core_call):
                    cond.wait()
            conn = self._conn
            if conn is not None:
                conn.wait_writable_locked()
        return not self._ended

    def _consume_requests(self, request_iterator):
        """Send every request from the application's iterator, on a thread of
        its own (as grpcio does), then half-close."""
        def pump():
            try:
                for request in request_iterator:
                    if not self._write(request):
                        return
                with self._cond:
                    self._close_send()
            except Exception:  # the application's iterator raised
                _LOGGER.exception(_client._ITERATOR_FAILED)
                self._locked(self._iterator_failed)
        if self._cond is None:
            return
        threading.Thread(target=pump, name="grpcpy-requests", daemon=True).start()

    def _locked(self, action, *args):
        """Run a call-layer action under the connection's lock (if any)."""
        cond = self._cond
        if cond is None:
            return action(*args)
        with cond:
            return action(*args)

    def _serialize_failed(self):
        self._locked(_client.ClientCall._serialize_failed, self)

    def _deserialize_failed(self):
        self._locked(_client.ClientCall._deserialize_failed, self)

    def _cancel_now(self):
        return self._locked(self._cancel)

    def _result(self):
        """The unary response of a finished call, or raise (the I/O thread
        no longer touches an ended call: no lock, and the deserializer does
        not run under it)."""
        return self._unary_result()


def _run_callbacks(callbacks):
    for cb in callbacks:
        try:
            cb()
        except Exception:
            _LOGGER.exception("callback raised")


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
        return self._state._time_remaining()

    def cancel(self):
        return self._state._cancel_now()

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
        return self._state._status_repr("_InactiveRpcError")

    __repr__ = __str__

    def cancelled(self):
        return self._state._code == StatusCode.CANCELLED and self._state._cancelled_locally

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


class _UnaryFuture(_CallView, _types.Future, _types.RpcError):
    """grpc.Future + grpc.Call of a unary-response call started with
    future(); when the call fails it is also the RpcError that result()
    raises (as grpcio's future is)."""

    def __init__(self, state, response_getter):
        _types.RpcError.__init__(self)
        _CallView.__init__(self, state)
        self._get = response_getter

    def _response(self):
        try:
            return self._get()
        except _types.RpcError:
            raise self from None

    def __str__(self):
        s = self._state
        if not s._done_event.is_set():
            return "<_MultiThreadedRendezvous object of in-flight RPC>"
        return s._status_repr("_MultiThreadedRendezvous")

    __repr__ = __str__

    def cancelled(self):
        s = self._state
        return s._done_event.is_set() and s._cancelled_locally

    def running(self):
        return not self._state._done_event.is_set()

    def done(self):
        return self._state._done_event.is_set()

    def _finished(self, timeout):
        if not self._state._wait_done(timeout):
            raise _types.FutureTimeoutError()
        if self.cancelled():
            raise _types.FutureCancelledError()

    def result(self, timeout=None):
        self._finished(timeout)
        return self._response()

    def exception(self, timeout=None):
        self._finished(timeout)
        try:
            self._response()
        except _types.RpcError as exc:
            return exc
        return None

    def traceback(self, timeout=None):
        self._finished(timeout)
        try:
            self._response()
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


class _Rendezvous(_UnaryFuture):
    """The iterator of responses of a streaming-response call; also a Call
    and a Future, and the RpcError it raises when the call fails."""

    def __init__(self, state):
        _UnaryFuture.__init__(self, state, self._final)

    def _final(self):
        if self._state._code != StatusCode.OK:
            raise self
        return None

    def __iter__(self):
        return self

    def __next__(self):
        message = self._state._read()
        if message is _EOF:
            if self._state._code is not _OK:
                raise self
            raise StopIteration
        return message

    next = __next__

    def __del__(self):
        state = getattr(self, "_state", None)
        if state is not None and not state._done_event.is_set():
            state._cancel_now()


class _MultiCallable:
    def __init__(self, channel, method, request_serializer, response_deserializer):
        self._channel = channel
        self._method = method.encode("ascii") if isinstance(method, str) else method
        self._serializer = request_serializer
        self._deserializer = response_deserializer

    def _call(self, timeout, metadata, wait_for_ready, compression, credentials, request=_NOTHING):
        channel = self._channel
        if channel._closed:
            raise ValueError("Cannot invoke RPC on closed channel!")
        return self._call_class(channel, self._method, self._serializer, self._deserializer, timeout, metadata,
                                credentials, wait_for_ready, compression, request)


class _UnaryRequest(_Call):
    _response_streaming = False


class _UnaryRequestStreamResponse(_Call):
    pass


class _StreamRequest(_Call):
    _response_streaming = False


class UnaryUnaryMultiCallable(_MultiCallable, _types.UnaryUnaryMultiCallable):
    _call_class = _UnaryRequest

    def _invoke(self, request, timeout, metadata, wait_for_ready, compression, credentials):
        call = self._call(timeout, metadata, wait_for_ready, compression, credentials, request)
        call._start()
        return call

    def __call__(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                 compression=None):
        call = self._invoke(request, timeout, metadata, wait_for_ready, compression, credentials)
        call._wait_done()
        return call._result()

    def with_call(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                  compression=None):
        call = self._invoke(request, timeout, metadata, wait_for_ready, compression, credentials)
        call._wait_done()
        return call._result(), _ResultCall(call)

    def future(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
               compression=None):
        call = self._call(timeout, metadata, wait_for_ready, compression, credentials, request)
        future = _UnaryFuture(call, call._result)
        if self._channel._needs_wait() or call._credentials is not None or self._channel._has_call_credentials:
            threading.Thread(target=call._start, daemon=True).start()
        else:
            call._start()
        return future


class UnaryStreamMultiCallable(_MultiCallable, _types.UnaryStreamMultiCallable):
    _call_class = _UnaryRequestStreamResponse

    def __call__(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                 compression=None):
        call = self._call(timeout, metadata, wait_for_ready, compression, credentials, request)
        call._start()
        return _Rendezvous(call)


class StreamUnaryMultiCallable(_MultiCallable, _types.StreamUnaryMultiCallable):
    _call_class = _StreamRequest

    def _invoke(self, request_iterator, timeout, metadata, wait_for_ready, compression, credentials):
        call = self._call(timeout, metadata, wait_for_ready, compression, credentials)
        call._start()
        call._consume_requests(request_iterator)
        return call

    def __call__(self, request_iterator, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                 compression=None):
        call = self._invoke(request_iterator, timeout, metadata, wait_for_ready, compression, credentials)
        call._wait_done()
        return call._result()

    def with_call(self, request_iterator, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                  compression=None):
        call = self._invoke(request_iterator, timeout, metadata, wait_for_ready, compression, credentials)
        call._wait_done()
        return call._result(), _ResultCall(call)

    def future(self, request_iterator, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
               compression=None):
        call = self._invoke(request_iterator, timeout, metadata, wait_for_ready, compression, credentials)
        return _UnaryFuture(call, call._result)


class StreamStreamMultiCallable(_MultiCallable, _types.StreamStreamMultiCallable):
    _call_class = _Call

    def __call__(self, request_iterator, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                 compression=None):
        call = self._call(timeout, metadata, wait_for_ready, compression, credentials)
        call._start()
        call._consume_requests(request_iterator)
        return _Rendezvous(call)
