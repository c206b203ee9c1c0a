"""grpcpy.aio: the asyncio API, compatible with grpc.aio.

Importing grpcpy.aio changes nothing global: the event loop is the
application's choice. uvloop, whose transports cut the per-call cost of the
I/O glue, is offered explicitly:

* grpcpy.aio.run(main()) runs a coroutine like asyncio.run, on a uvloop loop
  when uvloop is installed (use_uvloop=False, or GRPCPY_UVLOOP=0 in the
  environment, keeps asyncio's own loop);
* grpcpy.aio.use_uvloop() makes uvloop the event loop policy, for programs
  that create their loops with asyncio.run or asyncio.new_event_loop.

Everything runs the same on a plain asyncio loop.
"""
import asyncio as _asyncio
import os as _os


def _uvloop_wanted(use_uvloop):
    """use_uvloop as given, or (None) what GRPCPY_UVLOOP says, or yes."""
    if use_uvloop is not None:
        return bool(use_uvloop)
    return _os.environ.get("GRPCPY_UVLOOP", "1").lower() not in ("0", "false", "no", "off")


def _loop_factory(use_uvloop=None):
    """uvloop.new_event_loop when uvloop is wanted and installed; None (the
    event loop policy's loop, as asyncio.run makes) otherwise. use_uvloop=True
    raises ImportError when uvloop is not installed."""
    if not _uvloop_wanted(use_uvloop):
        return None
    try:
        import uvloop
    except ImportError:
        if use_uvloop:
            raise
        return None
    return uvloop.new_event_loop


def run(main, *, debug=None, use_uvloop=None):
    """Run the coroutine main on a new event loop and return its result, as
    asyncio.run does (the loop is closed afterwards, and pending tasks are
    cancelled).

    The loop is uvloop's when uvloop is installed, unless use_uvloop=False
    or GRPCPY_UVLOOP=0 in the environment (the argument wins over the
    environment); otherwise it is the one asyncio.run would make (the event
    loop policy's). use_uvloop=True insists on uvloop: ImportError without it.
    The event loop policy is not changed."""
    with _asyncio.Runner(debug=debug, loop_factory=_loop_factory(use_uvloop)) as runner:
        return runner.run(main)


def use_uvloop(enable=True):
    """Make uvloop the event loop policy (enable=True, when uvloop is
    installed) or restore asyncio's default policy (enable=False). Returns
    True when uvloop's policy is in force afterwards. Loops that already exist
    are not changed. This is the one function of grpcpy.aio that changes
    global state, and only when called."""
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

# grpcio's grpc.aio.__all__, less what grpcpy.aio does not have yet (the
# RpcContext base class; init_grpc_aio and shutdown_grpc_aio, which set up
# and tear down grpcio's C core), plus grpcpy's run and use_uvloop.
__all__ = (
    "AbortError", "AioRpcError", "BaseError", "Call", "Channel", "ClientCallDetails", "ClientInterceptor", "EOF",
    "InterceptedUnaryUnaryCall", "InternalError", "Metadata", "Server", "ServerInterceptor", "ServicerContext",
    "StreamStreamCall", "StreamStreamClientInterceptor", "StreamStreamMultiCallable", "StreamUnaryCall",
    "StreamUnaryClientInterceptor", "StreamUnaryMultiCallable", "UnaryStreamCall", "UnaryStreamClientInterceptor",
    "UnaryStreamMultiCallable", "UnaryUnaryCall", "UnaryUnaryClientInterceptor", "UnaryUnaryMultiCallable",
    "UsageError", "insecure_channel", "secure_channel", "server",
    "run", "use_uvloop",
)
