"""grpcpy.server(): the threaded server, compatible with grpc.Server.

Each accepted socket is a SyncConnection around a sans-IO ServerConnection.
A validated request (CE_CALL_STARTED) becomes a ServicerContext and a job in
the application's thread pool; the handler reads requests and writes
responses through the context, which waits on a Condition sharing the
connection's lock.

Worker pool: a handler occupies one worker for its whole duration, so
long-lived streams hold workers. When every worker is busy, new calls wait in
the pool's queue (they are not refused) and a warning is logged, at most
every 10 seconds, naming the busy and waiting counts. To refuse calls instead
of queueing them, pass maximum_concurrent_rpcs: calls beyond it end at once
with RESOURCE_EXHAUSTED.
"""
import collections
import logging
import socket
import ssl
import threading
import time

from grpcpy import _cext, _credentials, _types
from grpcpy._context import PeerInfo
from grpcpy._options import ServerOptions, bind_sockets
from grpcpy._sync._conn import SyncConnection, tls_handshake

_LOGGER = logging.getLogger("grpcpy.server")
_ServerCall = _cext.ServerCall
CE_CALL_STARTED = _cext.CE_CALL_STARTED
CE_MESSAGE = _cext.CE_MESSAGE
CE_HALF_CLOSED = _cext.CE_HALF_CLOSED
CE_CALL_ENDED = _cext.CE_CALL_ENDED
CE_WRITE_READY = _cext.CE_WRITE_READY
Metadatum = _types.Metadatum
_EOF = object()
monotonic = time.monotonic
_NO_DEADLINE = float(2 ** 63 - 1)


class _Abort(Exception):
    """Raised by context.abort(); ends the handler with the chosen status."""


class _Fail(Exception):
    """A call ends with a status the server chose (e.g. a message that
    cannot be (de)serialized), as grpcio ends it."""

    def __init__(self, code, details):
        Exception.__init__(self, details)
        self.code = code
        self.details = details


def _deserialize(deserializer, raw):
    if deserializer is None:
        return raw
    try:
        return deserializer(raw)
    except Exception:
        _LOGGER.exception("Exception deserializing request!")
        raise _Fail(_types.StatusCode.INTERNAL, "Exception deserializing request!")


class _ServerConnection(SyncConnection):
    def __init__(self, server, sock):
        opts = server._options
        core = _cext.ServerConnection(opts.h2_config(), opts.max_receive_message_length,
                                      opts.max_send_message_length, opts.compression)
        super().__init__(core, sock, name="grpcpy-server-io")
        self.server = server
        self.auth_context = {}

    def dispatch(self, events):
        for ev in events:
            kind = ev.kind
            target = ev.call
            if type(target) is _ServerCall:
                if kind == CE_CALL_STARTED:
                    self.server._call_started(self, target)
                    continue
                target = target.user
                if target is None:
                    continue
            if kind == CE_MESSAGE:
                target._on_message(ev.data, ev.value)
            elif kind == CE_HALF_CLOSED:
                target._on_half_close()
            elif kind == CE_CALL_ENDED:
                target._on_end(ev.code, ev.details)
            elif kind == CE_WRITE_READY:
                target._cond.notify_all()

    def lost_locked(self):
        self.server._connection_gone(self)


class ServicerContext(PeerInfo, _types.ServicerContext):
    """The handler's view of its call (grpc.ServicerContext)."""

    def __init__(self, conn, call):
        self._conn = conn
        self._peer_source = conn
        self._core = conn.core
        self._call = call
        self._cond = threading.Condition(conn.lock)
        self._messages = collections.deque()
        self._half_closed = call.half_closed
        self._finished = False
        self._cancelled = False
        self._code = None
        self._details = None
        self._trailing = None
        self._callbacks = []
        self._metadata = None
        self._handler = None

    # -- events (I/O thread, lock held) -----------------------------------------

    def _on_message(self, data, wire):
        self._messages.append((data, wire))
        self._cond.notify_all()

    def _on_half_close(self):
        self._half_closed = True
        self._cond.notify_all()

    def _on_end(self, code, details):
        if self._finished:
            return
        self._finished = True
        self._cancelled = True
        self._code = _types.status_from_number(code)
        self._details = details
        self._cond.notify_all()
        callbacks, self._callbacks = self._callbacks, []
        if callbacks:
            # never run application code on the I/O thread under the lock
            threading.Thread(target=_run_callbacks, args=(callbacks,), daemon=True).start()

    # -- requests ------------------------------------------------------------------

    def _read_raw(self):
        with self._cond:
            while not self._messages:
                if self._half_closed or self._finished:
                    return _EOF
                self._cond.wait()
            data, wire = self._messages.popleft()
            if not self._finished:
                self._core.message_consumed(self._call, wire)
                self._conn.flush_locked()
            return data

    def _request_iterator(self):
        deserializer = self._handler.request_deserializer
        while True:
            raw = self._read_raw()
            if raw is _EOF:
                return
            try:
                request = _deserialize(deserializer, raw)
            except _Fail as fail:
                # the handler sees the call end, as with grpcio
                self._finish(fail.code, fail.details)
                return
            yield request

    # -- responses -------------------------------------------------------------------

    def _write(self, message):
        payload = _serialize(self._handler.response_serializer, message)
        with self._cond:
            if self._finished:
                return False
            self._core.send_message(self._call, payload)
            self._conn.after_action_locked()
            while not self._finished and self._core.write_pending(self._call):
                self._cond.wait()
            self._conn.wait_writable_locked()
        return not self._finished

    def _finish(self, code, details):
        with self._cond:
            if self._finished:
                return
            self._finished = True
            self._core.send_status(self._call, _types.status_number(code), details or "", self._trailing)
            self._conn.after_action_locked()
            callbacks, self._callbacks = self._callbacks, []
        _run_callbacks(callbacks)

    # -- grpc.ServicerContext ------------------------------------------------------------

    def set_compression(self, compression):
        with self._cond:
            self._core.set_compression(self._call, _types.compression_name(compression))

    def send_initial_metadata(self, initial_metadata):
        with self._cond:
            if self._call.headers_sent:
                raise ValueError("initial metadata was already sent")
            if not self._finished:
                self._core.send_initial_metadata(self._call, tuple(initial_metadata))
                self._conn.after_action_locked()

    def set_trailing_metadata(self, trailing_metadata):
        self._trailing = tuple(trailing_metadata)

    def trailing_metadata(self):
        return self._trailing

    def abort(self, code, details):
        if _types.status_number(code) == 0:
            _LOGGER.error("abort() called with StatusCode.OK; returning UNKNOWN")
            code = _types.StatusCode.UNKNOWN
            details = ""
        self._code = code
        self._details = details
        raise _Abort()

    def abort_with_status(self, status):
        self._trailing = tuple(getattr(status, "trailing_metadata", ()) or ())
        self.abort(status.code, status.details)

    def set_code(self, code):
        self._code = code

    def set_details(self, details):
        self._details = details

    def code(self):
        return self._code

    def details(self):
        return self._details

    def disable_next_message_compression(self):
        self._call.compress_next = False

    def is_active(self):
        return not self._finished

    def time_remaining(self):
        deadline = self._call.deadline
        if deadline == float("inf"):
            # grpcio: a finite, enormous number (its infinite deadline is the
            # largest 64-bit count of seconds), so min()/arithmetic still work
            return _NO_DEADLINE - time.time()
        return max(0.0, deadline - monotonic())

    def cancel(self):
        with self._cond:
            if self._finished:
                return
            self._core.cancel_by_application(self._call)
            self._conn.after_action_locked()
            self._on_end(_cext.SC_CANCELLED, "CANCELLED")

    def add_callback(self, callback):
        with self._cond:
            if self._finished:
                return False
            self._callbacks.append(callback)
            return True


def _run_callbacks(callbacks):
    for cb in callbacks:
        try:
            cb()
        except Exception:  # a callback must not break the server
            _LOGGER.exception("callback raised")


def _serialize(serializer, message):
    # grpcio: a response that cannot be serialized (None included, e.g. a
    # handler that forgot to return) ends the call INTERNAL
    try:
        payload = message if serializer is None else serializer(message)
    except Exception:
        _LOGGER.exception("Exception serializing message!")
        payload = None
    if payload is None:
        raise _Fail(_types.StatusCode.INTERNAL, "Failed to serialize response!")
    return payload


class Server:
    """grpc.Server."""

    def __init__(self, thread_pool, generic_handlers=None, interceptors=None, options=None,
                 maximum_concurrent_rpcs=None, compression=None):
        if thread_pool is None:
            raise ValueError("a thread pool (e.g. concurrent.futures.ThreadPoolExecutor) is required")
        self._pool = thread_pool
        self._options = ServerOptions(options, compression)
        self._handlers = list(generic_handlers or ())
        self._registered = {}
        self._interceptors = list(interceptors or ())
        self._max_rpcs = maximum_concurrent_rpcs
        self._lock = threading.Lock()
        self._active = set()
        self._busy = 0
        self._waiting = 0
        self._warned_at = 0.0
        self._connections = set()
        self._sockets = []
        self._port_credentials = {}
        self._threads = []
        self._state = "new"
        self._stopped = threading.Event()
        self._workers = getattr(thread_pool, "_max_workers", None)

    # -- configuration --------------------------------------------------------------

    def add_generic_rpc_handlers(self, generic_rpc_handlers):
        for handler in generic_rpc_handlers:
            self._handlers.append(handler)

    def add_registered_method_handlers(self, service_name, method_handlers):
        for method, handler in method_handlers.items():
            self._registered[_types.fully_qualified_method(service_name, method)] = handler

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
        for sock in self._sockets:
            sock.setblocking(True)
            sock.settimeout(0.2)   # to notice stop()
            thread = threading.Thread(target=self._accept_loop, args=(sock, self._port_credentials.get(sock)),
                                      name="grpcpy-accept", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _accept_loop(self, listener, credentials):
        while self._state == "started":
            try:
                sock, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._state != "started":
                    break
                time.sleep(0.01)   # e.g. out of file descriptors: do not spin
                continue
            if credentials is not None and credentials.is_tls:
                # the TLS handshake runs on its own thread: a slow or hostile
                # client must not hold up the accept loop
                threading.Thread(target=self._tls_handshake, args=(sock, credentials), daemon=True).start()
                continue
            if credentials is not None:
                problem = _credentials.local_server_refusal(credentials, sock)
                if problem:
                    _LOGGER.info("closing local-credentials connection: %s", problem)
                    sock.close()
                    continue
            auth = _credentials.local_auth_context() if credentials is not None else \
                _credentials.insecure_auth_context()
            if not self._admit(sock, auth):
                break
        try:
            listener.close()
        except OSError:
            pass

    def _admit(self, sock, auth_context):
        conn = _ServerConnection(self, sock)
        conn.auth_context = auth_context
        with self._lock:
            if self._state != "started":
                sock.close()
                return False
            self._connections.add(conn)
        conn.start()
        return True

    def _tls_handshake(self, sock, credentials):
        try:
            tls = tls_handshake(sock, credentials.server_context(), True, timeout=10.0)
        except (OSError, ssl.SSLError) as exc:
            _LOGGER.info("TLS handshake failed: %s", exc)
            sock.close()
            return
        problem = _credentials.check_alpn(tls.ssl_object)
        if problem:
            _LOGGER.info("closing TLS connection: %s", problem)
            sock.close()
            return
        self._admit(tls, _credentials.tls_auth_context(tls.ssl_object))

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
            connections = list(self._connections)
            # stop listening now: new connections are refused, not left in
            # the backlog (the accept threads notice and close the sockets)
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
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
        self._stopped.set()

    def wait_for_termination(self, timeout=None):
        """Block until the server stops; True if `timeout` passed first."""
        return not self._stopped.wait(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(None)

    def _connection_gone(self, conn):
        with self._lock:
            self._connections.discard(conn)

    # -- calls ------------------------------------------------------------------------------

    def _call_started(self, conn, call):
        """I/O thread, connection lock held."""
        core = conn.core
        with self._lock:
            if self._state != "started":
                core.send_status(call, _cext.SC_UNAVAILABLE, "server is shutting down")
                return
            if self._max_rpcs is not None and len(self._active) >= self._max_rpcs:
                core.send_status(call, _cext.SC_RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!")
                return
            ctx = ServicerContext(conn, call)
            self._active.add(ctx)
            self._waiting += 1
            if self._workers is not None and self._busy >= self._workers:
                now = monotonic()
                if now - self._warned_at > 10.0:
                    self._warned_at = now
                    _LOGGER.warning(
                        "all %d worker threads are busy; %d call(s) wait for a worker. Long-lived streams hold "
                        "a worker each: use a larger thread pool, or maximum_concurrent_rpcs to refuse calls "
                        "instead of queueing them", self._workers, self._waiting)
        core.accept_call(call, ctx)
        try:
            self._pool.submit(self._run, ctx)
        except RuntimeError:   # the pool was shut down
            with self._lock:
                self._active.discard(ctx)
                self._waiting -= 1
            core.send_status(call, _cext.SC_UNAVAILABLE, "server is shutting down")

    def _lookup(self, method, ctx):
        handler = self._registered.get(method)
        if handler is not None and not self._interceptors:
            return handler
        details = _types.handler_call_details(method, ctx.invocation_metadata())

        def terminal(handler_call_details):
            found = self._registered.get(handler_call_details.method)
            if found is None:
                for generic in self._handlers:
                    found = generic.service(handler_call_details)
                    if found is not None:
                        break
            return found

        continuation = terminal
        for interceptor in reversed(self._interceptors):
            continuation = _bind(interceptor, continuation)
        return continuation(details)

    def _run(self, ctx):
        with self._lock:
            self._waiting -= 1
            self._busy += 1
        try:
            if ctx._finished:
                return
            handler = self._lookup(ctx._call.method, ctx)
            if handler is None:
                ctx._finish(_types.StatusCode.UNIMPLEMENTED, "Method not found!")
                return
            ctx._handler = handler
            self._invoke(ctx, handler)
        except _Abort:
            ctx._finish(ctx._code or _types.StatusCode.UNKNOWN, ctx._details)
        except _Fail as fail:
            ctx._finish(fail.code, fail.details)
        except _IteratingResponses as wrapped:
            self._handler_failed(ctx, wrapped.__cause__, "Exception iterating responses: %s")
        except Exception as exc:
            self._handler_failed(ctx, exc, "Exception calling application: %s")
        finally:
            with self._lock:
                self._busy -= 1
                self._active.discard(ctx)

    @staticmethod
    def _handler_failed(ctx, exc, template):
        if ctx._finished:
            return
        _LOGGER.error(template, exc, exc_info=exc)
        if ctx._code is not None and _types.status_number(ctx._code) != 0:
            # the handler chose a status before raising: it stands (grpcio)
            ctx._finish(ctx._code, ctx._details)
        else:
            ctx._finish(_types.StatusCode.UNKNOWN, template % (exc,))

    def _invoke(self, ctx, handler):
        if handler.request_streaming:
            request = ctx._request_iterator()
        else:
            raw = ctx._read_raw()
            if raw is _EOF:
                if not ctx._finished:
                    ctx._finish(_types.StatusCode.INTERNAL, "Expected one request message, got none")
                return
            request = _deserialize(handler.request_deserializer, raw)
        if not handler.response_streaming:
            behavior = handler.stream_unary if handler.request_streaming else handler.unary_unary
            response = behavior(request, ctx)
            if ctx._finished:
                return
            code = ctx._code if ctx._code is not None else _types.StatusCode.OK
            if _types.status_number(code) == 0:
                payload = _serialize(handler.response_serializer, response)
                with ctx._cond:
                    if not ctx._finished:
                        ctx._core.send_message(ctx._call, payload)
            ctx._finish(code, ctx._details)
            return
        behavior = handler.stream_stream if handler.request_streaming else handler.unary_stream
        responses = behavior(request, ctx)
        if responses is not None:
            iterator = iter(responses)
            while True:
                try:
                    response = next(iterator)
                except StopIteration:
                    break
                except (_Abort, _Fail):
                    raise
                except Exception as exc:
                    raise _IteratingResponses() from exc
                if not ctx._write(response):
                    break
        if not ctx._finished:
            ctx._finish(ctx._code if ctx._code is not None else _types.StatusCode.OK, ctx._details)


class _IteratingResponses(Exception):
    """The handler's response iterator raised (its exception is the cause)."""


def _bind(interceptor, continuation):
    return lambda details: interceptor.intercept_service(continuation, details)


def server(thread_pool, handlers=None, interceptors=None, options=None, maximum_concurrent_rpcs=None,
           compression=None, xds=False):
    """A grpcpy server (grpc.server)."""
    return Server(thread_pool, handlers, interceptors, options, maximum_concurrent_rpcs, compression)
