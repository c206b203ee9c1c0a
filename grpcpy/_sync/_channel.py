"""grpcpy.insecure_channel(): the threaded channel, compatible with grpc.Channel.

The channel performs the I/O its ChannelDriver (grpcpy._channel.driver) asks
for (DNS lookups and connects on short-lived threads, the timer on a timer
thread) and starts calls on the connection the driver picks. Calls block on
Conditions that share their connection's lock; the connection's I/O thread
wakes them.
"""
import collections
import heapq
import logging
import socket
import ssl
import threading
import time
import weakref

from grpcpy import _types
from grpcpy._channel.driver import NO_PREFACE, ChannelDriver
from grpcpy._rpc.client import ChannelMethods
from grpcpy._rpc.events import dispatch_client
from grpcpy._sync._call import (StreamStreamMultiCallable, StreamUnaryMultiCallable, UnaryStreamMultiCallable,
                                UnaryUnaryMultiCallable)
from grpcpy._sync._conn import SyncConnection, tls_handshake

_LOGGER = logging.getLogger("grpcpy.channel")
StatusCode = _types.StatusCode
monotonic = time.monotonic


class _ClientConnection(SyncConnection):
    def __init__(self, channel, sub_id, sock):
        super().__init__(channel._new_core(), sock, name="grpcpy-channel-io")
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


class Channel(ChannelMethods, _types.Channel, ChannelDriver):
    """grpc.Channel: thread-safe, shared by any number of threads.

    Its ChannelDriver (grpcpy._channel.driver) decides; the channel performs:
    DNS lookups and connects on short-lived threads, the timer on a
    threading.Timer, every driver input under the channel lock. A call
    without a ready connection blocks in _get_connection until the driver
    starts or fails it.
    """

    def __init__(self, target, options=None, credentials=None, compression=None):
        self._init_driver(target, options, credentials, compression)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._subscribers = []
        self._last_published = None
        self._notifier = _Notifier()

    # -- multicallables --------------------------------------------------------------

    # (the factories themselves: grpcpy._rpc.client.ChannelMethods)
    _unary_unary = UnaryUnaryMultiCallable
    _unary_stream = UnaryStreamMultiCallable
    _stream_unary = StreamUnaryMultiCallable
    _stream_stream = StreamStreamMultiCallable

    # -- connectivity ------------------------------------------------------------------

    def subscribe(self, callback, try_to_connect=False):
        with self._lock:
            self._subscribers.append(callback)
            # the current state first, then every change, in order (one
            # delivery thread per channel, as grpcio)
            self._notifier.post(callback, self._connectivity())
            if try_to_connect:
                self._request_connection(monotonic())

    def unsubscribe(self, callback):
        with self._lock:
            try:
                self._subscribers.remove(callback)
            except ValueError:
                pass

    def _state(self, try_to_connect=False):
        with self._lock:
            if try_to_connect:
                self._request_connection(monotonic())
            return self._connectivity()

    def close(self):
        with self._lock:
            if self._closed:
                return
            self._close_queue()
            # calls in flight end CANCELLED "Channel closed!" (grpcio), before
            # the plane's shutdown closes their connections
            for conn in self._connections.values():
                with conn.lock:
                    if not conn.closed:
                        conn.dispatch(conn.core.cancel_all_calls("Channel closed!"))
                        conn.after_action_locked()
            self._shutdown(monotonic())
            self._changed.notify_all()
            self._notifier.stop()

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
            return self._pick_now() is None

    def _get_connection(self, state):
        """A ready connection for the call, waiting for one as the driver
        rules; None after failing the call."""
        with self._lock:
            if not self._closed:
                conn = self._pick_now()
                if conn is not None:
                    return conn
            waiter = _Waiter(state, self._changed)
            self._submit(waiter, monotonic())
            while waiter.conn is None and waiter.failure is None:
                self._changed.wait()
            if waiter.failure is not None:
                state._fail(*waiter.failure)
                return None
            return waiter.conn

    # -- the driver's hooks (called with the lock held) ------------------------------------------

    def _io_resolve(self, host, port):
        threading.Thread(target=self._resolve, args=(host, port), daemon=True).start()

    def _io_connect(self, sub_id, address, deadline):
        threading.Thread(target=self._connect, args=(sub_id, address, deadline), daemon=True).start()

    def _io_close(self, sub_id, conn):
        if conn is not None:   # an attempt in progress finds the channel's answer when it ends
            conn._reported = True
            threading.Thread(target=conn.close, daemon=True).start()

    def _io_arm_timer(self, when):
        _TIMERS.schedule(when, self)

    def _on_state_change(self, state):
        self._changed.notify_all()
        if self._subscribers and state != self._last_published:
            self._last_published = state
            for callback in self._subscribers:
                self._notifier.post(callback, state)

    # -- I/O threads -------------------------------------------------------------------------------

    def _on_timer(self, when):
        with self._lock:
            self._timer_fired(monotonic(), when)

    def _resolve(self, host, port):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            with self._lock:
                self._lookup_failed(monotonic(), host, port, exc)
            return
        with self._lock:
            self._lookup_done(monotonic(), infos)

    def _connect(self, sub_id, address, deadline):
        call_refusal = None
        try:
            timeout = max(0.001, deadline - monotonic())
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
                    call_refusal = self._tls_verdict(tls.ssl_object)
                except (OSError, ssl.SSLError):
                    sock.close()
                    raise
                sock = tls
            conn = _ClientConnection(self, sub_id, sock)
            conn.call_refusal = call_refusal
            conn.start()
            # established only once the server's HTTP/2 preface arrived
            if not conn.handshake.wait(max(0.0, deadline - monotonic())) or conn.closed:
                conn._reported = True
                conn.close()
                raise OSError(NO_PREFACE)
        except (OSError, ssl.SSLError) as exc:
            with self._lock:
                self._connect_failed(monotonic(), sub_id, address, exc)
            return
        with self._lock:
            if self._connect_done(monotonic(), sub_id, conn):
                return
        conn.close()

    def _subchannel_lost(self, conn):
        with self._lock:
            self._connection_lost(monotonic(), conn)


class _Timers:
    """One thread runs the driver timers of every sync channel in the process.

    A channel's timer is often far away (the client idle check: 30 min by
    default), so a thread per timer would cost a thread per channel. Entries
    hold the channel weakly (a dropped channel is not kept alive for its
    timer); a replaced timer is not removed: it fires and the driver ignores
    it (``_timer_fired`` checks ``when``)."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._heap = []
        self._seq = 0
        self._thread = None

    def schedule(self, when, channel):
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, weakref.ref(channel)))
            if self._thread is None or not self._thread.is_alive():   # (not after a fork)
                self._thread = threading.Thread(target=self._run, name="grpcpy-channel-timers", daemon=True)
                self._thread.start()
            elif self._heap[0][1] == self._seq:
                self._cond.notify()     # earlier than what the thread waits for

    def _run(self):
        heap = self._heap
        while True:
            with self._cond:
                while True:
                    now = monotonic()
                    if heap and heap[0][0] <= now:
                        break
                    self._cond.wait(None if not heap else heap[0][0] - now)
                when, _, ref = heapq.heappop(heap)
            channel = ref()
            if channel is not None:
                try:
                    channel._on_timer(when)
                except Exception:   # the thread serves every channel: never let it die
                    _LOGGER.exception("channel timer failed")


_TIMERS = _Timers()


class _Waiter:
    """A call blocked in _get_connection, as the driver's queue holds it."""

    __slots__ = ("_deadline", "_wait_for_ready", "_cond", "conn", "failure")

    def __init__(self, state, cond):
        self._deadline = state._deadline
        self._wait_for_ready = state._wait_for_ready
        self._cond = cond
        self.conn = None
        self.failure = None

    def _start_on(self, conn):
        self.conn = conn
        self._cond.notify_all()

    def _fail_start(self, code, details):
        self.failure = (code, details)
        self._cond.notify_all()


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
