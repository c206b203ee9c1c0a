"""grpcpy.aio.Server: the asyncio server, compatible with grpc.aio.Server.

Each accepted connection is an AioConnection around a sans-IO
ServerConnection core. A request the core has validated arrives as
CE_CALL_STARTED; the server finds its handler and runs it (once it may
start: a unary request complete, see grpcpy._rpc.server) as a task with a
ServicerContext that reads requests from the call's queue and writes
responses through the core. Everything about the wire (headers, status,
limits, deadlines, compression) is decided by the core.
"""
import asyncio
import collections
import contextvars
import inspect
import logging
import socket

from grpcpy import _cext, _credentials, _types
from grpcpy._options import ServerOptions, bind_sockets
from grpcpy._rpc import server as _rules
from grpcpy._rpc.events import dispatch_server
from grpcpy.aio import _eager
from grpcpy.aio._base import EOF, AbortError, UsageError
from grpcpy.aio._conn import AioConnection

_CANCELLED = _cext.SC_CANCELLED

_LOGGER = logging.getLogger("grpcpy.aio.server")
_OK = _types.StatusCode.OK
CallFailed = _rules.CallFailed
_NO_MORE = _rules.NO_MORE


class _ServerProtocol(AioConnection):
    def __init__(self, server):
        opts = server._options
        core = _cext.ServerConnection(opts.h2_config(), opts.max_receive_message_length,
                                      opts.max_send_message_length, opts.compression)
        super().__init__(core, server._loop)
        self.server = server
        self.auth_context = {}
        self.local = None        # the port's local server credentials, if it has them

    def connection_made(self, transport):
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            problem = _credentials.check_alpn(ssl_object)
            if problem:
                # a TLS client that does not speak h2: refuse the connection
                _LOGGER.info("closing connection from %s: %s", transport.get_extra_info("peername"), problem)
                transport.abort()
                return
            self.auth_context = _credentials.tls_auth_context(ssl_object)
        elif self.local is not None:
            problem = _credentials.local_server_refusal(self.local, transport.get_extra_info("socket"))
            if problem:
                _LOGGER.info("closing local-credentials connection: %s", problem)
                transport.abort()
                return
            self.auth_context = _credentials.local_auth_context()
        else:
            self.auth_context = _credentials.insecure_auth_context()
        super().connection_made(transport)
        self.server._connections.add(self)

    def connection_lost(self, exc):
        super().connection_lost(exc)
        server = self.server
        if self in server._connections:
            server._connections.discard(self)
            server._channelz.retire(self.core)

    dispatch = dispatch_server


class _TlsHandshake(asyncio.Protocol):
    """A TLS port's connection until its handshake completes. The server
    runs the handshake itself (loop.start_tls) instead of giving the
    listener ssl=, because then it holds the raw transport meanwhile and
    stop() can close it at once; asyncio keeps a listener's handshaking
    connections out of reach until they finish or time out."""

    def __init__(self, server, context, local):
        self.server = server
        self.context = context
        self.local = local
        self.transport = None
        self.task = None

    def connection_made(self, transport):
        self.transport = transport
        self.server._handshaking.add(self)
        # start_tls's first step runs now: it gives the transport to the TLS
        # layer before anything is read (the ClientHello is the TLS
        # layer's); the set holds the task (the loop's reference is weak)
        self.task = _eager.start(self.server._loop, self._handshake())

    def connection_lost(self, exc):
        self.server._handshaking.discard(self)

    async def _handshake(self):
        server = self.server
        early = _EarlyData()
        try:
            tls = await server._loop.start_tls(self.transport, early, self.context, server_side=True,
                                               ssl_handshake_timeout=10.0)
        except Exception as exc:   # any failed handshake (TLS alert, timeout, reset) ends only this connection
            _LOGGER.info("TLS handshake failed: %s", exc)
            self.transport.abort()
            return
        finally:
            server._handshaking.discard(self)
        if server._state != "started":
            tls.abort()       # the server stopped as the handshake finished
            return
        proto = _ServerProtocol(server)
        proto.local = self.local
        tls.set_protocol(proto)
        proto.connection_made(tls)
        if proto.transport is None:
            return            # refused (ALPN)
        for data in early.chunks:
            proto.data_received(data)
        if early.lost:
            proto.connection_lost(early.exc)

    def abort(self):
        self.transport.abort()


class _EarlyData(asyncio.Protocol):
    """What the TLS layer delivers between the end of the handshake and the
    moment start_tls's caller runs again (the client's preface may follow
    its last handshake message at once); handed to the real protocol."""

    def __init__(self):
        self.chunks = []
        self.lost = False
        self.exc = None

    def data_received(self, data):
        self.chunks.append(data)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.lost = True
        self.exc = exc


class ServicerContext(_rules.CallContext):
    """The handler's view of its call (grpc.aio.ServicerContext)."""

    _waiter = None
    _write_waiter = None
    _task = None

    # -- facade hooks ------------------------------------------------------------

    def _wake(self):
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _ended(self):
        self._on_write_ready()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._callbacks:
            self._run_callbacks(self._take_callbacks())

    def _on_write_ready(self):
        waiter = self._write_waiter
        if waiter is not None:
            self._write_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _take_callbacks(self):
        callbacks = self._callbacks
        self._callbacks = None
        return callbacks

    def _run_callbacks(self, callbacks):
        if not callbacks:
            return
        for cb in callbacks:
            try:
                cb(self)
            except Exception:  # a callback must not break the server
                _LOGGER.exception("done callback raised")

    # -- reading ---------------------------------------------------------------

    async def _read_raw(self):
        data = self._poll_request()
        while data is None:
            self._waiter = self._conn.loop.create_future()
            await self._waiter
            data = self._poll_request()
        return data           # _rules.NO_MORE at the end

    async def read(self):
        """The next request message, or EOF (streaming requests only)."""
        if not self._handler.request_streaming:
            raise UsageError("read() is only for request-streaming RPCs")
        raw = await self._read_raw()
        if raw is _NO_MORE:
            return EOF
        return self._deserialize(raw)

    async def _request_iterator(self):
        while True:
            raw = await self._read_raw()
            if raw is _NO_MORE:
                return
            yield self._deserialize(raw)

    # -- writing ---------------------------------------------------------------

    async def write(self, message):
        """Send one response message (streaming responses only)."""
        if not self._handler.response_streaming:
            raise UsageError("write() is only for response-streaming RPCs")
        await self._write(message)

    async def _write(self, message):
        if self._finished:
            raise asyncio.InvalidStateError("the RPC has already finished")
        if self._send(self._serialize(message)):
            # flow control: wait until the peer has taken what we queued
            self._write_waiter = self._conn.loop.create_future()
            await self._write_waiter
        await self._conn.wait_writable()

    async def send_initial_metadata(self, initial_metadata):
        if not self._send_initial_metadata(initial_metadata):
            raise UsageError("Send initial metadata failed: already sent")

    # -- status ------------------------------------------------------------------

    async def abort(self, code, details="", trailing_metadata=()):
        self._set_abort(code, details, trailing_metadata)
        raise AbortError()

    async def abort_with_status(self, status):
        await self.abort(status.code, status.details, getattr(status, "trailing_metadata", ()))

    def _finish(self, code, details):
        callbacks = self._send_status(code, details)
        if callbacks:
            self._run_callbacks(callbacks)

    def _finish_unary(self, response):
        callbacks = self._respond(response)
        if callbacks:
            self._run_callbacks(callbacks)

    # -- information -------------------------------------------------------------

    def time_remaining(self):
        return self._time_remaining(self._conn.loop.time())

    def cancelled(self):
        return self._cancelled

    def done(self):
        return self._finished

    def add_done_callback(self, callback):
        if self._finished:
            callback(self)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def set_compression(self, compression):
        self._core.set_compression(self._call, _types.compression_name(compression))

    # grpc.ServicerContext (sync) names some handlers also use
    def add_callback(self, callback):
        self.add_done_callback(lambda _ctx: callback())
        return True

    def cancel(self):
        self._cancel_by_handler()


class Server(_rules.ServerRules):
    """grpc.aio.Server."""

    _context_class = ServicerContext

    def __init__(self, thread_pool=None, generic_handlers=None, interceptors=None, options=None,
                 maximum_concurrent_rpcs=None, compression=None):
        self._options = ServerOptions(options, compression)
        self._thread_pool = thread_pool
        self._coroutine_functions = {}   # behavior -> whether it is a coroutine function
        self._init_rules(generic_handlers, interceptors, maximum_concurrent_rpcs)
        self._connections = set()
        self._handshaking = set()   # _TlsHandshake: connections in their TLS handshake
        self._sockets = []
        self._listeners = []
        self._loop = None
        self._state = "new"
        self._stopped = None

    # -- configuration ---------------------------------------------------------

    def add_insecure_port(self, address):
        if self._state != "new":
            raise UsageError("ports must be added before the server starts")
        port, socks = bind_sockets(address, self._options)
        self._sockets.extend((sock, None) for sock in socks)
        return port

    def add_secure_port(self, address, server_credentials):
        """A port with transport security (TLS/mTLS, or local credentials)."""
        if self._state != "new":
            raise UsageError("ports must be added before the server starts")
        port, socks = bind_sockets(address, self._options)
        self._sockets.extend((sock, server_credentials) for sock in socks)
        return port

    # -- life cycle --------------------------------------------------------------

    async def start(self):
        if self._state == "started":
            return        # as grpc.aio: starting a running server does nothing
        if self._state != "new":
            raise UsageError("Server not in ready state")
        self._loop = asyncio.get_running_loop()
        if self._stopped is None:
            self._stopped = self._loop.create_future()
        self._state = "started"
        for sock, creds in self._sockets:
            local = creds if creds is not None and creds._kind == "local" else None
            if creds is not None and creds.is_tls:
                def factory(local=local, context=creds.server_context()):
                    return _TlsHandshake(self, context, local)
            else:
                def factory(local=local):
                    proto = _ServerProtocol(self)
                    proto.local = local
                    return proto

            if sock.family == getattr(socket, "AF_UNIX", None):
                listener = await self._loop.create_unix_server(factory, sock=sock)
            else:
                listener = await self._loop.create_server(factory, sock=sock)
            self._listeners.append(listener)
        self._listening = [sock for sock, _ in self._sockets]     # (channelz)
        self._sockets = []

    async def stop(self, grace):
        """Stop accepting; let calls in flight finish within `grace` seconds
        (None: cancel them now); then close every connection."""
        if self._state == "new":
            self._state = "stopped"
            for sock, _ in self._sockets:
                sock.close()
            self._sockets = []
            if self._stopped is not None and not self._stopped.done():
                self._stopped.set_result(None)
            return
        if self._state != "started":
            await asyncio.shield(self._stopped)
            return
        self._state = "stopping"
        if self._stop_hooks:
            self._run_stop_hooks()
            # one turn of the loop: handlers the hooks woke (health Watches
            # told NOT_SERVING) write before anything closes, even with no grace
            await asyncio.sleep(0)
        for listener in self._listeners:
            listener.close()
        # a connection still in its TLS handshake has no call to finish
        for handshake in list(self._handshaking):
            handshake.abort()
        for conn in list(self._connections):
            conn.core.start_graceful_shutdown()
            conn.after_action()
        if grace:
            # calls waiting for their request count too: one that gets it
            # within the grace runs to its end
            deadline = self._loop.time() + grace
            while self._active:
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    break
                running = [ctx._task for ctx in self._active if ctx._task is not None and not ctx._task.done()]
                if running:
                    await asyncio.wait(running, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.sleep(min(remaining, 0.01))
        # what is still running is cut off with its connection, as grpcio's
        # server does: the client sees UNAVAILABLE, the handlers are cancelled
        for conn in list(self._connections):
            conn.cancel_calls_and_close()
        for listener in self._listeners:
            try:
                await listener.wait_closed()
            except Exception:
                pass
        self._state = "stopped"
        if not self._stopped.done():
            self._stopped.set_result(None)

    async def wait_for_termination(self, timeout=None):
        """Wait until the server has stopped, at most `timeout` seconds.
        Returns True when the timeout expired first (grpc.aio's meaning)."""
        if self._stopped is None:
            if self._state == "stopped":
                return False
            self._stopped = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._stopped), timeout)
        except asyncio.TimeoutError:
            return True
        return False

    def __del__(self):
        for sock, _ in getattr(self, "_sockets", ()):
            sock.close()

    # -- calls ---------------------------------------------------------------------

    def _run_handler(self, ctx):
        handler = ctx._handler
        unary = None
        if handler is not None and not handler.request_streaming and not handler.response_streaming:
            behavior = handler.unary_unary
            is_coroutine = self._coroutine_functions.get(behavior)
            if is_coroutine is None:
                is_coroutine = inspect.iscoroutinefunction(behavior)
                if len(self._coroutine_functions) > 4096:   # handlers made per call: no unbounded cache
                    self._coroutine_functions.clear()
                self._coroutine_functions[behavior] = is_coroutine
            if is_coroutine:
                unary = behavior
        # the handler's first step runs now (see _eager): most unary
        # handlers finish in it and their response leaves in this write
        ctx._task = _eager.start(self._loop, self._run(ctx, handler, unary))

    async def _intercepted_handler(self, ctx):
        details = _types.handler_call_details(ctx._call.method, ctx.invocation_metadata())

        async def terminal(handler_call_details):
            return self._lookup(handler_call_details)

        continuation = terminal
        for interceptor in reversed(self._interceptors):
            continuation = _bind_interceptor(interceptor, continuation)
        return await continuation(details)

    async def _run(self, ctx, handler, unary=None):
        parked = False
        stats = ctx._stats
        if stats is not None and stats.handler:
            tokens = stats.handler_enter()     # in the handler's task (its context)
        try:
            if unary is not None:
                await self._unary_unary(ctx, unary)
                return
            if handler is None:
                handler = await self._intercepted_handler(ctx)
                if handler is None:
                    ctx._finish(_types.StatusCode.UNIMPLEMENTED, _rules.NOT_FOUND)
                    return
                ctx._set_handler(handler)
                if ctx._awaits_request():
                    # a unary request still on its way: the call waits
                    # without a task; its arrival starts it again
                    ctx._pending = parked = True
                    ctx._task = None
                    return
            await self._invoke(ctx, handler)
        except AbortError:
            ctx._finish(ctx._code, ctx._details)
        except CallFailed as fail:
            ctx._finish(fail.code, fail.details)
        except asyncio.CancelledError:
            if not ctx._finished:
                ctx._core.cancel_call(ctx._call)
                ctx._conn.after_action()
                ctx._finished = True
                if stats is not None:
                    stats.end(ctx._call, _CANCELLED, "handler cancelled", None, ctx._conn.peer)
                ctx._run_callbacks(ctx._take_callbacks())
        except _IteratingResponses as wrapped:
            ctx._handler_failed(wrapped.__cause__, _rules.ITERATING_FAILED)
        except Exception as exc:
            ctx._handler_failed(exc, _rules.CALLING_FAILED)
        finally:
            if stats is not None and stats.handler:
                stats.handler_exit(tokens)
            if not parked:
                self._active.discard(ctx)
            if ctx._finished:
                # the core has no more events for this call: drop its link
                # back to the context, so the pair is freed by reference
                # counting instead of waiting for the cycle collector
                ctx._call.user = None

    async def _unary_unary(self, ctx, behavior):
        """_invoke for the commonest handler: a coroutine, one request, one
        response (the request is usually in hand already)."""
        raw = ctx._take_message()
        if raw is not None:
            request = ctx._deserialize(raw)
        else:
            request = ctx._one_request(await ctx._read_raw())
            if request is _NO_MORE:
                return
        callbacks = ctx._respond(await behavior(request, ctx))
        if callbacks:
            ctx._run_callbacks(callbacks)

    async def _invoke(self, ctx, handler):
        if handler.request_streaming:
            request = ctx._request_iterator()
        else:
            request = ctx._one_request(await ctx._read_raw())
            if request is _NO_MORE:
                return
        behavior = _rules.behavior_of(handler)
        if not handler.response_streaming:
            ctx._finish_unary(await self._call_behavior(behavior, request, ctx))
            return
        if inspect.isasyncgenfunction(behavior):
            await _write_all(ctx, behavior(request, ctx))
        elif inspect.iscoroutinefunction(behavior):
            result = await behavior(request, ctx)
            if result is not None:
                raise TypeError("a streaming handler coroutine must write() and return None")
        else:
            # a plain function: its body, and the body of a generator it
            # returns, run in the migration thread pool, never on the loop,
            # in a copy of the task's context (what a stats hook attached
            # there, such as the server span, is the handler's too)
            if handler.request_streaming:
                request = _SyncRequestIterator(ctx, self._loop)
            context = contextvars.copy_context()
            if inspect.isgeneratorfunction(behavior):
                iterator = behavior(request, ctx)   # creating it runs no user code
            else:
                iterator = await self._loop.run_in_executor(self._thread_pool, context.run, behavior, request, ctx)
            if iterator is not None:
                if hasattr(iterator, "__aiter__"):
                    await _write_all(ctx, iterator)
                else:
                    iterator = iter(iterator)
                    run_in_executor = self._loop.run_in_executor
                    while True:
                        try:
                            response = await run_in_executor(self._thread_pool, context.run, next, iterator, _DONE)
                        except (AbortError, CallFailed, asyncio.CancelledError):
                            raise
                        except Exception as exc:
                            raise _IteratingResponses() from exc
                        if response is _DONE:
                            break
                        await ctx._write(response)
        if not ctx._finished:
            ctx._finish(*ctx._final_status())

    async def _call_behavior(self, behavior, request, ctx):
        if inspect.iscoroutinefunction(behavior):
            return await behavior(request, ctx)
        if isinstance(request, collections.abc.AsyncIterator):
            request = _SyncRequestIterator(ctx, self._loop)
        result = await self._loop.run_in_executor(self._thread_pool, contextvars.copy_context().run, behavior,
                                                  request, ctx)
        if inspect.isawaitable(result):
            result = await result
        return result


_DONE = object()


class _IteratingResponses(Exception):
    """The handler's response iterator raised (its exception is the cause)."""


async def _write_all(ctx, responses):
    """Write what an async iterator of responses yields."""
    iterator = responses.__aiter__()
    while True:
        try:
            response = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except (AbortError, CallFailed, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise _IteratingResponses() from exc
        await ctx._write(response)


def _bind_interceptor(interceptor, continuation):
    async def call(details):
        return await interceptor.intercept_service(continuation, details)
    return call


class _SyncRequestIterator:
    """A blocking iterator over a call's requests, for sync handlers running
    in the migration thread pool."""

    def __init__(self, ctx, loop):
        self._ctx = ctx
        self._loop = loop

    def __iter__(self):
        return self

    def __next__(self):
        future = asyncio.run_coroutine_threadsafe(self._ctx._read_raw(), self._loop)
        raw = future.result()
        if raw is _NO_MORE:
            raise StopIteration
        return self._ctx._deserialize(raw)


def server(migration_thread_pool=None, handlers=None, interceptors=None, options=None,
           maximum_concurrent_rpcs=None, compression=None):
    """A grpcpy.aio server (grpc.aio.server)."""
    return Server(migration_thread_pool, handlers, interceptors, options, maximum_concurrent_rpcs, compression)
