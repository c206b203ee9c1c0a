"""grpcpy: gRPC for Python.

Cython hot paths (grpcpy._cext), one sans-IO core, a threaded sync API (this
module, mirroring grpcio's `grpc`) and an asyncio API (grpcpy.aio, mirroring
`grpc.aio`). Code written for grpcio runs with `import grpcpy as grpc`;
programs that cannot be edited run under `python -m grpcpy.run`.
"""
from grpcpy._version import __version__

try:
    from grpcpy import _cext  # noqa: F401  (the compiled codec is required)
except ImportError as exc:  # pragma: no cover - exercised by tests/test_build.py
    raise ImportError(
        "grpcpy's compiled extension grpcpy._cext is missing or failed to load "
        "(%s). grpcpy has no pure-Python fallback: build it with `pip install .` "
        "(or `pip install -e .` in a checkout, or `python setup.py build_ext "
        "--inplace`); a C compiler and Python headers are needed." % (exc,)
    ) from exc

from grpcpy._types import (  # noqa: E402,F401
    Call, Channel, ChannelConnectivity, ClientCallDetails, Compression, Future, FutureCancelledError,
    FutureTimeoutError, GenericRpcHandler, HandlerCallDetails, LocalConnectionType, RpcContext, RpcError,
    RpcMethodHandler, Server, ServiceRpcHandler, ServicerContext, Status, StatusCode,
    StreamStreamMultiCallable, StreamUnaryMultiCallable, UnaryStreamMultiCallable, UnaryUnaryMultiCallable,
    method_handlers_generic_handler, stream_stream_rpc_method_handler, stream_unary_rpc_method_handler,
    unary_stream_rpc_method_handler, unary_unary_rpc_method_handler)

# The version the `grpc` alias made by install_as_grpc() reports. Generated
# *_pb2_grpc.py files refuse to run with a grpc older than the grpcio-tools
# that generated them; the alias reports a version above every 1.x release so
# stubs from any grpcio-tools 1.x are accepted. grpcpy.__version__ is
# grpcpy's own version.
GRPCIO_COMPAT_VERSION = "1.999.0"


def insecure_channel(target, options=None, compression=None):
    """A channel without transport security (grpc.insecure_channel)."""
    from grpcpy._sync._channel import insecure_channel as make
    return make(target, options, compression)


def server(thread_pool, handlers=None, interceptors=None, options=None, maximum_concurrent_rpcs=None,
           compression=None, xds=False):
    """A threaded server (grpc.server)."""
    from grpcpy._sync._server import server as make
    return make(thread_pool, handlers, interceptors, options, maximum_concurrent_rpcs, compression, xds)


def channel_ready_future(channel):
    """A Future that completes when the channel is READY (grpc.channel_ready_future)."""
    from grpcpy._sync._channel import channel_ready_future as make
    return make(channel)


def intercept_channel(channel, *interceptors):
    """A channel whose calls run through client interceptors (grpc.intercept_channel)."""
    from grpcpy._sync._interceptor import intercept_channel as make
    return make(channel, *interceptors)


from grpcpy._types import AuthMetadataPlugin, AuthMetadataPluginCallback  # noqa: E402,F401

# Names loaded on first use (module __getattr__ below), so that `import grpcpy`
# stays small: the credential helpers import ssl, socket and logging, and
# cryptography/pyOpenSSL when a certificate is first handled.
_LAZY = {
    "grpcpy._sync._interceptor": (
        "ServerInterceptor", "StreamStreamClientInterceptor", "StreamUnaryClientInterceptor",
        "UnaryStreamClientInterceptor", "UnaryUnaryClientInterceptor"),
    "grpcpy._credentials": (
        "AuthMetadataContext", "CallCredentials", "ChannelCredentials", "ServerCertificateConfiguration",
        "ServerCredentials", "access_token_call_credentials", "composite_call_credentials",
        "composite_channel_credentials", "dynamic_ssl_server_credentials", "insecure_server_credentials",
        "local_channel_credentials", "local_server_credentials", "metadata_call_credentials",
        "ssl_channel_credentials", "ssl_server_certificate_configuration", "ssl_server_credentials"),
}
_LAZY_MODULE = {name: module for module, names in _LAZY.items() for name in names}

TYPE_CHECKING = False
if TYPE_CHECKING:   # what type checkers and IDEs see of those names (never run)
    from grpcpy._credentials import (  # noqa: F401
        AuthMetadataContext, CallCredentials, ChannelCredentials, ServerCertificateConfiguration, ServerCredentials,
        access_token_call_credentials, composite_call_credentials, composite_channel_credentials,
        dynamic_ssl_server_credentials, insecure_server_credentials, local_channel_credentials,
        local_server_credentials, metadata_call_credentials, ssl_channel_credentials,
        ssl_server_certificate_configuration, ssl_server_credentials)
    from grpcpy._sync._interceptor import (  # noqa: F401
        ServerInterceptor, StreamStreamClientInterceptor, StreamUnaryClientInterceptor, UnaryStreamClientInterceptor,
        UnaryUnaryClientInterceptor)
del TYPE_CHECKING


def secure_channel(target, credentials, options=None, compression=None):
    """A channel with channel credentials: TLS, mTLS or local (grpc.secure_channel)."""
    from grpcpy._sync._channel import secure_channel as make
    return make(target, credentials, options, compression)


def install_as_grpc():
    """Make `import grpc` (and grpc.aio, grpc.experimental,
    grpc.experimental.aio, grpc._utilities) resolve to grpcpy, for code and
    generated stubs that cannot be edited. Call it before they import grpc."""
    from grpcpy import _alias
    _alias.install()


def __getattr__(name):
    import importlib
    module = _LAZY_MODULE.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value     # later look-ups do not come here
        return value
    # grpc.aio and grpc.experimental are reachable as attributes, as in grpcio
    if name in ("aio", "experimental", "_utilities"):
        return importlib.import_module("grpcpy." + name)
    raise AttributeError("module 'grpcpy' has no attribute %r" % (name,))


def __dir__():
    return sorted(set(globals()) | set(_LAZY_MODULE))


# grpcio's grpc.__all__, less what grpcpy does not implement yet (ALTS, xDS
# and Compute Engine credentials; grpc.protos/services, which need
# grpcio-tools at run time), plus grpcpy's own install_as_grpc.
__all__ = (
    "AuthMetadataContext", "AuthMetadataPlugin", "AuthMetadataPluginCallback", "Call", "CallCredentials",
    "Channel", "ChannelConnectivity", "ChannelCredentials", "ClientCallDetails", "Compression", "Future",
    "FutureCancelledError", "FutureTimeoutError", "GenericRpcHandler", "HandlerCallDetails",
    "LocalConnectionType", "RpcContext", "RpcError", "RpcMethodHandler", "Server",
    "ServerCertificateConfiguration", "ServerCredentials", "ServerInterceptor", "ServiceRpcHandler",
    "ServicerContext", "Status", "StatusCode", "StreamStreamClientInterceptor", "StreamStreamMultiCallable",
    "StreamUnaryClientInterceptor", "StreamUnaryMultiCallable", "UnaryStreamClientInterceptor",
    "UnaryStreamMultiCallable", "UnaryUnaryClientInterceptor", "UnaryUnaryMultiCallable",
    "access_token_call_credentials", "channel_ready_future", "composite_call_credentials",
    "composite_channel_credentials", "dynamic_ssl_server_credentials", "insecure_channel",
    "insecure_server_credentials", "intercept_channel", "local_channel_credentials", "local_server_credentials",
    "metadata_call_credentials", "method_handlers_generic_handler", "secure_channel", "server",
    "ssl_channel_credentials", "ssl_server_certificate_configuration", "ssl_server_credentials",
    "stream_stream_rpc_method_handler", "stream_unary_rpc_method_handler", "unary_stream_rpc_method_handler",
    "unary_unary_rpc_method_handler",
    "install_as_grpc",
)
