"""The asyncio facade's own cost: a grpcpy.aio channel and server joined by an
in-memory transport in one process, so no syscall and no other process is
in the figure. What is left is the facades' Python glue, the two cores, and
the event loop's scheduling. It is the number to watch when changing the
per-call path of grpcpy.aio (bench.py's end-to-end figures add the kernel's
loopback cost, which dwarfs and blurs it on a small machine).

    python perf/facade_bench.py [--calls N] [--rounds R] [--asyncio] [--profile]
                                [--stats declines|calls|noop|otel|prometheus]

--stats installs grpcpy.stats hooks on the channel and the server: `noop`
hooks that want every call and do nothing (the wiring's own cost), or the
OpenTelemetry metrics plugin (with an SDK MeterProvider and an in-memory
reader) or the Prometheus metrics (perf/observe.py builds them).

Bytes written on one side reach the other side's data_received on the next
loop iteration, as they would from a socket the loop polls.
"""
import argparse
import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class MemoryTransport(asyncio.Transport):
    """One end of an in-memory stream between two protocols on one loop."""

    def __init__(self, loop, protocol):
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self.peer = None
        self._closing = False

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50051)}.get(name, default)

    def write(self, data):
        if not self._closing and self.peer is not None:
            self._loop.call_soon(self.peer._deliver, bytes(data))

    def _deliver(self, data):
        if not self._closing:
            self._protocol.data_received(data)

    def writelines(self, chunks):
        self.write(b"".join(chunks))

    def is_closing(self):
        return self._closing

    def close(self):
        if self._closing:
            return
        self._closing = True
        self._loop.call_soon(self._protocol.connection_lost, None)
        if self.peer is not None:
            self.peer.close()

    abort = close

    def can_write_eof(self):
        return False

    def get_write_buffer_size(self):
        return 0

    def set_write_buffer_limits(self, high=None, low=None):
        pass

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


async def run(calls, rounds, profile, lb_policy=None, stats=None):
    import grpcpy
    import grpcpy.aio as aio
    from observe import stats_options
    hooks = stats_options(stats)

    loop = asyncio.get_running_loop()

    async def unary(request, context):
        return request

    handler = grpcpy.method_handlers_generic_handler(
        "bench.Bench", {"Unary": grpcpy.unary_unary_rpc_method_handler(unary)})
    server = aio.server(options=hooks)
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("127.0.0.1:0")   # a real port, never connected to
    await server.start()
    from grpcpy.aio._server import _ServerProtocol

    async def create_connection(factory, host=None, port=None, **kwargs):
        client = factory()
        srv = _ServerProtocol(server)
        ct, st = MemoryTransport(loop, client), MemoryTransport(loop, srv)
        ct.peer, st.peer = st, ct
        srv.connection_made(st)
        client.connection_made(ct)
        return ct, client

    loop.create_connection = create_connection
    options = [("grpc.lb_policy_name", lb_policy)] if lb_policy else []
    options += hooks
    channel = aio.insecure_channel("127.0.0.1:50051", options)
    call = channel.unary_unary("/bench.Bench/Unary")
    msg = b"0123456789abcdef"
    for _ in range(500):
        assert await call(msg) == msg
    results = []
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            await call(msg)
        results.append(((time.perf_counter() - t0) / calls, (time.process_time() - c0) / calls))
    if profiler is not None:
        profiler.disable()
        import pstats
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    await channel.close()
    await server.stop(None)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--asyncio", action="store_true", help="plain asyncio instead of uvloop")
    parser.add_argument("--profile", action="store_true", help="cProfile the timed calls")
    parser.add_argument("--lb-policy", help="the channel's grpc.lb_policy_name (default: pick_first)")
    parser.add_argument("--stats", choices=["declines", "calls", "noop", "otel", "prometheus"], help="grpcpy.stats hooks to install")
    args = parser.parse_args()
    import grpcpy.aio
    results = grpcpy.aio.run(run(args.calls, args.rounds, args.profile, args.lb_policy, args.stats),
                             use_uvloop=not args.asyncio)
    wall = statistics.median(r[0] for r in results) * 1e6
    cpu = statistics.median(r[1] for r in results) * 1e6
    spread = "%.1f-%.1f" % (min(r[0] for r in results) * 1e6, max(r[0] for r in results) * 1e6)
    print("unary call through both aio facades in memory: %.1f us per call (%s), CPU %.1f us; %.0f calls/s"
          % (wall, spread, cpu, 1e6 / wall))


if __name__ == "__main__":
    main()
