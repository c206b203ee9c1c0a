"""grpcpy.testing for asyncio: a started grpcpy.aio server and a
grpcpy.aio channel connected in memory (in-memory asyncio transports, no
file descriptor), and ``await invoke(...)``."""
import contextlib

import grpcpy.aio
from grpcpy.testing import Outcome, _as_handler, _handler_table, _Passing, add_in_memory_port

__all__ = ["server_and_channel", "invoke", "call_handler"]


@contextlib.asynccontextmanager
async def server_and_channel(*handlers, interceptors=None, options=None, channel_options=None,
                             channel_interceptors=None, maximum_concurrent_rpcs=None, compression=None):
    """``async with server_and_channel(...) as (server, channel)``: a
    started grpcpy.aio server with the generic `handlers` (servicers can be
    added inside the block too) and a grpcpy.aio channel to it over
    memory. On exit the channel closes and the server stops."""
    server = grpcpy.aio.server(handlers=handlers or None, interceptors=interceptors, options=options,
                               maximum_concurrent_rpcs=maximum_concurrent_rpcs, compression=compression)
    target = add_in_memory_port(server)
    await server.start()
    channel = grpcpy.aio.insecure_channel(target, options=channel_options, interceptors=channel_interceptors)
    try:
        yield server, channel
    finally:
        await channel.close()
        await server.stop(None)


async def invoke(multicallable, request, **kwargs):
    """Make one call with a grpcpy.aio multicallable to its end and return
    its Outcome instead of raising AioRpcError. `request` is the request, or
    an iterable / async iterable of them for request-streaming methods."""
    call = multicallable(request, **kwargs)
    response = None
    responses = []
    try:
        if isinstance(multicallable, (grpcpy.aio.UnaryStreamMultiCallable, grpcpy.aio.StreamStreamMultiCallable)):
            async for item in call:
                responses.append(item)
        else:
            response = await call
            responses.append(response)
    except grpcpy.aio.AioRpcError:
        pass
    return Outcome(response, responses, await call.initial_metadata(), await call.trailing_metadata(),
                   await call.code(), await call.details())


async def call_handler(method_handler, request, **kwargs):
    """grpcpy.testing.call_handler for asyncio handlers (coroutine
    functions, async generators): one call on a grpcpy.aio server over
    memory; returns its Outcome."""
    method_handler = _as_handler(method_handler)
    passing = _Passing()
    async with server_and_channel(_handler_table(passing, method_handler)) as (_, channel):
        return await invoke(passing.multicallable(channel, method_handler), request, **kwargs)
