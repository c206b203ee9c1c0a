"""grpcpy: gRPC for Python.

Cython hot paths (grpcpy._cext), one sans-IO core, a threaded sync API and an
asyncio API, both mirroring grpcio's `grpc` and `grpc.aio`.
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
    Call, ChannelConnectivity, ClientCallDetails, Compression, GenericRpcHandler, HandlerCallDetails,
    LocalConnectionType, RpcContext, RpcError, RpcMethodHandler, ServiceRpcHandler, Status, StatusCode,
    method_handlers_generic_handler, stream_stream_rpc_method_handler, stream_unary_rpc_method_handler,
    unary_stream_rpc_method_handler, unary_unary_rpc_method_handler)
