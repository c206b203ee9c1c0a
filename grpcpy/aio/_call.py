"""Client call objects of grpcpy.aio (grpc.aio.UnaryUnaryCall and friends).

A call object is the `user` of a sans-IO ClientCall: the connection hands
it the core's events (_on_initial_metadata, _on_message, _on_end,
_on_write_ready); the application awaits it, iterates it, reads and writes.
A call is started on a connection as soon as the channel can pick one; until
then it waits in the channel (wait_for_ready) or fails fast.
"""
import asyncio
import collections
import inspect

from grpcpy import _cext, _credentials, _types
from grpcpy.aio._base import EOF, AioRpcError, Metadata, UsageError

StatusCode = _types.StatusCode
_OK = StatusCode.OK
_CANCELLED = StatusCode.CANCELLED
_status_from_number = _types.status_from_number


class Call:
    """What every grpcpy.aio client call offers."""

    _streaming_requests = False
    # state most calls never touch lives on the class until a call sets it
    _proto = None
    _core_call = None
    _waiter = None
    _write_waiter = None
    _initial_metadata = None
    _initial_waiter = None
    _code = None
    _details = None
    _trailing_metadata = None
    _end_waiters = None        # futures of tasks waiting for the end
    _started = None            # future: set when on a connection (or ended)
    _cancelled_locally = False
    _ended = False

    def __init__(self, channel, method, request_serializer, response_deserializer, timeout,
                 metadata, credentials, wait_for_ready, compression):
        loop = channel._loop
        self._loop = loop
        self._channel = channel
        self._method = method
        self._serializer = request_serializer
        self._deserializer = response_deserializer
        self._deadline = None if timeout is None else loop.time() + timeout
        self._metadata = metadata
        self._credentials = credentials
        self._wait_for_ready = wait_for_ready
        if compression is None:
            self._compression = channel._options.compression
        else:
            self._compression = _types.compression_name(compression) or channel._options.compression
        self._messages = collections.deque()
        self._callbacks = []

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
        channel = self._channel
        if self._credentials is not None or channel._has_call_credentials:
            plugins, refusal = _credentials.call_plugins(channel._credentials, self._credentials)
            if refusal is not None:
                self._started = self._loop.create_future()
                self._finish_local(*refusal)
                return
            if plugins:
                self._started = self._loop.create_future()
                self._loop.create_task(self._authenticate_then_start(plugins))
                return
        proto = channel._pick_now()
        if proto is not None:
            self._start_on(proto)
        else:
            self._started = self._loop.create_future()
            self._channel._enqueue(self)

    async def _authenticate_then_start(self, plugins):
        """Run the metadata plugins (on executor threads, as they may block),
        add what they give to the call's metadata, then start the call."""
        context = _credentials.auth_context_for(self._channel._scheme, self._channel._authority, self._method)
        extra = []
        for plugin in plugins:
            answer = self._loop.create_future()

            def done(metadata, error, answer=answer):
                self._loop.call_soon_threadsafe(_resolve, answer, (metadata, error))

            await self._loop.run_in_executor(None, _credentials.run_plugin, plugin, context, done)
            metadata, error = await answer
            if error is not None:
                self._finish_local(StatusCode.UNAVAILABLE, error)
                return
            extra.extend(metadata)
        if self._ended:
            return
        self._metadata = tuple(self._metadata or ()) + tuple(extra)
        proto = self._channel._pick_now()
        if proto is not None:
            self._start_on(proto)
        else:
            self._channel._enqueue(self)

    def _start_on(self, proto):
        """Called by the channel with a ready connection."""
        if self._ended:
            return
        if proto.call_refusal is not None:     # e.g. the call host check of TLS
            self._finish_local(*proto.call_refusal)
            return
        now = self._loop.time()
        timeout = -1.0 if self._deadline is None else max(0.0, self._deadline - now)
        metadata = self._metadata
        try:
            core_call = proto.core.start_call(self._method, now, timeout, metadata, self._compression, self)
        except (_cext.MetadataError, ValueError) as exc:
            self._finish_local(StatusCode.INTERNAL, str(exc))
            return
        self._proto = proto
        self._core_call = core_call
        self._after_start()
        proto.after_action()
        if self._started is not None and not self._started.done():
            self._started.set_result(None)

    def _after_start(self):
        pass

    def _fail_start(self, code, details):
        """The channel could not give this call a connection."""
        self._finish_local(code, details)

    def _finish_local(self, code, details):
        if self._ended:
            return
        self._on_end(_types.status_number(code), details, ())

    # -- events from the connection -------------------------------------------------

    def _on_initial_metadata(self, metadata):
        self._initial_metadata = metadata
        waiter = self._initial_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_message(self, data, wire):
        self._messages.append((data, wire))
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _on_end(self, code, details, trailing):
        if self._ended:
            return
        self._ended = True
        self._code = _status_from_number(code)
        self._details = details
        self._trailing_metadata = trailing
        if self._initial_metadata is None:
            self._initial_metadata = ()
        for fut in (self._initial_waiter, self._waiter, self._write_waiter, self._started):
            if fut is not None and not fut.done():
                fut.set_result(None)
        self._waiter = self._write_waiter = None
        waiters = self._end_waiters
        if waiters is not None:
            self._end_waiters = None
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        self._channel._untrack(self)
        if self._core_call is not None:
            # no more events for this call: break the cycle with the core's
            # call object so both are freed by reference counting
            self._core_call.user = None
        if self._callbacks:
            callbacks, self._callbacks = self._callbacks, []
            for cb in callbacks:
                cb(self)

    def _on_write_ready(self):
        waiter = self._write_waiter
        if waiter is not None:
            self._write_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- grpc.aio.Call / RpcContext -----------------------------------------------

    def cancel(self):
        if self._ended:
            return False
        self._cancelled_locally = True
        if self._core_call is not None and self._proto is not None:
            self._proto.core.cancel_call(self._core_call)
            self._proto.after_action()
        self._finish_local(_CANCELLED, "Locally cancelled by application!")
        return True

    def cancelled(self):
        return self._ended and self._code == _CANCELLED

    def done(self):
        return self._ended

    def add_done_callback(self, callback):
        if self._ended:
            callback(self)
        else:
            self._callbacks.append(callback)

    def time_remaining(self):
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - self._loop.time())

    async def initial_metadata(self):
        if self._initial_metadata is None:
            self._initial_waiter = self._loop.create_future()
            await self._initial_waiter
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
        if self._started is not None:
            await asyncio.shield(self._started)
        if self._ended and self._code != _OK:
            self._raise()

    def _debug_string(self):
        if self._code == _OK:
            return ""
        return "grpc_status:%d, grpc_message:%r" % (self._code.value[0], self._details)

    def _error(self):
        return AioRpcError(self._code, Metadata.from_tuple(self._initial_metadata),
                           Metadata.from_tuple(self._trailing_metadata), self._details, self._debug_string())

    def _raise(self):
        if self._code == _CANCELLED and self._cancelled_locally:
            raise asyncio.CancelledError()
        raise self._error()

    # -- receiving ------------------------------------------------------------------

    async def _read_raw(self):
        while True:
            if self._messages:
                data, wire = self._messages.popleft()
                proto = self._proto
                if proto is not None and not self._ended:
                    proto.core.message_consumed(self._core_call, wire)
                    proto.after_action()
                return data
            if self._ended:
                return EOF
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            except asyncio.CancelledError:
                self.cancel()
                raise

    def _deserialize(self, raw):
        return raw if self._deserializer is None else self._deserializer(raw)

    # -- sending ----------------------------------------------------------------------

    def _serialize(self, message):
        return message if self._serializer is None else self._serializer(message)

    async def _wait_started(self):
        if self._started is not None and not self._started.done():
            try:
                await self._started
            except asyncio.CancelledError:
                self.cancel()
                raise

    async def _write(self, message):
        await self._wait_started()
        if self._ended:
            if self._code != _OK:
                self._raise()
            raise asyncio.InvalidStateError("the RPC has already finished")
        proto = self._proto
        proto.core.send_message(self._core_call, self._serialize(message))
        proto.after_action()
        if proto.core.write_pending(self._core_call) and not self._ended:
            self._write_waiter = self._loop.create_future()
            await self._write_waiter
        await proto.wait_writable()

    async def _done_writing(self):
        await self._wait_started()
        if not self._ended:
            self._proto.core.close_send(self._core_call)
            self._proto.after_action()

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
        if self._code != _OK:
            self._raise()
        if self._messages:
            return self._deserialize(self._messages.popleft()[0])
        # an OK status without a response message
        self._code = StatusCode.INTERNAL
        self._details = "No response message received for a unary call"
        self._raise()


class _StreamResponseMixin:
    async def read(self):
        raw = await self._read_raw()
        if raw is EOF:
            if self._code != _OK:
                self._raise()
            return EOF
        return self._deserialize(raw)

    def __aiter__(self):
        return self._iterate()

    async def _iterate(self):
        while True:
            raw = await self._read_raw()
            if raw is EOF:
                if self._code != _OK:
                    self._raise()
                return
            yield self._deserialize(raw)


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
        except Exception as exc:  # the application's iterator failed
            if not self._ended:
                self.cancel()
                self._code = StatusCode.UNKNOWN
                self._details = "Exception iterating requests: %r" % (exc,)

    async def write(self, request):
        if getattr(self, "_writer_task", None) is not None:
            raise UsageError("write() cannot be used with a request iterator")
        await self._write(request)

    async def done_writing(self):
        if getattr(self, "_writer_task", None) is not None:
            raise UsageError("done_writing() cannot be used with a request iterator")
        await self._done_writing()


class UnaryUnaryCall(_UnaryResponseMixin, Call):
    def __init__(self, request, *args):
        Call.__init__(self, *args)
        self._request = self._serialize(request)
        self._begin()

    def _after_start(self):
        self._proto.core.send_unary(self._core_call, self._request)
        self._request = None


class UnaryStreamCall(_StreamResponseMixin, Call):
    def __init__(self, request, *args):
        Call.__init__(self, *args)
        self._request = self._serialize(request)
        self._begin()

    def _after_start(self):
        self._proto.core.send_unary(self._core_call, self._request)
        self._request = None


class StreamUnaryCall(_RequestStreamMixin, _UnaryResponseMixin, Call):
    def __init__(self, request_iterator, *args):
        Call.__init__(self, *args)
        self._writer_task = None
        self._begin()
        self._consume_requests(request_iterator)


class StreamStreamCall(_RequestStreamMixin, _StreamResponseMixin, Call):
    def __init__(self, request_iterator, *args):
        Call.__init__(self, *args)
        self._writer_task = None
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
