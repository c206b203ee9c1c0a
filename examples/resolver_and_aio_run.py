"""Your own name-resolution scheme, used by both APIs, with grpcpy.aio.run.

A "fleet:///<name>" target names a group of servers; the resolver below
knows their addresses (in a real program: from a file, a registry, an
environment variable). Channels of the sync API and of grpcpy.aio made after
register_resolver() resolve such targets with it. grpcpy.aio.run runs the
asyncio part on uvloop when it is installed.

    python examples/resolver_and_aio_run.py
"""
import asyncio
from concurrent import futures

import grpcpy
import grpcpy.aio
from grpcpy.experimental import Address, Resolver, register_resolver

FLEETS = {}          # fleet name -> [(host, port)], filled in by main()


class FleetResolver(Resolver):
    def addresses(self):
        name = self.target.path.lstrip("/")
        return [Address.ip(host, port) for host, port in FLEETS[name]]


def echo(request, context):
    return b"echo:" + request


def main():
    server = grpcpy.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Echo", {"Say": grpcpy.unary_unary_rpc_method_handler(echo)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    FLEETS["blue"] = [("127.0.0.1", port)]
    register_resolver("fleet", FleetResolver)
    try:
        with grpcpy.insecure_channel("fleet:///blue") as channel:
            print("sync:", channel.unary_unary("/demo.Echo/Say")(b"hello", timeout=5).decode())

        async def aio_part():
            async with grpcpy.aio.insecure_channel("fleet:///blue") as channel:
                reply = await channel.unary_unary("/demo.Echo/Say")(b"hello", timeout=5)
                loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
                print("aio (%s loop):" % loop, reply.decode())

        grpcpy.aio.run(aio_part())
    finally:
        server.stop(None)


if __name__ == "__main__":
    main()
