"""grpcpy.aio: the asyncio API, compatible with grpc.aio.

uvloop is used when it is installed (see grpcpy.aio.use_uvloop); a plain
asyncio loop works the same.
"""
from grpcpy.aio._base import (EOF, AbortError, AioRpcError, BaseError, InternalError, Metadata,  # noqa: F401
                              UsageError)
from grpcpy.aio._server import Server, ServicerContext, server  # noqa: F401
from grpcpy.aio._call import (Call, StreamStreamCall, StreamStreamMultiCallable, StreamUnaryCall,  # noqa: F401,E402
                              StreamUnaryMultiCallable, UnaryStreamCall, UnaryStreamMultiCallable, UnaryUnaryCall,
                              UnaryUnaryMultiCallable)
from grpcpy.aio._channel import Channel, insecure_channel  # noqa: F401,E402
