"""Rich errors: a server ends a call with a google.rpc.Status carrying
standard error details (BadRequest, RetryInfo packed in Any), and clients,
sync and asyncio, read them back with grpcpy.status.from_call.

The status travels as grpcio-status sends it (the `grpc-status-details-bin`
trailer), so grpcio clients with grpcio-status read it the same way, and
grpcpy reads theirs. Needs googleapis-common-protos (`pip install
grpcpy[status]`).

    python examples/rich_errors.py
"""
import asyncio
from concurrent import futures

from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

import grpcpy
import grpcpy.aio
import grpcpy.status


def place_order(request, context):
    quantity = int(request)
    if quantity <= 0:
        status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="the order is not valid")
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="quantity", description="must be positive")]))
        context.abort_with_status(grpcpy.status.to_status(status))
    if quantity > 10:
        status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="not enough stock")
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=3)))
        context.abort_with_status(grpcpy.status.to_status(status))
    return b"ordered %d" % quantity


def explain(error):
    """One line from a failed call's rich status."""
    status = grpcpy.status.from_call(error)
    if status is None:
        return "%s: %s (no details)" % (error.code().name, error.details())
    parts = ["%s: %s" % (error.code().name, status.message)]
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            parts += ["%s %s" % (v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            parts.append("retry in %d s" % retry.retry_delay.seconds)
    return ", ".join(parts)


async def aio_client(target):
    async with grpcpy.aio.insecure_channel(target) as channel:
        call = channel.unary_unary("/shop.Orders/Place")(b"0", timeout=10)
        try:
            await call
        except grpcpy.aio.AioRpcError:
            pass
        status = await grpcpy.status.aio.from_call(call)
        return "aio: %s, %d detail(s)" % ((await call.code()).name, len(status.details))


def main():
    server = grpcpy.server(futures.ThreadPoolExecutor(4), handlers=[grpcpy.method_handlers_generic_handler(
        "shop.Orders", {"Place": grpcpy.unary_unary_rpc_method_handler(place_order)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    target = "127.0.0.1:%d" % port
    try:
        with grpcpy.insecure_channel(target) as channel:
            place = channel.unary_unary("/shop.Orders/Place")
            print(place(b"2", timeout=10).decode())
            for quantity in (b"0", b"50"):
                try:
                    place(quantity, timeout=10)
                except grpcpy.RpcError as error:
                    print(explain(error))
        print(asyncio.run(aio_client(target)))
    finally:
        server.stop(None)


if __name__ == "__main__":
    main()
