"""Client and server interceptors of grpcpy.aio (grpc.aio's interfaces).

A channel built with interceptors returns an intercepted call object right
away; the interceptor chain runs in a task, and the call's methods wait for
the chain to produce the real call (or, for a unary response, a plain value).
Interceptors written for grpc.aio work unchanged: a chain member is picked
for a call kind by the method it has (intercept_unary_unary, ...).
"""
import abc
import asyncio
import collections

from grpcpy import _types
from grpcpy.aio._base import EOF
from grpcpy.aio._call import Call


class ClientCallDetails(collections.namedtuple(
        "ClientCallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready")),
        _types.ClientCallDetails):
    """What an interceptor sees of, and may change in, a call."""


class ClientInterceptor(metaclass=abc.ABCMeta):
    """Base of the client interceptor interfaces."""


class UnaryUnaryClientInterceptor(ClientInterceptor, metaclass=abc.ABCMeta):
    @abc.abstractmethod
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        raise NotImplementedError()


class UnaryStreamClientInterceptor(ClientInterceptor, metaclass=abc.ABCMeta):
    @abc.abstractmethod
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        raise NotImplementedError()


class StreamUnaryClientInterceptor(ClientInterceptor, metaclass=abc.ABCMeta):
    @abc.abstractmethod
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        raise NotImplementedError()


class StreamStreamClientInterceptor(ClientInterceptor, metaclass=abc.ABCMeta):
    @abc.abstractmethod
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        raise NotImplementedError()


class ServerInterceptor(metaclass=abc.ABCMeta):
    @abc.abstractmethod
    async def intercept_service(self, continuation, handler_call_details):
        raise NotImplementedError()


HOOKS = {
    "unary_unary": "intercept_unary_unary",
    "unary_stream": "intercept_unary_stream",
    "stream_unary": "intercept_stream_unary",
    "stream_stream": "intercept_stream_stream",
}


def kind_of(interceptor):
    """The one call kind an interceptor serves: the first of its hooks in
    the order unary-unary, unary-stream, stream-unary, stream-stream (as
    grpc.aio assigns them; an object implementing several serves the first)."""
    for kind, hook in HOOKS.items():
        if callable(getattr(interceptor, hook, None)):
            return kind
    raise ValueError("Interceptor %r must be one of the client interceptor types" % (interceptor,))


def for_kind(interceptors, kind):
    return [i for i in interceptors if kind_of(i) == kind]


class InterceptedCall:
    """The call object of an intercepted RPC. `make_call(details, request)`
    creates the real call; the chain decides with which details."""

    def __init__(self, loop, interceptors, hook, details, request, make_call):
        self._loop = loop
        self._interceptors = interceptors
        self._hook = hook
        self._make_call = make_call
        self._call = None           # the last real call the chain created
        self._callbacks = []
        self._cancelled_early = False
        self._task = loop.create_task(self._run(details, request))

    async def _run(self, details, request):
        async def terminal(details, request):
            call = self._make_call(details, request)
            self._call = call
            if self._cancelled_early:
                call.cancel()
            for cb in self._callbacks:
                call.add_done_callback(lambda _c, cb=cb: cb(self))
            return call

        continuation = terminal
        for interceptor in reversed(self._interceptors):
            continuation = _link(getattr(interceptor, self._hook), continuation)
        return await continuation(details, request)

    async def _result(self):
        return await asyncio.shield(self._task)

    async def _real_call(self):
        result = await self._result()
        if isinstance(result, Call):
            return result
        if self._call is not None:
            return self._call
        return result

    # -- grpc.aio.Call ------------------------------------------------------------

    def cancel(self):
        if self._call is not None:
            return self._call.cancel()
        if self._task.done():
            return False
        self._cancelled_early = True
        return True

    def cancelled(self):
        if self._call is not None:
            return self._call.cancelled()
        return self._cancelled_early

    def done(self):
        if self._call is not None:
            return self._call.done()
        return self._task.done()

    def add_done_callback(self, callback):
        if self._call is not None:
            self._call.add_done_callback(lambda _c: callback(self))
        else:
            self._callbacks.append(callback)

    def time_remaining(self):
        return None if self._call is None else self._call.time_remaining()

    async def initial_metadata(self):
        return await (await self._real_call()).initial_metadata()

    async def trailing_metadata(self):
        return await (await self._real_call()).trailing_metadata()

    async def code(self):
        return await (await self._real_call()).code()

    async def details(self):
        return await (await self._real_call()).details()

    async def debug_error_string(self):
        return await (await self._real_call()).debug_error_string()

    async def wait_for_connection(self):
        return await (await self._real_call()).wait_for_connection()


class InterceptedUnaryResponseCall(InterceptedCall):
    def __await__(self):
        result = yield from self._result().__await__()
        if isinstance(result, Call):
            response = yield from result.__await__()
            return response
        if hasattr(result, "__await__") and not isinstance(result, (bytes, str)):
            response = yield from result.__await__()
            return response
        return result   # the interceptor answered with a value


class InterceptedStreamResponseCall(InterceptedCall):
    def __aiter__(self):
        return self._iterate()

    async def _iterate(self):
        result = await self._result()
        async for response in result:
            yield response

    async def read(self):
        result = await self._result()
        if isinstance(result, Call) or hasattr(result, "read"):
            return await result.read()
        if not hasattr(self, "_iterator"):
            self._iterator = result.__aiter__()
        try:
            return await self._iterator.__anext__()
        except StopAsyncIteration:
            return EOF


class _RequestStreamMixin:
    async def write(self, request):
        call = await self._real_call()
        await call.write(request)

    async def done_writing(self):
        call = await self._real_call()
        await call.done_writing()


class InterceptedUnaryUnaryCall(InterceptedUnaryResponseCall):
    pass


class InterceptedUnaryStreamCall(InterceptedStreamResponseCall):
    pass


class InterceptedStreamUnaryCall(_RequestStreamMixin, InterceptedUnaryResponseCall):
    pass


class InterceptedStreamStreamCall(_RequestStreamMixin, InterceptedStreamResponseCall):
    pass


INTERCEPTED = {
    "unary_unary": InterceptedUnaryUnaryCall,
    "unary_stream": InterceptedUnaryStreamCall,
    "stream_unary": InterceptedStreamUnaryCall,
    "stream_stream": InterceptedStreamStreamCall,
}


def _link(hook, continuation):
    async def step(details, request):
        return await hook(continuation, details, request)
    return step
