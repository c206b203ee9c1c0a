"""Your own stats hook: calls per method, latency percentiles and status
codes, seen from the client and from the server.

    python examples/stats_hooks.py

A grpcpy.stats.Hook is told of every call of the channels and servers it is
installed on (here with the ``grpcpy.stats_hooks`` option; register_global
installs it everywhere). This one keeps each call's duration by method and
counts statuses, then prints P50/P95/P99 per method on both sides. It runs a
grpcpy.aio server and a sync client in one process.
"""
import asyncio
import collections
import statistics
import threading

import grpcpy
import grpcpy.aio
from grpcpy import stats


class LatencyHook(stats.Hook):
    """Durations and status codes per (side, method)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.durations = collections.defaultdict(list)
        self.codes = collections.Counter()

    def _record(self, side, method, code, totals):
        with self.lock:
            self.durations[side, method].append(totals.duration)
            self.codes[side, method, code.name] += 1

    def client_call(self, info):
        hook = self

        class Call(stats.ClientCallStats):
            def end(self, code, details, trailing, totals):
                hook._record("client", info.method, code, totals)
        return Call()

    def server_call(self, info):
        hook = self

        class Call(stats.ServerCallStats):
            def end(self, code, details, trailing, totals):
                hook._record("server", info.method, code, totals)
        return Call()

    def report(self):
        lines = []
        for (side, method), values in sorted(self.durations.items()):
            cuts = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
            codes = ", ".join("%s=%d" % (code, n) for (s, m, code), n in sorted(self.codes.items())
                              if (s, m) == (side, method))
            lines.append("%-6s %-22s calls=%-4d p50=%.2fms p95=%.2fms p99=%.2fms  %s" % (
                side, method, len(values), cuts[49] * 1e3, cuts[94] * 1e3, cuts[98] * 1e3, codes))
        return lines


async def say_hello(request, context):
    if request == b"nobody":
        await context.abort(grpcpy.StatusCode.INVALID_ARGUMENT, "say who")
    return b"hello " + request


async def serve(hook, started, stop):
    server = grpcpy.aio.server(options=[(stats.OPTION, hook)])
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Greeter", {"SayHello": grpcpy.unary_unary_rpc_method_handler(say_hello)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    started.put(port)
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    await server.stop(None)


def main():
    import queue
    hook = LatencyHook()
    started, stop = queue.Queue(), threading.Event()
    thread = threading.Thread(target=lambda: grpcpy.aio.run(serve(hook, started, stop)), daemon=True)
    thread.start()
    port = started.get(timeout=10)
    try:
        with grpcpy.insecure_channel("127.0.0.1:%d" % port, options=[(stats.OPTION, hook)]) as channel:
            hello = channel.unary_unary("/demo.Greeter/SayHello")
            for i in range(200):
                assert hello(b"world %d" % i, timeout=5) == b"hello world %d" % i
            for _ in range(5):
                try:
                    hello(b"nobody", timeout=5)
                except grpcpy.RpcError as exc:
                    assert exc.code() == grpcpy.StatusCode.INVALID_ARGUMENT
    finally:
        stop.set()
        thread.join(10)
    for line in hook.report():
        print(line)


if __name__ == "__main__":
    main()
