"""grpcpy.aio: the asyncio API, compatible with grpc.aio.

uvloop: when the uvloop package is installed, importing grpcpy.aio makes it
the event loop policy (only if the application has not chosen a policy of
its own), because its transports cut the per-call cost of the I/O glue.
Opt out with the environment variable GRPCPY_UVLOOP=0, or call
grpcpy.aio.use_uvloop(False) before the loop is created. A plain asyncio loop
runs everything the same way.
"""
import asyncio as _asyncio
import os as _os


def use_uvloop(enable=True):
    """Make uvloop the event loop policy (enable=True, when uvloop is
    installed) or restore asyncio's default policy (enable=False). Returns
    True when uvloop's policy is in force afterwards. Loops that already exist
    are not changed."""
    if not enable:
        if type(_asyncio.get_event_loop_policy()).__module__.startswith("uvloop"):
            _asyncio.set_event_loop_policy(None)
        return False
    try:
        import uvloop
    except ImportError:
        return False
    if not isinstance(_asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy):
        _asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def _install_default_policy():
    if _os.environ.get("GRPCPY_UVLOOP", "1").lower() in ("0", "false", "no", "off"):
        return
    if type(_asyncio.get_event_loop_policy()) is _asyncio.DefaultEventLoopPolicy:
        use_uvloop(True)


_install_default_policy()

from grpcpy.aio._base import (EOF, AbortError, AioRpcError, BaseError, InternalError, Metadata,  # noqa: F401
                              UsageError)
from grpcpy.aio._server import Server, ServicerContext, server  # noqa: F401
from grpcpy.aio._call import (Call, StreamStreamCall, StreamStreamMultiCallable, StreamUnaryCall,  # noqa: F401,E402
                              StreamUnaryMultiCallable, UnaryStreamCall, UnaryStreamMultiCallable, UnaryUnaryCall,
                              UnaryUnaryMultiCallable)
from grpcpy.aio._channel import Channel, insecure_channel, secure_channel  # noqa: F401,E402
from grpcpy.aio._interceptor import (ClientCallDetails, ClientInterceptor, InterceptedUnaryUnaryCall,  # noqa: F401,E402
                                     ServerInterceptor, StreamStreamClientInterceptor, StreamUnaryClientInterceptor,
                                     UnaryStreamClientInterceptor, UnaryUnaryClientInterceptor)
