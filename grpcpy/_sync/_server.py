"""grpcpy.server(): the threaded server, compatible with grpc.Server.

The process's I/O loop (grpcpy._sync._loop) accepts connections on the
listening sockets and runs their TLS handshakes without blocking; each
accepted socket is a SyncConnection around a sans-IO ServerConnection,
served by the same loop (no thread per connection).
A validated request (CE_CALL_STARTED) becomes a ServicerContext and, once it
may start (a unary request complete, see grpcpy._rpc.server), a job in the
application's thread pool; the handler reads requests and writes responses
through the context, which waits on a Condition sharing the connection's
lock.

Worker pool: a handler occupies one worker for its whole duration, so
long-lived streams hold workers. When every worker is busy, new calls wait in
the pool's queue (they are not refused) and a warning is logged, at most
every 10 seconds, naming the busy and waiting counts. To refuse calls instead
of queueing them, pass maximum_concurrent_rpcs: calls beyond it end at once
with RESOURCE_EXHAUSTED.
"""
import logging
import ssl
import threading
import time

from grpcpy import _credentials, _types
from grpcpy._options import ServerOptions, bind_sockets
from grpcpy._rpc import server as _rules
from grpcpy._rpc.events import dispatch_server
from grpcpy._sync import _loop
from grpcpy._sync._conn import SyncConnection, TlsHandshake, call_condition
from grpcpy._sync._loop import READ, at_fork_child, forget_at_fork, get_loop
from grpcpy import _cext

_LOGGER = logging.getLogger("grpcpy.server")
_EOF = _rules.NO_MORE
monotonic = time.monotonic
CallFailed = _rules.CallFailed
# a client gets this long to complete its TLS handshake
_TLS_HANDSHAKE_TIMEOUT = 10.0
# responses a non-blocking handler may queue beyond what flow control lets go
_MAX_HELD = 4 * 1024 * 1024
_HELD_TOO_MUCH = "the client is not reading the responses"


class _ServerConnection(SyncConnection):
    def __init__(self, server, sock):
        opts = server._options
        core = _cext.ServerConnection(opts.h2_config(), opts.max_receive_message_length,
                                      opts.max_send_message_length, opts.compression)
        super().__init__(core, sock)
        self.server = server
        self.auth_context = {}

    dispatch = dispatch_server

    def lost_locked(self):
        self.server._connection_gone(self)


class ServicerContext(_rules.CallContext, _types.ServicerContext):
    """The handler's view of its call (grpc.ServicerContext). The I/O
    thread delivers events under the connection's lock; the handler waits
    on a Condition sharing that lock."""

    def __init__(self, conn, call, handler):
        _rules.CallContext.__init__(self, conn, call, handler)
        self._cond = call_condition(conn.lock)
        self._callbacks = []

    # -- facade hooks (lock held) ------------------------------------------------

    def _wake(self):
        self._cond.notify_all()

    def _ended(self):
        callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            # never run application code on the I/O thread under the lock
            threading.Thread(target=_run_callbacks, args=(callbacks,), daemon=True).start()
        if self._detached:
            self._conn.server._detached_ended(self)

    def _on_write_ready(self):
        self._held = 0
        self._cond.notify_all()

    # -- requests ------------------------------------------------------------------

    def _read_raw(self):
        with self._cond:
            data = self._poll_request()
            while data is None:
                self._cond.wait()
                data = self._poll_request()
        return data

    def _request_iterator(self):
        while True:
            raw = self._read_raw()
            if raw is _EOF:
                return
            try:
                request = self._deserialize(raw)
            except CallFailed as fail:
                # the handler sees the call end, as with grpcio
                self._finish(fail.code, fail.details)
                return
            yield request

    # -- responses -------------------------------------------------------------------

    def _write(self, message):
        payload = self._serialize(message)
        with self._cond:
            if self._finished:
                return False
            if self._send(payload):
                while not self._finished and self._core.write_pending(self._call):
                    self._cond.wait()
            self._conn.wait_writable_locked()
        return not self._finished

    def _finish(self, code, details):
        with self._cond:
            callbacks = self._send_status(code, details)
            if self._detached:
                self._conn.server._detached_ended(self)
        _run_callbacks(callbacks)

    # -- the non-blocking response protocol (grpcio's experimental_non_blocking) -------

    _detached = False     # the handler returned; the call goes on without its worker
    _held = 0             # bytes queued since flow control last let everything go

    def _send_response(self, message):
        """send_response_callback: queue one response without waiting (any
        thread); None ends the call with the handler's status (OK unless it
        set a code). Responses the client does not read are bounded: past
        _MAX_HELD bytes held by flow control the call ends
        RESOURCE_EXHAUSTED. (Keeping only the newest response instead would
        suit a health Watch, but this protocol carries any stream, whose
        messages must not be dropped silently; a health client whose Watch
        fails calls Watch again, as the health-checking spec asks.)"""
        if message is None:
            self._finish(*self._final_status())
            return
        try:
            payload = self._serialize(message)
        except CallFailed as fail:
            self._finish(fail.code, fail.details)
            return
        with self._cond:
            if self._finished:
                return
            if self._core.write_pending(self._call):
                self._held += len(payload)
                if self._held > _MAX_HELD:
                    payload = None
            if payload is not None:
                self._send(payload)
                return
        _LOGGER.warning("%s: the client has not read %d bytes of responses; ending the call",
                        self._call.method, self._held)
        self._finish(_types.StatusCode.RESOURCE_EXHAUSTED, _HELD_TOO_MUCH)

    def _finish_unary(self, response):
        with self._cond:
            callbacks = self._respond(response)
        _run_callbacks(callbacks)

    # -- grpc.ServicerContext ------------------------------------------------------------

    def set_compression(self, compression):
        with self._cond:
            self._core.set_compression(self._call, _types.compression_name(compression))

    def send_initial_metadata(self, initial_metadata):
        with self._cond:
            if not self._send_initial_metadata(initial_metadata):
                raise ValueError("Initial metadata no longer allowed!")

    _aborted = False      # abort() was called: its status ends the call, whatever the handler raises next

    def abort(self, code, details):
        """End the handler with this status: raises a bare Exception, as
        grpcio documents and does. Libraries tell an abort from a failing
        handler by that type (opentelemetry-instrumentation-grpc records
        every other exception on the server span), and the server tells
        them apart by _aborted, as grpcio does by its state's flag."""
        self._set_abort(code, details)
        self._aborted = True
        raise Exception()

    def abort_with_status(self, status):
        self._set_abort(status.code, status.details, getattr(status, "trailing_metadata", None))
        self._aborted = True
        raise Exception()

    def time_remaining(self):
        return self._time_remaining(monotonic())

    def cancel(self):
        with self._cond:
            self._cancel_by_handler()

    def add_callback(self, callback):
        with self._cond:
            if self._finished:
                return False
            self._callbacks.append(callback)
            return True

    @property
    def _state(self):
        """grpcio's private per-call state, the two fields that server
        interceptors read (py-grpc-prometheus takes the status of the call
        it counts from them). Made when read: calls that nobody asks cost
        nothing."""
        return _GrpcioState(self)


class _GrpcioState:
    """A live view of a call with the fields of grpcio's _RPCState:

    - client: "cancelled" once the call ended without the handler (the
      client cancelled, the deadline passed, the connection was lost);
      "closed" once the client sent its last request, or the call ended;
      "open" before;
    - code: the status code chosen for the call (set_code, abort), None
      until one was; when the call was cancelled, its end's code."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx):
        self._ctx = ctx

    @property
    def client(self):
        ctx = self._ctx
        if ctx._cancelled:
            return "cancelled"
        return "closed" if ctx._half_closed or ctx._finished else "open"

    @property
    def code(self):
        return self._ctx._code


def _run_callbacks(callbacks):
    if not callbacks:
        return
    for cb in callbacks:
        try:
            cb()
        except Exception:  # a callback must not break the server
            _LOGGER.exception("callback raised")


class Server(_rules.ServerRules):
    """grpc.Server."""

    _context_class = ServicerContext

    def __init__(self, thread_pool, generic_handlers=None, interceptors=None, options=None,
                 maximum_concurrent_rpcs=None, compression=None):
        if thread_pool is None:
            raise ValueError("a thread pool (e.g. concurrent.futures.ThreadPoolExecutor) is required")
        self._pool = thread_pool
        self._options = ServerOptions(options, compression)
        self._init_rules(generic_handlers, interceptors, maximum_concurrent_rpcs)
        self._lock = threading.Lock()
        self._busy = 0
        self._waiting = 0
        self._warned_at = 0.0
        self._connections = set()
        self._sockets = []
        self._port_credentials = {}
        self._listeners = []
        self._handshakes = set()
        self._state = "new"
        self._stopped = threading.Event()
        self._workers = getattr(thread_pool, "_max_workers", None)
        at_fork_child(self)

    # -- configuration --------------------------------------------------------------

    def add_insecure_port(self, address):
        if self._state != "new":
            raise RuntimeError("ports must be added before the server starts")
        port, socks = bind_sockets(address, self._options)
        self._sockets.extend(socks)
        return port

    def add_secure_port(self, address, server_credentials):
        """A port with transport security (TLS/mTLS, or local credentials)."""
        if self._state != "new":
            raise RuntimeError("ports must be added before the server starts")
        port, socks = bind_sockets(address, self._options)
        self._sockets.extend(socks)
        for sock in socks:
            self._port_credentials[sock] = server_credentials
        return port

    # -- life cycle ---------------------------------------------------------------------

    def start(self):
        if self._state != "new":
            raise ValueError("Cannot start already-started server!")
        self._state = "started"
        loop = get_loop()
        for sock in self._sockets:
            listener = _Listener(self, sock, self._port_credentials.get(sock))
            self._listeners.append(listener)
            loop.call_soon(listener.listen)

    def _admit(self, sock, auth_context):
        conn = _ServerConnection(self, sock)
        conn.auth_context = auth_context
        with self._lock:
            if self._state != "started":
                forget_at_fork(conn)
                sock.close()
                return False
            self._connections.add(conn)
        conn.start()
        return True

    def _tls_accepted(self, sock, credentials):
        """Loop thread: a new connection on a TLS port; the handshake runs
        on the loop, and stop() ends it at once."""
        holder = []

        def done(session, error):
            with self._lock:
                self._handshakes.discard(holder[0])
            if error is not None:
                _LOGGER.info("TLS handshake failed: %s", error)
                return
            problem = _credentials.check_alpn(session.ssl_object)
            if problem:
                _LOGGER.info("closing TLS connection: %s", problem)
                session.close()
                return
            self._admit(session, _credentials.tls_auth_context(session.ssl_object))

        try:
            handshake = TlsHandshake(sock, credentials.server_context(), True, done,
                                     monotonic() + _TLS_HANDSHAKE_TIMEOUT)
        except (OSError, ssl.SSLError, ValueError) as exc:
            _LOGGER.info("TLS handshake failed: %s", exc)
            sock.close()
            return
        holder.append(handshake)
        with self._lock:
            if self._state != "started":
                sock.close()
                return
            self._handshakes.add(handshake)
        handshake.start()

    def after_fork_child(self):
        """In a child process after fork: the server does not run there (its
        threads and loop are the parent's); the inherited listening sockets
        and connections are closed without writing to them."""
        _loop.reinit_lock(self._lock)
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
        self._connections.clear()
        self._handshakes.clear()
        if self._state in ("started", "stopping"):
            self._state = "stopped"
            self._stopped.set()

    def stop(self, grace):
        """Stop: refuse new calls now; calls in flight may finish within
        `grace` seconds (None: cancelled now). Returns an Event set when the
        server has stopped."""
        with self._lock:
            if self._state in ("stopping", "stopped"):
                return self._stopped
            if self._state == "new":
                self._state = "stopped"
                for sock in self._sockets:
                    sock.close()
                self._stopped.set()
                return self._stopped
            self._state = "stopping"
        # before anything closes (e.g. health services turn NOT_SERVING, so
        # that open Watches tell their load balancers)
        self._run_stop_hooks()
        with self._lock:
            connections = list(self._connections)
            handshakes = list(self._handshakes)
            self._handshakes.clear()
        # stop listening now: new connections are refused, not left in the
        # backlog; a connection still in its TLS handshake is closed at once
        loop = get_loop()
        closed = threading.Event()
        loop.call_soon(_close_listeners, self._listeners, closed)
        for handshake in handshakes:
            handshake.cancel("server stopping")
        if not loop.in_loop():
            closed.wait(5.0)
        for conn in connections:
            with conn.lock:
                if not conn.closed:
                    conn.core.start_graceful_shutdown()
                    conn.flush_locked()
        if not grace:
            self._finish_stop(0)
        else:
            threading.Thread(target=self._finish_stop, args=(grace,), name="grpcpy-stop", daemon=True).start()
        return self._stopped

    def _finish_stop(self, grace):
        deadline = monotonic() + grace
        with self._lock:
            while self._active and monotonic() < deadline:
                self._lock.release()
                try:
                    time.sleep(0.01)
                finally:
                    self._lock.acquire()
            connections = list(self._connections)
        for conn in connections:
            # calls still running (and calls queued for a worker) are
            # cancelled with the connection, as grpcio's server does it
            with conn.lock:
                if not conn.closed:
                    events = conn.core.cancel_all_calls()
                    if events:
                        conn.dispatch(events)
                    conn.flush_locked()
            conn.close()
        with self._lock:
            self._state = "stopped"
        forget_at_fork(self)
        self._stopped.set()

    def wait_for_termination(self, timeout=None):
        """Block until the server stops; True if `timeout` passed first."""
        return not self._stopped.wait(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(None)

    def _detached_ended(self, ctx):
        """A call whose handler returned under the non-blocking protocol
        has ended (its connection's lock held)."""
        with self._lock:
            self._active.discard(ctx)

    def _connection_gone(self, conn):
        with self._lock:
            if conn in self._connections:
                self._connections.discard(conn)
                self._channelz.retire(conn.core)

    # -- calls ------------------------------------------------------------------------------

    def _call_started(self, conn, call):
        """I/O thread, connection lock held."""
        with self._lock:
            return _rules.ServerRules._call_started(self, conn, call)

    def _forget_call(self, ctx):
        """Connection lock held: a pending call ended before its handler ran."""
        with self._lock:
            _rules.ServerRules._forget_call(self, ctx)

    def _run_handler(self, ctx):
        """Connection lock held (I/O thread, or the worker that ran the
        interceptors): the handler runs in the pool."""
        with self._lock:
            self._waiting += 1
            if self._workers is not None and self._busy >= self._workers:
                now = monotonic()
                if now - self._warned_at > 10.0:
                    self._warned_at = now
                    _LOGGER.warning(
                        "all %d worker threads are busy; %d call(s) wait for a worker. Long-lived streams hold "
                        "a worker each: use a larger thread pool, or maximum_concurrent_rpcs to refuse calls "
                        "instead of queueing them", self._workers, self._waiting)
        try:
            self._pool.submit(self._run, ctx)
        except RuntimeError:   # the pool was shut down
            with self._lock:
                self._active.discard(ctx)
                self._waiting -= 1
            ctx._send_status(_types.StatusCode.UNAVAILABLE, _rules.SHUTTING_DOWN)

    def _intercepted_lookup(self, ctx):
        details = _types.handler_call_details(ctx._call.method, ctx.invocation_metadata())
        continuation = self._lookup
        for interceptor in reversed(self._interceptors):
            continuation = _bind(interceptor, continuation)
        return continuation(details)

    def _run(self, ctx):
        with self._lock:
            self._waiting -= 1
            self._busy += 1
        parked = False
        stats = ctx._stats
        if stats is not None and stats.handler:
            tokens = stats.handler_enter()     # in the handler's thread
        try:
            if ctx._finished:
                return
            handler = ctx._handler
            if handler is None:
                handler = self._intercepted_lookup(ctx)
                if handler is None:
                    ctx._finish(_types.StatusCode.UNIMPLEMENTED, _rules.NOT_FOUND)
                    return
                with ctx._cond:
                    ctx._set_handler(handler)
                    if ctx._awaits_request():
                        # a unary request still on its way: give the worker
                        # back; the request's arrival starts the call again
                        ctx._pending = parked = True
                        return
            self._invoke(ctx, handler)
        except CallFailed as fail:
            ctx._finish(fail.code, fail.details)
        except _IteratingResponses as wrapped:
            ctx._handler_failed(wrapped.__cause__, _rules.ITERATING_FAILED)
        except Exception as exc:
            if ctx._aborted:
                ctx._finish(ctx._code, ctx._details)
            else:
                ctx._handler_failed(exc, _rules.CALLING_FAILED)
        finally:
            if stats is not None and stats.handler:
                stats.handler_exit(tokens)
            with self._lock:
                self._busy -= 1
                if not parked and not (ctx._detached and not ctx._finished):
                    self._active.discard(ctx)

    def _invoke(self, ctx, handler):
        if handler.request_streaming:
            request = ctx._request_iterator()
        else:
            request = ctx._one_request(ctx._read_raw())
            if request is _EOF:
                return
        behavior = _rules.behavior_of(handler)
        if not handler.response_streaming:
            ctx._finish_unary(behavior(request, ctx))
            return
        if getattr(behavior, "experimental_non_blocking", False):
            # the handler returns at once and sends through the callback;
            # the call stays active (stop's grace waits for it) until it
            # ends, and its worker goes back to the pool now
            ctx._detached = True
            behavior(request, ctx, ctx._send_response)
            return
        responses = behavior(request, ctx)
        if responses is None:
            # grpcio's text for it: the handler must return an iterator
            raise _IteratingResponses() from TypeError("'NoneType' object is not an iterator")
        if responses is not None:
            iterator = iter(responses)
            while True:
                try:
                    response = next(iterator)
                except StopIteration:
                    break
                except Exception as exc:
                    if ctx._aborted or isinstance(exc, CallFailed):
                        raise
                    raise _IteratingResponses() from exc
                if not ctx._write(response):
                    break
        if not ctx._finished:
            ctx._finish(*ctx._final_status())


class _Listener:
    """A listening socket on the loop: accepts what is waiting each time it
    is readable."""

    _BATCH = 64         # accepts per readiness, so that other sockets get a turn

    def __init__(self, server, sock, credentials):
        self._server = server
        self.sock = sock
        self._fd = sock.fileno()
        self._credentials = credentials
        self._closed = False
        self._loop = get_loop()

    def fileno(self):
        return self._fd

    def listen(self):
        if self._closed:
            return
        self.sock.setblocking(False)
        if not self._loop.add(self, READ):
            _LOGGER.error("cannot listen on %r", self.sock)

    def io_event(self, mask):
        server = self._server
        credentials = self._credentials
        for _ in range(self._BATCH):
            if self._closed:
                return
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # e.g. out of file descriptors: pause instead of spinning
                _LOGGER.warning("accept failed: %s", exc)
                self._loop.remove(self)
                self._loop.call_at(monotonic() + 0.1, self.listen)
                return
            if credentials is not None and credentials.is_tls:
                server._tls_accepted(sock, credentials)
                continue
            if credentials is not None:
                problem = _credentials.local_server_refusal(credentials, sock)
                if problem:
                    _LOGGER.info("closing local-credentials connection: %s", problem)
                    sock.close()
                    continue
            auth = _credentials.local_auth_context() if credentials is not None else \
                _credentials.insecure_auth_context()
            server._admit(sock, auth)

    def close(self):
        if not self._closed:
            self._closed = True
            self._loop.remove(self)
            try:
                self.sock.close()
            except OSError:
                pass


def _close_listeners(listeners, closed):
    for listener in listeners:
        listener.close()
    closed.set()


class _IteratingResponses(Exception):
    """The handler's response iterator raised (its exception is the cause)."""


def _bind(interceptor, continuation):
    return lambda details: interceptor.intercept_service(continuation, details)


def server(thread_pool, handlers=None, interceptors=None, options=None, maximum_concurrent_rpcs=None,
           compression=None, xds=False):
    """A grpcpy server (grpc.server)."""
    return Server(thread_pool, handlers, interceptors, options, maximum_concurrent_rpcs, compression)
