"""The sans-IO core's budget: a full unary call through two in-memory cores
(client core <-> server core, no sockets, no serialization), and the Python
object allocations each role makes per call.

    python perf/core_bench.py [--calls N] [--rounds R]

Figures:
  unary ping-pong      one call at a time, bytes handed across after each step
  unary batch of 64    64 calls started, then one exchange of bytes each way
  allocations/call     object allocations (PyObject_Malloc calls) made by the
                       client core and by the server core per call, steady
                       state; free-list hits cost nothing and are not counted.
                       The counting hook is compiled only into debug builds
                       (grpcpy._cext_debug): build with `make debug` or
                       `GRPCPY_DEBUG=1 pip install -e .` to get these figures
                       (a release build skips them and says so; the call
                       rates of a debug build are not comparable)
Results go to perf/results/core-*.json.
"""
import argparse
import pathlib
import statistics
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from grpcpy import _cext as c  # noqa: E402

try:
    from grpcpy._cext_debug import count_allocations  # noqa: E402
except ImportError:     # a release build: no measurement hooks compiled in
    count_allocations = None
NO_ALLOCATION_FIGURES = ("allocations per call: not measured (a release build; the counting hook needs a "
                         "debug build: `make debug` or `GRPCPY_DEBUG=1 pip install -e .`)")
from harness import versions, write_results  # noqa: E402

CE_MESSAGE, CE_HALF_CLOSED, CE_CALL_STARTED = c.CE_MESSAGE, c.CE_HALF_CLOSED, c.CE_CALL_STARTED
METHOD = b"/grpc.testing.TestService/UnaryCall"
REQUEST = b"\x0a\x0bhello world"
RESPONSE = b"\x0a\x0bhello again"


class Bench:
    def __init__(self):
        self.client = c.ClientConnection(authority=b"localhost:50051")
        self.server = c.ServerConnection()
        self.client.initiate()
        self.server.initiate()
        self.server_allocs = 0
        self.client_allocs = 0
        self.counting = False
        for _ in range(3):
            self.exchange()

    # the server application: answer every request
    def server_side(self, data):
        server = self.server
        for ev in server.receive_data(data):
            if ev.kind == CE_HALF_CLOSED:
                server.send_message(ev.call, RESPONSE)
                server.send_status(ev.call, 0)
        return server.data_to_send()

    def client_side(self, data):
        done = 0
        for ev in self.client.receive_data(data):
            if ev.kind == c.CE_CALL_ENDED:
                done += 1
        return done

    def exchange(self):
        to_server = self.client.data_to_send()
        if to_server:
            back = self.server_side(to_server)
            if back:
                self.client_side(back)
                tail = self.client.data_to_send()
                if tail:
                    self.server_side(tail)

    def start(self, n):
        client = self.client
        for _ in range(n):
            call = client.start_call(METHOD)
            client.send_unary(call, REQUEST)
        return client.data_to_send()

    def one_call(self):
        to_server = self.start(1)
        back = self.server_side(to_server)
        return self.client_side(back)

    def batch(self, n):
        to_server = self.start(n)
        back = self.server_side(to_server)
        return self.client_side(back)

    def count_per_role(self, n):
        client_allocs = server_allocs = 0
        for _ in range(n):
            to_server, a = count_allocations(self.start, 1)
            client_allocs += a
            back, a = count_allocations(self.server_side, to_server)
            server_allocs += a
            _, a = count_allocations(self.client_side, back)
            client_allocs += a
        return client_allocs / n, server_allocs / n


def timed(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    b = Bench()
    pingpong, batched = [], []
    for _ in range(args.rounds):
        pingpong.append(args.calls / timed(b.one_call, args.calls))
        batches = max(1, args.calls // 64)
        batched.append(batches * 64 / timed(lambda: b.batch(64), batches))
    res = {
        "unary ping-pong (calls/s)": {"median": statistics.median(pingpong), "min": min(pingpong), "max": max(pingpong)},
        "unary batch of 64 (calls/s)": {"median": statistics.median(batched), "min": min(batched), "max": max(batched)},
    }
    if count_allocations is not None:
        client_allocs, server_allocs = b.count_per_role(2000)
        res["allocations per call, client core"] = client_allocs
        res["allocations per call, server core"] = server_allocs
    else:
        print(NO_ALLOCATION_FIGURES)
    for name, v in res.items():
        if isinstance(v, dict):
            print("%-40s %10.0f   (min %.0f, max %.0f)" % (name, v["median"], v["min"], v["max"]))
        else:
            print("%-40s %10.1f" % (name, v))
    if not args.no_save:
        print("results:", write_results("core", {"benchmark": "core", "rounds": args.rounds,
                                                 "calls_per_round": args.calls,
                                                 "versions": versions("grpcpy", "Cython"), "figures": res}))


if __name__ == "__main__":
    main()
