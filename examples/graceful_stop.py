"""Deadlines, compression and a graceful stop, with grpcpy.aio on both sides.

The server compresses every response with gzip (its default; a client that
lists the encodings it accepts is answered only in one of them). A call
whose deadline passes while its handler still works ends DEADLINE_EXCEEDED
on the client. server.stop(grace) refuses new calls at once and lets the
calls in flight finish within the grace; the connection then ends with a
GOAWAY that says NO_ERROR, so clients (grpcio's too) have nothing to
complain about.

    python examples/graceful_stop.py
"""
import asyncio

import grpcpy
import grpcpy.aio


async def work(request, context):
    await asyncio.sleep(float(request.decode()))
    return b"done after " + request + b" s"


async def main():
    server = grpcpy.aio.server(compression=grpcpy.Compression.Gzip)
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Worker", {"Work": grpcpy.unary_unary_rpc_method_handler(work)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    async with grpcpy.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
        call = channel.unary_unary("/demo.Worker/Work")
        try:
            await call(b"1.0", timeout=0.1)
        except grpcpy.aio.AioRpcError as exc:
            print("short deadline:", exc.code().name)

        in_flight = asyncio.ensure_future(call(b"0.3", timeout=5))
        await asyncio.sleep(0.1)              # the call has reached its handler
        stopping = asyncio.ensure_future(server.stop(grace=5))
        await asyncio.sleep(0)
        print("in flight during the stop:", (await in_flight).decode())
        await stopping
        try:
            await call(b"0", timeout=2)
        except grpcpy.aio.AioRpcError as exc:
            print("after the stop:", exc.code().name)


if __name__ == "__main__":
    grpcpy.aio.run(main())
