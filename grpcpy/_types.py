"""The public contract both APIs share: enums, abstract interfaces, method
handlers and the error base class, with grpcio's names and values so code
written for `grpc` works unchanged.

One of each: the sync API and grpcpy.aio use the same StatusCode, the same
RpcMethodHandler and the same metadata conversions.
"""
import abc
import collections
import enum

from grpcpy import _cext


class _GrpcioComparable(enum.Enum):
    """A member equals the same-named member of grpcio's enum of the same
    name, so code that mixes grpcpy calls with `grpc.StatusCode.X` constants
    from a real grpcio works."""

    def __eq__(self, other):
        if type(other) is type(self):
            return self is other
        if isinstance(other, enum.Enum) and type(other).__name__ == type(self).__name__:
            return self.value == other.value
        return NotImplemented

    def __hash__(self):
        return hash(self._name_)


def _status_value(number):
    """grpcio's value for a status code: (number, lower-case words of the
    name), from the core's StatusCodeNumber, where the numbers are defined."""
    number = _cext.StatusCodeNumber(number)
    return (int(number), number.name[3:].lower().replace("_", " "))


class StatusCode(_GrpcioComparable):
    """gRPC status codes; values are grpcio's (number, name) tuples."""

    OK = _status_value(_cext.SC_OK)
    CANCELLED = _status_value(_cext.SC_CANCELLED)
    UNKNOWN = _status_value(_cext.SC_UNKNOWN)
    INVALID_ARGUMENT = _status_value(_cext.SC_INVALID_ARGUMENT)
    DEADLINE_EXCEEDED = _status_value(_cext.SC_DEADLINE_EXCEEDED)
    NOT_FOUND = _status_value(_cext.SC_NOT_FOUND)
    ALREADY_EXISTS = _status_value(_cext.SC_ALREADY_EXISTS)
    PERMISSION_DENIED = _status_value(_cext.SC_PERMISSION_DENIED)
    RESOURCE_EXHAUSTED = _status_value(_cext.SC_RESOURCE_EXHAUSTED)
    FAILED_PRECONDITION = _status_value(_cext.SC_FAILED_PRECONDITION)
    ABORTED = _status_value(_cext.SC_ABORTED)
    OUT_OF_RANGE = _status_value(_cext.SC_OUT_OF_RANGE)
    UNIMPLEMENTED = _status_value(_cext.SC_UNIMPLEMENTED)
    INTERNAL = _status_value(_cext.SC_INTERNAL)
    UNAVAILABLE = _status_value(_cext.SC_UNAVAILABLE)
    DATA_LOSS = _status_value(_cext.SC_DATA_LOSS)
    UNAUTHENTICATED = _status_value(_cext.SC_UNAUTHENTICATED)


STATUS_BY_NUMBER = {code.value[0]: code for code in StatusCode}


def status_from_number(number):
    return STATUS_BY_NUMBER.get(number, StatusCode.UNKNOWN)


def status_number(code):
    """A StatusCode (ours or grpcio's) or an int -> the wire number."""
    if isinstance(code, int):
        return code
    value = getattr(code, "value", None)
    if isinstance(value, tuple):
        return value[0]
    raise TypeError("not a status code: %r" % (code,))


class ChannelConnectivity(_GrpcioComparable):
    IDLE = (0, "idle")
    CONNECTING = (1, "connecting")
    READY = (2, "ready")
    TRANSIENT_FAILURE = (3, "transient failure")
    SHUTDOWN = (4, "shutdown")


class Compression(enum.IntEnum):
    NoCompression = 0
    Deflate = 1
    Gzip = 2


def compression_name(compression):
    """Compression (ours or grpcio's), a name, or None -> 'gzip'/'deflate'/None."""
    if compression is None:
        return None
    if isinstance(compression, str):
        name = compression.lower()
        return None if name in ("identity", "none", "") else name
    number = int(getattr(compression, "value", compression))
    return {0: None, 1: "deflate", 2: "gzip"}[number]


class LocalConnectionType(enum.Enum):
    UDS = 0
    LOCAL_TCP = 1


class RpcError(Exception):
    """Raised by a call that ends with a status other than OK."""


class RpcContext(abc.ABC):
    @abc.abstractmethod
    def is_active(self):
        raise NotImplementedError()

    @abc.abstractmethod
    def time_remaining(self):
        raise NotImplementedError()

    @abc.abstractmethod
    def cancel(self):
        raise NotImplementedError()

    @abc.abstractmethod
    def add_callback(self, callback):
        raise NotImplementedError()


class Call(RpcContext, metaclass=abc.ABCMeta):
    @abc.abstractmethod
    def initial_metadata(self):
        raise NotImplementedError()

    @abc.abstractmethod
    def trailing_metadata(self):
        raise NotImplementedError()

    @abc.abstractmethod
    def code(self):
        raise NotImplementedError()

    @abc.abstractmethod
    def details(self):
        raise NotImplementedError()


class FutureTimeoutError(Exception):
    """Future.result() (and friends) did not complete within the timeout."""


class FutureCancelledError(Exception):
    """The computation of a Future was cancelled."""


class Future(abc.ABC):
    """grpc.Future: cancel, cancelled, running, done, result, exception,
    traceback, add_done_callback."""

    @abc.abstractmethod
    def cancel(self):
        raise NotImplementedError()

    @abc.abstractmethod
    def cancelled(self):
        raise NotImplementedError()

    @abc.abstractmethod
    def running(self):
        raise NotImplementedError()

    @abc.abstractmethod
    def done(self):
        raise NotImplementedError()

    @abc.abstractmethod
    def result(self, timeout=None):
        raise NotImplementedError()

    @abc.abstractmethod
    def exception(self, timeout=None):
        raise NotImplementedError()

    @abc.abstractmethod
    def traceback(self, timeout=None):
        raise NotImplementedError()

    @abc.abstractmethod
    def add_done_callback(self, fn):
        raise NotImplementedError()


class Channel(abc.ABC):
    """grpc.Channel: unary_unary, unary_stream, stream_unary, stream_stream,
    subscribe, unsubscribe, close, context manager."""


class UnaryUnaryMultiCallable(abc.ABC):
    pass


class UnaryStreamMultiCallable(abc.ABC):
    pass


class StreamUnaryMultiCallable(abc.ABC):
    pass


class StreamStreamMultiCallable(abc.ABC):
    pass


class ServicerContext(RpcContext, metaclass=abc.ABCMeta):
    """grpc.ServicerContext (the sync handler's view of its call)."""


class Server(abc.ABC):
    """grpc.Server."""


class AuthMetadataContext(abc.ABC):
    """service_url and method_name, given to an AuthMetadataPlugin."""


class AuthMetadataPluginCallback(abc.ABC):
    """callback(metadata, error) given to an AuthMetadataPlugin."""


class AuthMetadataPlugin(abc.ABC):
    """Makes call metadata: __call__(context, callback)."""

    def __call__(self, context, callback):
        raise NotImplementedError()


class Status(abc.ABC):
    """code, details, trailing_metadata (used by abort_with_status)."""


class ClientCallDetails(abc.ABC):
    """method, timeout, metadata, credentials, wait_for_ready, compression."""


class HandlerCallDetails(abc.ABC):
    """method (str) and invocation_metadata, given to GenericRpcHandler.service."""


class _HandlerCallDetails(collections.namedtuple("_HandlerCallDetails", ("method", "invocation_metadata")),
                          HandlerCallDetails):
    pass


def handler_call_details(method, metadata):
    return _HandlerCallDetails(method, metadata)


class RpcMethodHandler(abc.ABC):
    """request_streaming, response_streaming, request_deserializer,
    response_serializer, unary_unary, unary_stream, stream_unary,
    stream_stream."""


class _RpcMethodHandler(
        collections.namedtuple("_RpcMethodHandler", (
            "request_streaming", "response_streaming", "request_deserializer", "response_serializer",
            "unary_unary", "unary_stream", "stream_unary", "stream_stream")),
        RpcMethodHandler):
    pass


def unary_unary_rpc_method_handler(behavior, request_deserializer=None, response_serializer=None):
    return _RpcMethodHandler(False, False, request_deserializer, response_serializer, behavior, None, None, None)


def unary_stream_rpc_method_handler(behavior, request_deserializer=None, response_serializer=None):
    return _RpcMethodHandler(False, True, request_deserializer, response_serializer, None, behavior, None, None)


def stream_unary_rpc_method_handler(behavior, request_deserializer=None, response_serializer=None):
    return _RpcMethodHandler(True, False, request_deserializer, response_serializer, None, None, behavior, None)


def stream_stream_rpc_method_handler(behavior, request_deserializer=None, response_serializer=None):
    return _RpcMethodHandler(True, True, request_deserializer, response_serializer, None, None, None, behavior)


class GenericRpcHandler(abc.ABC):
    @abc.abstractmethod
    def service(self, handler_call_details):
        raise NotImplementedError()


class ServiceRpcHandler(GenericRpcHandler, metaclass=abc.ABCMeta):
    @abc.abstractmethod
    def service_name(self):
        raise NotImplementedError()


def fully_qualified_method(service, method):
    return "/%s/%s" % (service, method)


class DictionaryGenericHandler(ServiceRpcHandler):
    """Handlers of one service, looked up by full method path."""

    def __init__(self, service, method_handlers):
        self._name = service
        self._method_handlers = {fully_qualified_method(service, method): handler
                                 for method, handler in method_handlers.items()}

    def service_name(self):
        return self._name

    def service(self, handler_call_details):
        return self._method_handlers.get(handler_call_details.method)

    def method_handlers(self):
        """{full path: handler}, for the server's registry fast path."""
        return dict(self._method_handlers)


def method_handlers_generic_handler(service, method_handlers):
    return DictionaryGenericHandler(service, method_handlers)


# -- metadata --------------------------------------------------------------

Metadatum = collections.namedtuple("Metadatum", ("key", "value"))


def metadata_to_wire(metadata):
    """Application metadata -> header pairs; MetadataError on a bad item."""
    return _cext.encode_metadata(metadata)


# -- errors ------------------------------------------------------------------

class BaseError(Exception):
    """Base of the errors grpcpy raises for its own reasons rather than an
    RPC's status (grpc.aio.BaseError, exported by grpcpy.aio)."""


class UsageError(BaseError, RuntimeError):
    """The API was used in a way it does not allow. The one class behind
    grpcpy.aio.UsageError (a BaseError, as grpc.aio's is) and
    grpcpy.experimental.UsageError; also a RuntimeError."""
