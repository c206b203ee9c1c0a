"""Client memory after a run of grpcpy.aio channels: K cycles of open, one
call, close (and K of open, one call, drop without close) against a grpcio
server in this process; prints the client's RSS growth for each.

    python perf/channel_churn.py [--cycles 2000]

A channel dropped without close() is collected with its connection (the
loop holds the connection, the connection holds the channel weakly); the
figure for "dropped" would grow by about 26 KiB per cycle otherwise.
"""
import argparse
import asyncio
import gc
import os
import sys


def rss_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def own_rss():
    return rss_of(os.getpid())


def churn(cycles):
    import grpc

    import grpcpy.aio
    from tests.aio.harness import ECHO, generic_handler

    async def run(how):
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((generic_handler(grpc, ECHO),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()

        async def cycle():
            channel = grpcpy.aio.insecure_channel("127.0.0.1:%d" % port)
            await channel.unary_unary("/t.S/Echo")(b"x", timeout=5)
            if how == "close":
                await channel.close()
        try:
            for _ in range(50):
                await cycle()
            gc.collect()
            before = own_rss()
            for _ in range(cycles):
                await cycle()
            await asyncio.sleep(0.1)
            gc.collect()
            return own_rss() - before
        finally:
            await server.stop(None)
    return {how: asyncio.run(run(how)) for how in ("close", "drop")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=2000)
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    grown = churn(args.cycles)
    print("client RSS after %d grpcpy.aio channel cycles: closed %+.1f MiB, dropped %+.1f MiB"
          % (args.cycles, grown["close"] / 2**20, grown["drop"] / 2**20))


if __name__ == "__main__":
    main()
