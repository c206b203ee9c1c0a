"""Per-call load reports (gRFC A51): server interceptors that give each call
a CallMetricsRecorder and send what it recorded in the call's trailers.

The recorder of a call is found by its context (``call_recorder``), so the
interceptors work wherever a handler's context is the one the interceptor
saw: grpcpy's sync and asyncio servers and grpcio's."""
import inspect

from grpcpy import _types
from grpcpy._sync._interceptor import ServerInterceptor as _SyncInterceptor
from grpcpy.orca._recorder import TRAILER_KEY, CallMetricsRecorder, merged_report

# id(context) -> the CallMetricsRecorder of the call running in it
_CALLS = {}


def call_recorder(context):
    """The CallMetricsRecorder of the call ``context`` belongs to, inside a
    handler behind grpcpy.orca.ServerInterceptor (or its asyncio
    counterpart); None for a call without one."""
    return _CALLS.get(id(context))


def _begin(context):
    key = id(context)
    call = _CALLS[key] = CallMetricsRecorder()

    def forget():
        # a stream never iterated leaves no finally behind: the call's end does it
        if _CALLS.get(key) is call:
            del _CALLS[key]
    try:
        add_callback = getattr(context, "add_callback", None)
        if add_callback is not None:
            add_callback(forget)
        else:   # grpc.aio's context
            context.add_done_callback(lambda _: forget())
    except Exception:   # a context that cannot take one: _end still forgets
        pass
    return call


def _end(context, call, server):
    """Put the call's report in its trailers (after what the handler set)."""
    key = id(context)
    if _CALLS.get(key) is call:
        del _CALLS[key]
    report = merged_report(call, server).SerializeToString()
    if not report:
        return  # nothing recorded: no trailer
    try:
        getter = getattr(context, "trailing_metadata", None)
        trailing = (getter() if getter is not None else None) or ()
        trailing = tuple((k, v) for k, v in trailing if k != TRAILER_KEY)
        context.set_trailing_metadata(trailing + ((TRAILER_KEY, report),))
    except Exception:   # a call already over (cancelled) takes no trailers: none to send
        pass


def _sync_unary(behavior, server):
    def reporting(request, context):
        call = _begin(context)
        try:
            return behavior(request, context)
        finally:
            _end(context, call, server)
    return reporting


def _sync_stream(behavior, server):
    def reporting(request, context):
        call = _begin(context)
        try:
            responses = behavior(request, context)
        except BaseException:
            _end(context, call, server)
            raise
        return _sync_responses(responses, context, call, server)
    return reporting


def _sync_responses(responses, context, call, server):
    try:
        if responses is not None:
            yield from responses
    finally:
        _end(context, call, server)


def _aio_unary(behavior, server):
    async def reporting(request, context):
        call = _begin(context)
        try:
            return await behavior(request, context)
        finally:
            _end(context, call, server)
    return reporting


def _aio_stream(behavior, server):
    async def reporting(request, context):
        call = _begin(context)
        try:
            async for response in behavior(request, context):
                yield response
        finally:
            _end(context, call, server)
    return reporting


def _wrap(handler, server, aio):
    if handler is None:
        return None
    behaviors = [handler.unary_unary, handler.unary_stream, handler.stream_unary, handler.stream_stream]
    for i, behavior in enumerate(behaviors):
        if behavior is None or getattr(behavior, "experimental_non_blocking", False):
            # a non-blocking stream (health Watch, the OOB reports) returns
            # at once and lives on without its handler: nothing per call to
            # report, and wrapped it would hold a worker thread
            continue
        streaming = i in (1, 3)
        if aio and inspect.isasyncgenfunction(behavior):
            behaviors[i] = _aio_stream(behavior, server)
        elif aio and inspect.iscoroutinefunction(behavior):    # unary, or a stream written by context.write
            behaviors[i] = _aio_unary(behavior, server)
        elif streaming:
            behaviors[i] = _sync_stream(behavior, server)
        else:
            behaviors[i] = _sync_unary(behavior, server)
    return _types._RpcMethodHandler(handler.request_streaming, handler.response_streaming,
                                    handler.request_deserializer, handler.response_serializer, *behaviors)


class ServerInterceptor(_SyncInterceptor):
    """Gives every call a CallMetricsRecorder (``call_recorder(context)``
    in the handler) and sends what it recorded, over ``recorder``'s values
    (a ServerMetricsRecorder, optional), in the call's
    ``endpoint-load-metrics-bin`` trailer.  A call that records nothing
    (and a server recorder with nothing set) sends no trailer.  For sync
    servers (grpcpy's or grpcio's); grpcpy.orca.AioServerInterceptor is the
    asyncio one."""

    def __init__(self, recorder=None):
        self._recorder = recorder

    def intercept_service(self, continuation, handler_call_details):
        return _wrap(continuation(handler_call_details), self._recorder, aio=False)


class AioServerInterceptor:
    """ServerInterceptor for asyncio servers (grpcpy.aio's; grpcio's
    grpc.aio accepts it once registered: ``grpc.aio.ServerInterceptor.register(
    AioServerInterceptor)``).  Coroutine and async-generator handlers are
    wrapped as such, sync ones as the sync interceptor does.  (On grpc.aio's
    server a call that ends by ``abort()`` sends no report: grpc.aio sends
    the status from inside abort, before the handler returns.)"""

    def __init__(self, recorder=None):
        self._recorder = recorder

    async def intercept_service(self, continuation, handler_call_details):
        return _wrap(await continuation(handler_call_details), self._recorder, aio=True)
