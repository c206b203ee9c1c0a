"""grpcpy.aio: the asyncio API, compatible with grpc.aio.

uvloop is used when it is installed (see grpcpy.aio.use_uvloop); a plain
asyncio loop works the same.
"""
from grpcpy.aio._base import (EOF, AbortError, AioRpcError, BaseError, InternalError, Metadata,  # noqa: F401
                              UsageError)
from grpcpy.aio._server import Server, ServicerContext, server  # noqa: F401
