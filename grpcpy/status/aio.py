"""grpcpy.status for asyncio calls: ``await from_call(call)`` (grpcio-status's
``grpc_status.rpc_status.aio.from_call``)."""
from grpcpy.status import rich_status

__all__ = ["from_call"]


async def from_call(call):
    """The google.rpc.Status a grpcpy.aio call carries, or None (awaits the
    call's end). An AioRpcError, whose accessors are plain methods, is
    taken too. ValueError when its code or message disagree with the call's
    status."""
    code = await _value(call.code())
    details = await _value(call.details())
    trailing = await _value(call.trailing_metadata())
    if trailing is None:
        return None
    return rich_status(code, details, trailing)


async def _value(value):
    if hasattr(value, "__await__"):
        return await value
    return value
