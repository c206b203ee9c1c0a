"""grpcpy.intercept_channel: client interceptors of the sync API, with
grpcio's interfaces (grpc.UnaryUnaryClientInterceptor and friends).

A continuation returns what the un-intercepted call would give: for a unary
response an object that is both a Call and a Future (an RpcError that is
also a Call and Future when the call failed), for a streaming response the
response iterator (also a Call and a Future).
"""
import collections

from grpcpy import _types


class ClientCallDetails(collections.namedtuple(
        "ClientCallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
        _types.ClientCallDetails):
    pass


class UnaryUnaryClientInterceptor:
    def intercept_unary_unary(self, continuation, client_call_details, request):
        raise NotImplementedError()


class UnaryStreamClientInterceptor:
    def intercept_unary_stream(self, continuation, client_call_details, request):
        raise NotImplementedError()


class StreamUnaryClientInterceptor:
    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        raise NotImplementedError()


class StreamStreamClientInterceptor:
    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        raise NotImplementedError()


class ServerInterceptor:
    def intercept_service(self, continuation, handler_call_details):
        raise NotImplementedError()


def _method_str(method):
    return method.decode("ascii") if isinstance(method, bytes) else method


def _details(method, timeout, metadata, credentials, wait_for_ready, compression):
    return ClientCallDetails(_method_str(method), timeout, metadata, credentials, wait_for_ready, compression)


class _UnaryOutcome(_types.Call, _types.Future):
    """A successful unary response as a Call and a Future."""

    def __init__(self, response, call):
        self._response = response
        self._call = call

    def initial_metadata(self):
        return self._call.initial_metadata()

    def trailing_metadata(self):
        return self._call.trailing_metadata()

    def code(self):
        return self._call.code()

    def details(self):
        return self._call.details()

    def is_active(self):
        return self._call.is_active()

    def time_remaining(self):
        return self._call.time_remaining()

    def cancel(self):
        return False

    def add_callback(self, callback):
        return self._call.add_callback(callback)

    def cancelled(self):
        return False

    def running(self):
        return False

    def done(self):
        return True

    def result(self, timeout=None):
        return self._response

    def exception(self, timeout=None):
        return None

    def traceback(self, timeout=None):
        return None

    def add_done_callback(self, fn):
        fn(self)


class _InterceptedUnaryResponse:
    """A unary-response multicallable (unary-unary or stream-unary) whose
    calls run through the interceptor chain."""

    _hook = None

    def __init__(self, channel, method, make):
        self._channel = channel
        self._method = method
        self._make = make        # method -> the wrapped channel's multicallable

    def _invoke(self, request, timeout, metadata, credentials, wait_for_ready, compression):
        interceptors = self._channel._chain(self._hook)

        def continuation(details, request, index=0):
            if index < len(interceptors):
                return getattr(interceptors[index], self._hook)(
                    lambda d, r: continuation(d, r, index + 1), details, request)
            multicallable = self._make(details.method)
            try:
                response, call = multicallable.with_call(
                    request, timeout=details.timeout, metadata=details.metadata,
                    credentials=details.credentials, wait_for_ready=details.wait_for_ready,
                    compression=getattr(details, "compression", None))
            except _types.RpcError as exc:
                return exc
            return _UnaryOutcome(response, call)

        return continuation(_details(self._method, timeout, metadata, credentials, wait_for_ready, compression),
                            request)

    def __call__(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                 compression=None):
        return self._invoke(request, timeout, metadata, credentials, wait_for_ready, compression).result()

    def with_call(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                  compression=None):
        outcome = self._invoke(request, timeout, metadata, credentials, wait_for_ready, compression)
        return outcome.result(), outcome

    def future(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
               compression=None):
        return self._invoke(request, timeout, metadata, credentials, wait_for_ready, compression)


class _InterceptedUnaryUnary(_InterceptedUnaryResponse, _types.UnaryUnaryMultiCallable):
    _hook = "intercept_unary_unary"


class _InterceptedStreamUnary(_InterceptedUnaryResponse, _types.StreamUnaryMultiCallable):
    _hook = "intercept_stream_unary"


class _InterceptedStreamResponse:
    _hook = None

    def __init__(self, channel, method, make):
        self._channel = channel
        self._method = method
        self._make = make

    def __call__(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None,
                 compression=None):
        interceptors = self._channel._chain(self._hook)

        def continuation(details, request, index=0):
            if index < len(interceptors):
                return getattr(interceptors[index], self._hook)(
                    lambda d, r: continuation(d, r, index + 1), details, request)
            return self._make(details.method)(
                request, timeout=details.timeout, metadata=details.metadata, credentials=details.credentials,
                wait_for_ready=details.wait_for_ready, compression=getattr(details, "compression", None))

        return continuation(_details(self._method, timeout, metadata, credentials, wait_for_ready, compression),
                            request)


class _InterceptedUnaryStream(_InterceptedStreamResponse, _types.UnaryStreamMultiCallable):
    _hook = "intercept_unary_stream"


class _InterceptedStreamStream(_InterceptedStreamResponse, _types.StreamStreamMultiCallable):
    _hook = "intercept_stream_stream"


class InterceptedChannel(_types.Channel):
    """A channel whose calls run through client interceptors (each
    interceptor serves every call kind it has a hook for)."""

    def __init__(self, channel, interceptors):
        self._channel = channel
        self._interceptors = list(interceptors)
        for interceptor in self._interceptors:
            if not any(callable(getattr(interceptor, hook, None)) for hook in (
                    "intercept_unary_unary", "intercept_unary_stream", "intercept_stream_unary",
                    "intercept_stream_stream")):
                raise TypeError("%r is not a client interceptor" % (interceptor,))

    def _chain(self, hook):
        return [i for i in self._interceptors if callable(getattr(i, hook, None))]

    def unary_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _InterceptedUnaryUnary(self, method, lambda m: self._channel.unary_unary(
            m, request_serializer, response_deserializer))

    def unary_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _InterceptedUnaryStream(self, method, lambda m: self._channel.unary_stream(
            m, request_serializer, response_deserializer))

    def stream_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _InterceptedStreamUnary(self, method, lambda m: self._channel.stream_unary(
            m, request_serializer, response_deserializer))

    def stream_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _InterceptedStreamStream(self, method, lambda m: self._channel.stream_stream(
            m, request_serializer, response_deserializer))

    def subscribe(self, callback, try_to_connect=False):
        self._channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback):
        self._channel.unsubscribe(callback)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._channel.close()
        return False


def intercept_channel(channel, *interceptors):
    return InterceptedChannel(channel, interceptors)
