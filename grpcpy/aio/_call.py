"""Client call objects of grpcpy.aio (grpc.aio.UnaryUnaryCall and friends).

The rules of a call (status, metadata, (de)serialisation, cancellation,
credentials, the unary result) are grpcpy._rpc.client's; this module adds
the asyncio side: futures to wait on, tasks for credentials and request
iterators, and grpc.aio's API shapes. A call is started on a connection as
soon as the channel can pick one; until then it waits in the channel
(wait_for_ready) or fails fast.
"""
import asyncio
import inspect

from grpcpy import _credentials, _types
from grpcpy._rpc import client as _client
from grpcpy.aio._base import EOF, AioRpcError, Metadata, UsageError

StatusCode = _types.StatusCode
_OK = StatusCode.OK
_CANCELLED = StatusCode.CANCELLED
_NOTHING = _client._NOTHING


class Call(_client.ClientCall):
    """What every grpcpy.aio client call offers."""

    _waiter = None
    _write_waiter = None
    _initial_waiter = None
    _end_waiters = None        # futures of tasks waiting for the end
    _started = None            # future: set when on a connection (or ended)
    _writer_task = None

    _callbacks = None

    # -- facade hooks ------------------------------------------------------------------

    def _now(self):
        return self._loop.time()

    # the two commonest events, with their wake-up inlined (the call
    # layer's versions call the _wake_* hooks)
    def _on_initial_metadata(self, metadata):
        self._initial_metadata = metadata
        waiter = self._initial_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_message(self, data, wire, compressed):
        self._messages.append((data, wire))
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wake_write(self):
        waiter = self._write_waiter
        if waiter is not None:
            self._write_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wake_end(self):
        # (each checked on its own: most calls have none of them)
        fut = self._initial_waiter
        if fut is not None and not fut.done():
            fut.set_result(None)
        fut = self._waiter
        if fut is not None:
            self._waiter = None
            if not fut.done():
                fut.set_result(None)
        fut = self._write_waiter
        if fut is not None:
            self._write_waiter = None
            if not fut.done():
                fut.set_result(None)
        fut = self._started
        if fut is not None and not fut.done():
            fut.set_result(None)
        waiters = self._end_waiters
        if waiters is not None:
            self._end_waiters = None
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        self._channel._calls.discard(self)     # the channel's _untrack, inline
        callbacks = self._callbacks
        if callbacks:
            self._callbacks = None
            for cb in callbacks:
                cb(self)

    def _error(self):
        if self._code == _CANCELLED and self._cancelled_locally:
            return asyncio.CancelledError()
        return AioRpcError(self._code, Metadata.from_tuple(self._initial_metadata),
                           Metadata.from_tuple(self._trailing_metadata), self._details, self._debug_string())

    def _raise(self):
        raise self._error()

    def _end_future(self):
        """A future of its own that is set when the call ends (cancelling it
        leaves the call alone, as asyncio.shield would)."""
        waiter = self._loop.create_future()
        if self._ended:
            waiter.set_result(None)
        elif self._end_waiters is None:
            self._end_waiters = [waiter]
        else:
            self._end_waiters.append(waiter)
        return waiter

    async def _wait_end(self):
        if not self._ended:
            await self._end_future()

    # -- start -------------------------------------------------------------------

    def _begin(self):
        """Put the call on a connection now if the channel has one ready,
        else wait for one in the channel. Call credentials run first."""
        if self._ended:
            return
        channel = self._channel
        if self._credentials is not None or channel._has_call_credentials:
            plugins = self._auth_plugins()
            if plugins is None:
                return
            if plugins:
                self._started = self._loop.create_future()
                self._loop.create_task(self._authenticate_then_start(plugins))
                return
        proto = channel._pick_now(self)
        if proto is not None:
            self._start_on(proto)
        else:
            self._started = self._loop.create_future()
            channel._enqueue(self)

    async def _authenticate_then_start(self, plugins):
        """Run the metadata plugins (on executor threads, as they may block),
        within the call's deadline, then start the call."""
        loop = self._loop
        context = self._auth_context()
        extra = []
        for plugin in plugins:
            answer = loop.create_future()

            def done(metadata, error, answer=answer):
                loop.call_soon_threadsafe(_resolve, answer, (metadata, error))

            try:
                await asyncio.wait_for(self._run_plugin(plugin, context, done, answer), self._auth_remaining())
            except asyncio.TimeoutError:
                self._auth_timed_out()
                return
            if not self._auth_answer(extra, *answer.result()):
                return
        if self._ended:
            return
        self._auth_done(extra)
        proto = self._channel._pick_now(self)
        if proto is not None:
            self._start_on(proto)
        else:
            self._channel._enqueue(self)

    async def _run_plugin(self, plugin, context, done, answer):
        await self._loop.run_in_executor(None, _credentials.run_plugin, plugin, context, done)
        await answer

    def _start_on(self, proto):
        """Called by the channel with a ready connection."""
        _client.ClientCall._start_on(self, proto)
        started = self._started
        if started is not None and not started.done():
            started.set_result(None)

    def _fail_start(self, code, details):
        """The channel could not give this call a connection (a retry policy
        may try again)."""
        self._pick_failed(code, details)

    # -- later attempts (grpcpy._rpc.attempts) -----------------------------------------

    def _call_at(self, when, fn):
        return self._loop.call_at(when, fn)

    def _attempt_timer(self):
        if self._attempt_due():
            proto = self._channel._pick_now(self)
            if proto is not None:
                self._start_on(proto)
            else:
                self._channel._enqueue(self)

    # -- grpc.aio.Call / RpcContext -----------------------------------------------

    def cancel(self):
        return self._cancel()

    def cancelled(self):
        return self._ended and self._code == _CANCELLED

    def done(self):
        return self._ended

    def add_done_callback(self, callback):
        if self._ended:
            callback(self)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def time_remaining(self):
        return self._time_remaining()

    async def _wait_initial(self):
        waiter = self._initial_waiter
        if waiter is None or waiter.done():
            waiter = self._initial_waiter = self._loop.create_future()
        await asyncio.shield(waiter)

    async def initial_metadata(self):
        if self._initial_metadata is None:
            await self._wait_initial()
        return Metadata.from_tuple(self._initial_metadata)

    async def trailing_metadata(self):
        await self._wait_end()
        return Metadata.from_tuple(self._trailing_metadata)

    async def code(self):
        await self._wait_end()
        return self._code

    async def details(self):
        await self._wait_end()
        return self._details

    async def debug_error_string(self):
        await self._wait_end()
        return self._debug_string()

    async def wait_for_connection(self):
        """Until the server answered with its headers (or the call ended);
        raises the call's error when it has failed (grpc.aio)."""
        if self._initial_metadata is None:
            await self._wait_initial()
        if self._ended and self._code != _OK:
            self._raise()

    # -- receiving ------------------------------------------------------------------

    async def _read_raw(self):
        data = self._poll_message()
        while data is None:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            except asyncio.CancelledError:
                self.cancel()
                raise
            data = self._poll_message()
        return EOF if data is _client.NO_MORE else data

    async def _read(self):
        """The next response (deserialized), or EOF at a good end; raises
        for a failed call."""
        raw = await self._read_raw()
        if raw is not EOF:
            message = self._deserialize(raw)
            if message is not _NOTHING:
                return message
        if self._code is not _OK:
            self._raise()
        return EOF

    # -- sending ----------------------------------------------------------------------

    async def _wait_started(self):
        if self._started is not None and not self._started.done():
            try:
                await self._started
            except asyncio.CancelledError:
                self.cancel()
                raise

    async def _write(self, message):
        await self._wait_started()
        payload = False
        if not self._ended:
            if self._writes_closed:
                raise asyncio.InvalidStateError("write() after done_writing()")
            try:
                payload = self._serialize(message)
            except _client.CallSerializationError:
                payload = None
        if self._ended:
            if payload is None and self._code is not _OK:
                self._raise()          # this write's serializer failed the call
            raise asyncio.InvalidStateError("the RPC has already finished")
        if self._send(payload):
            self._write_waiter = self._loop.create_future()
            await self._write_waiter
        conn = self._conn
        if conn is not None:
            await conn.wait_writable()

    _writes_closed = False

    async def _done_writing(self):
        await self._wait_started()
        self._writes_closed = True
        self._close_send()

    def __repr__(self):
        if self._ended:
            return "<%s of RPC that terminated with:\n\tstatus = %s\n\tdetails = \"%s\"\n>" % (
                type(self).__name__, self._code, self._details)
        return "<%s object of in-flight RPC>" % type(self).__name__


def _resolve(future, value):
    if not future.done():
        future.set_result(value)


class _UnaryResponseMixin:
    def __await__(self):
        if not self._ended:
            try:
                yield from self._end_future().__await__()
            except asyncio.CancelledError:
                self.cancel()
                raise
        return self._unary_result()


class _StreamResponseMixin:
    _read_style = None     # "read" or "iterate": grpc.aio refuses mixing the two

    def _style(self, style):
        if self._read_style is None:
            self._read_style = style
        elif self._read_style != style:
            raise UsageError("Please don't mix two styles of API for streaming responses")

    async def read(self):
        self._style("read")
        return await self._read()

    def __aiter__(self):
        self._style("iterate")
        return self._iterate()

    async def _iterate(self):
        while True:
            message = await self._read()
            if message is EOF:
                return
            yield message


class _RequestStreamMixin:
    def _consume_requests(self, request_iterator):
        if request_iterator is not None:
            self._writer_task = self._loop.create_task(self._write_all(request_iterator))

    async def _write_all(self, request_iterator):
        try:
            if hasattr(request_iterator, "__aiter__"):
                async for request in request_iterator:
                    await self._write(request)
            else:
                for request in request_iterator:
                    await self._write(request)
            await self._done_writing()
        except (AioRpcError, asyncio.InvalidStateError, asyncio.CancelledError):
            pass
        except Exception:  # the application's iterator failed
            _client._LOGGER.exception(_client._ITERATOR_FAILED)
            self._iterator_failed()

    async def write(self, request):
        if self._writer_task is not None:
            raise UsageError("write() cannot be used with a request iterator")
        await self._write(request)

    async def done_writing(self):
        if self._writer_task is not None:
            raise UsageError("done_writing() cannot be used with a request iterator")
        await self._done_writing()


class UnaryUnaryCall(_UnaryResponseMixin, Call):
    _response_streaming = False

    def __init__(self, request, channel, *args):
        self._loop = channel._loop
        _client.ClientCall.__init__(self, channel, *args, request)
        self._begin()


class UnaryStreamCall(_StreamResponseMixin, Call):
    def __init__(self, request, channel, *args):
        self._loop = channel._loop
        _client.ClientCall.__init__(self, channel, *args, request)
        self._begin()


class StreamUnaryCall(_RequestStreamMixin, _UnaryResponseMixin, Call):
    _response_streaming = False

    def __init__(self, request_iterator, channel, *args):
        self._loop = channel._loop
        _client.ClientCall.__init__(self, channel, *args)
        self._begin()
        self._consume_requests(request_iterator)


class StreamStreamCall(_RequestStreamMixin, _StreamResponseMixin, Call):
    def __init__(self, request_iterator, channel, *args):
        self._loop = channel._loop
        _client.ClientCall.__init__(self, channel, *args)
        self._begin()
        self._consume_requests(request_iterator)


class _MultiCallable:
    _call_class = None
    _kind = None

    def __init__(self, channel, method, request_serializer, response_deserializer):
        self._channel = channel
        self._method = method.encode("ascii") if isinstance(method, str) else method
        self._serializer = request_serializer
        self._deserializer = response_deserializer

    def __call__(self, request=None, *, timeout=None, metadata=None, credentials=None,
                 wait_for_ready=None, compression=None):
        channel = self._channel
        if channel._closed:
            raise UsageError("Channel is closed.")
        if metadata is not None and not isinstance(metadata, (tuple, list, Metadata)):
            metadata = tuple(metadata)
        if credentials is not None and channel._credentials is None:
            # as grpc.aio: refused when the call is made on an insecure_channel (a
            # secure_channel without transport security fails the call UNAUTHENTICATED)
            raise UsageError("Call credentials are only valid on secure channels")
        if channel._interceptors:
            from grpcpy.aio import _interceptor
            chain = _interceptor.for_kind(channel._interceptors, self._kind)
            if chain:
                details = _interceptor.ClientCallDetails(self._method, timeout, Metadata._create(metadata),
                                                         credentials, wait_for_ready)

                def make_call(details, request):
                    method = details.method
                    call = self._call_class(request, channel, method.encode("ascii") if isinstance(method, str)
                                            else method, self._serializer, self._deserializer, details.timeout,
                                            details.metadata, details.credentials, details.wait_for_ready,
                                            compression)
                    channel._track(call)
                    return call

                return _interceptor.INTERCEPTED[self._kind](channel._loop, chain, _interceptor.HOOKS[self._kind],
                                                            details, request, make_call)
        call = self._call_class(request, channel, self._method, self._serializer, self._deserializer, timeout,
                                metadata, credentials, wait_for_ready, compression)
        channel._track(call)
        return call


class UnaryUnaryMultiCallable(_MultiCallable):
    _call_class = UnaryUnaryCall
    _kind = "unary_unary"


class UnaryStreamMultiCallable(_MultiCallable):
    _call_class = UnaryStreamCall
    _kind = "unary_stream"


class StreamUnaryMultiCallable(_MultiCallable):
    _call_class = StreamUnaryCall
    _kind = "stream_unary"


class StreamStreamMultiCallable(_MultiCallable):
    _call_class = StreamStreamCall
    _kind = "stream_stream"


def is_coroutine(fn):
    return inspect.iscoroutinefunction(fn)
