"""grpcpy.insecure_channel(): the threaded channel, compatible with grpc.Channel.

The channel performs the I/O its ChannelDriver (grpcpy._channel.driver) asks
for: connects and TLS handshakes run without blocking on the process's I/O
loop (grpcpy._sync._loop), which also runs the channel's timer; DNS lookups
(grpcpy._channel.dns) run on short-lived threads (they block). Calls start on the
connection the driver picks and block on Conditions that share their
connection's lock; the loop wakes them.

The loop holds connections, and a connection refers to its channel only
weakly: a channel the application drops without close() is collected, and
its connections are closed then (no thread or socket is left behind).
"""
import collections
import errno
import ipaddress
import logging
import os
import socket
import ssl
import threading
import time
import weakref

from grpcpy import _types
from grpcpy._channel.driver import NO_PREFACE, ChannelDriver
from grpcpy._channel.lb.base import READY
from grpcpy._rpc.client import ChannelMethods
from grpcpy._rpc.events import dispatch_client
from grpcpy._sync import _loop
from grpcpy._sync._call import (StreamStreamMultiCallable, StreamUnaryMultiCallable, UnaryStreamMultiCallable,
                                UnaryUnaryMultiCallable)
from grpcpy._sync._conn import SyncConnection, TlsHandshake
from grpcpy._sync._loop import WRITE, at_fork_child, forget_at_fork, get_loop

_LOGGER = logging.getLogger("grpcpy.channel")
StatusCode = _types.StatusCode
monotonic = time.monotonic
_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK, errno.EALREADY)


class _ClientConnection(SyncConnection):
    def __init__(self, channel, sub_id, sock, attempt=None):
        # one lock for all of a channel's connections: a call's attempts
        # (retries, hedges) may run on any of them and it waits on one Condition
        super().__init__(channel._new_core(), sock, lock=channel._io_lock)
        self._channel = weakref.ref(channel)
        self.sub_id = sub_id
        self._reported = False
        self._attempt = attempt              # the connect waiting for the server's preface
        self.call_refusal = None             # (status, details) every call on it fails with

    dispatch = dispatch_client

    def handshake_done(self):
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            self._loop.call_soon(attempt.established, self)

    def lost_locked(self):
        attempt, self._attempt = self._attempt, None
        if attempt is not None:      # no preface: the attempt fails
            self._reported = True
            self._loop.call_soon(attempt.failed, OSError(NO_PREFACE))
            return
        self.report_lost()

    def report_lost(self):
        if not self._reported:
            self._reported = True
            # the channel lock is taken on the loop, never under ours
            self._loop.call_soon(self._report)

    def _report(self):
        channel = self._channel()
        if channel is not None:
            channel._subchannel_lost(self)


class Channel(ChannelMethods, _types.Channel, ChannelDriver):
    """grpc.Channel: thread-safe, shared by any number of threads.

    Its ChannelDriver (grpcpy._channel.driver) decides; the channel performs:
    connects and the timer on the I/O loop, DNS lookups on short-lived
    threads, every driver input under the channel lock. A call without a
    ready connection blocks in _get_connection until the driver starts or
    fails it.

    Fork: a child process drops the connections it inherited (without
    writing to them) and the channel starts afresh there, as if just made: a
    call in the child connects again.
    """

    def __init__(self, target, options=None, credentials=None, compression=None):
        self._init_args = (target, options, credentials, compression)
        self._init_driver(target, options, credentials, compression)
        self._lock = threading.Lock()
        # the lock of every connection of the channel (taken after _lock, never before)
        self._io_lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._timer = None
        self._attempts = {}         # sub_id -> _Attempt in progress
        self._subscribers = []
        self._last_published = None
        self._notifier = _Notifier()
        # what a dropped channel must close: the driver's connections (the
        # finalizer must not refer to the channel itself)
        self._held = [self._connections]
        finalizer = weakref.finalize(self, _release, self._held)
        finalizer.atexit = False
        at_fork_child(self)

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
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._changed.notify_all()
            self._notifier.stop()
        forget_at_fork(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def after_fork_child(self):
        """In a child process after fork: the inherited connections are
        dropped (by the connections themselves); the channel starts again
        from its target and options, as a new one would."""
        _loop.reinit_lock(self._lock)
        _loop.reinit_lock(self._io_lock)
        self._timer = None
        self._attempts = {}
        self._notifier = _Notifier()
        if self._closed:
            return
        self._init_driver(*self._init_args)
        self._held[0] = self._connections
        self._last_published = None
        at_fork_child(self)

    # -- picking ---------------------------------------------------------------------------

    def _needs_wait(self):
        """Would a call wait for a connection now?  (A peek: no pick is made.)"""
        with self._lock:
            return self._plane.state != READY or not any(
                not (conn.closed or conn._reported) for conn in self._connections.values())

    def _get_connection(self, state):
        """A ready connection for the call, waiting for one as the driver
        rules; None after failing the call."""
        with self._lock:
            if not self._closed:
                conn = self._pick_now(state)
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

    def _start_attempt(self, call):
        """A call's next attempt (a retry or a hedge; on the loop thread, no
        lock held): start it on a ready connection, or let it wait as the
        driver's rules say."""
        with self._lock:
            if not self._closed:
                conn = self._pick_now(call)
                if conn is not None:
                    with conn.lock:
                        call._start_on(conn)
                    return
            self._submit(_AttemptWaiter(call), monotonic())

    # -- the driver's hooks (called with the lock held) ------------------------------------------

    def _io_resolve(self, host, port):
        lookup, args = self._lookup_call(host, port)
        threading.Thread(target=_resolve, args=(weakref.ref(self), host, port, lookup, args), daemon=True,
                         name="grpcpy-resolve").start()

    def _io_connect(self, sub_id, address, deadline):
        attempt = _Attempt(self, sub_id, address, deadline)
        self._attempts[sub_id] = attempt
        attempt.start()

    def _io_close(self, sub_id, conn):
        if conn is not None:
            conn._reported = True
            conn.close()
        else:
            # an attempt given up (another won): its socket goes now, not at
            # its deadline; what it reports the plane ignores
            attempt = self._attempts.pop(sub_id, None)
            if attempt is not None:
                get_loop().call_soon(attempt.failed, OSError("connection attempt abandoned"))

    def _io_arm_timer(self, when):
        if self._timer is not None:
            self._timer.cancel()
        self._timer = get_loop().call_at(when, _channel_timer, weakref.ref(self), when)

    def _on_state_change(self, state):
        self._changed.notify_all()
        if self._subscribers and state != self._last_published:
            self._last_published = state
            for callback in self._subscribers:
                self._notifier.post(callback, state)

    def _io_post(self):
        get_loop().call_soon(_channel_posted, weakref.ref(self))

    def _io_start_stream(self, call, conn):
        with conn.lock:
            call._start_on(conn)

    def _io_cancel_stream(self, call):
        conn = call._conn
        if conn is None:
            call._cancel()
        else:
            with conn.lock:
                call._cancel()

    _clock = staticmethod(monotonic)

    # -- reports (the loop, a resolver thread) ---------------------------------------------------

    def _on_posted(self):
        with self._lock:
            self._run_posted(monotonic())

    def _on_timer(self, when):
        with self._lock:
            self._timer_fired(monotonic(), when)

    def _subchannel_lost(self, conn):
        with self._lock:
            self._connection_lost(monotonic(), conn)


def _channel_posted(ref):
    channel = ref()
    if channel is not None:
        channel._on_posted()


def _channel_timer(ref, when):
    channel = ref()
    if channel is not None:
        channel._on_timer(when)


def _resolve(ref, host, port, lookup, args):
    try:
        answer = lookup(*args)
        error = None
    except (OSError, UnicodeError) as exc:
        error = exc
    channel = ref()
    if channel is None:
        return
    with channel._lock:
        if error is not None:
            channel._lookup_failed(monotonic(), host, port, error)
        else:
            channel._lookup_done(monotonic(), *answer)


def _release(held):
    """A channel was collected without close(): its connections close on
    the loop (never here: a finalizer may run on any thread, even one that
    holds a connection's lock)."""
    conns = [conn for conn in held[0].values() if conn is not None]
    held[0] = {}
    if conns:
        get_loop().call_soon(_close_all, conns)


def _close_all(conns):
    for conn in conns:
        conn._reported = True
        conn.close()


class _Attempt:
    """One connect of a channel, on the loop: a non-blocking connect, the
    TLS handshake if any, then the server's HTTP/2 preface, all within the
    attempt's deadline. Reports to the channel (under its lock, on the
    loop): _connect_done or _connect_failed."""

    def __init__(self, channel, sub_id, address, deadline):
        self._channel = weakref.ref(channel)
        self._sub_id = sub_id
        self._address = address
        self._deadline = deadline
        self._tls = channel._tls
        self._context = channel._credentials.client_context() if channel._tls else None
        self._hostname = channel._server_hostname
        self._loop = get_loop()
        self.sock = None
        self._fd = -1
        self._step = None          # the socket (connect) or the TlsHandshake or the connection
        self._timer = None
        self._ended = False

    def fileno(self):
        return self._fd

    def start(self):
        address = self._address
        if address.family == "memory":
            # grpcpy.testing's in-memory server: no socket to connect
            self._loop.call_soon(self._connect_memory, address.path)
            return
        if address.family == "unix":
            self._loop.call_soon(self._connect, socket.AF_UNIX, address.path)
            return
        try:
            ip = ipaddress.ip_address(address.host)
        except ValueError:
            # a host name (passthrough target): getaddrinfo blocks
            threading.Thread(target=self._lookup, daemon=True, name="grpcpy-resolve").start()
            return
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        self._loop.call_soon(self._connect, family, (address.host, address.port))

    def _lookup(self):
        try:
            infos = socket.getaddrinfo(self._address.host, self._address.port, type=socket.SOCK_STREAM)
            family, _, _, _, sockaddr = infos[0]
        except (OSError, UnicodeError, IndexError) as exc:
            self._loop.call_soon(self.failed, exc if isinstance(exc, OSError) else OSError(str(exc)))
            return
        self._loop.call_soon(self._connect, family, sockaddr)

    def _connect(self, family, sockaddr):
        self._timer = self._loop.call_at(self._deadline, self._timed_out)
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            self.failed(exc)
            return
        self.sock = sock
        self._fd = sock.fileno()
        sock.setblocking(False)
        err = sock.connect_ex(sockaddr)
        if err == 0:
            self._connected()
            return
        if err not in _IN_PROGRESS:
            self.failed(OSError(err, os.strerror(err)))
            return
        self._step = sock
        at_fork_child(self)
        if not self._loop.add(self, WRITE):
            self.failed(OSError("socket closed"))

    def _connect_memory(self, name):
        from grpcpy.testing import _transport
        self._timer = self._loop.call_at(self._deadline, self._timed_out)
        try:
            sock = _transport.connect_sync(name)
        except OSError as exc:
            self.failed(exc)
            return
        self.sock = sock
        self._make_connection(sock, None)

    def io_event(self, mask):
        """The connect finished (the socket became writable)."""
        if self._step is not self.sock:
            return
        self._loop.remove(self)
        self._step = None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.failed(OSError(err, os.strerror(err)))
        else:
            self._connected()

    def _connected(self):
        if self._ended:
            return
        if self._tls:
            try:
                handshake = TlsHandshake(self.sock, self._context, False, self._tls_done, self._deadline,
                                         self._hostname)
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.failed(exc)
                return
            self._step = handshake
            handshake.start()
        else:
            self._make_connection(self.sock, None)

    def _tls_done(self, session, error):
        if self._ended:
            if session is not None:
                session.close()
            return
        if error is not None:
            self.failed(error)
            return
        channel = self._channel()
        if channel is None:
            session.close()
            self.failed(OSError("channel collected"))
            return
        try:
            refusal = channel._tls_verdict(session.ssl_object)
        except OSError as exc:
            session.close()
            self.failed(exc)
            return
        self._make_connection(session, refusal)

    def _make_connection(self, sock, refusal):
        channel = self._channel()
        if channel is None:
            sock.close()
            self.failed(OSError("channel collected"))
            return
        conn = _ClientConnection(channel, self._sub_id, sock, self)
        conn.call_refusal = refusal
        self._step = conn
        # established once the server's HTTP/2 preface arrived
        conn.start()

    def established(self, conn):
        if self._ended:
            return
        self._end()
        channel = self._channel()
        if channel is not None:
            with channel._lock:
                if channel._connect_done(monotonic(), self._sub_id, conn):
                    return
        conn._reported = True
        conn.close()

    def failed(self, error):
        if self._ended:
            return
        step = self._step
        self._end()
        if isinstance(step, TlsHandshake):
            step.cancel()
        elif isinstance(step, _ClientConnection):
            step._attempt = None
            step._reported = True
            step.close()
        elif self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        channel = self._channel()
        if channel is not None:
            with channel._lock:
                channel._connect_failed(monotonic(), self._sub_id, self._address, error)

    def _timed_out(self):
        self._timer = None
        if isinstance(self._step, _ClientConnection):
            self.failed(OSError(NO_PREFACE))
        else:
            self.failed(socket.timeout("timed out"))

    def _end(self):
        self._ended = True
        channel = self._channel()
        if channel is not None:
            channel._attempts.pop(self._sub_id, None)
        forget_at_fork(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._step is self.sock and self.sock is not None:
            self._loop.remove(self)
        self._step = None

    def after_fork_child(self):
        self._ended = True
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass


class _Waiter:
    """A call blocked in _get_connection, as the driver's queue holds it."""

    __slots__ = ("_deadline", "_wait_for_ready", "_cond", "conn", "failure", "_lb_call")

    def __init__(self, state, cond):
        self._lb_call = state
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


class _AttemptWaiter:
    """A call's later attempt waiting in the driver's queue (called with the
    channel's lock held; the call's own lock comes after it)."""

    __slots__ = ("_call", "_deadline", "_wait_for_ready", "_lb_call")

    def __init__(self, call):
        self._call = call
        self._lb_call = call
        self._deadline = call._deadline
        self._wait_for_ready = call._wait_for_ready

    def _start_on(self, conn):
        with conn.lock:
            self._call._start_on(conn)

    def _fail_start(self, code, details):
        call = self._call
        with call._cond:
            call._pick_failed(code, details)


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
