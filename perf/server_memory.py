"""Server memory per idle connection and per in-flight call: grpcpy (sync,
aio) against grpcio (sync, aio), side by side.

Each server runs in its own process (this file with --serve), so its
resident set is its own. The measuring process is one client for all of
them: plain sockets driven by the `h2` package, so every server sees the
same bytes.

  per idle connection: RSS after N connections, each of which made one
      unary call and then stays open doing nothing, minus RSS before them
      (one warm connection open already), divided by N;
  per in-flight call: RSS with N calls blocked in the handler (spread over
      connections of 100 calls each, opened and warmed beforehand), minus
      RSS with those connections idle, divided by N. Sync servers get a
      pool of N + 8 workers: a blocked sync handler holds a thread in both
      implementations;
  per call waiting for its request: the same with N calls that send their
      HEADERS and never their request (grpcio's sync server gives each a
      worker, which waits for the request; grpcpy starts no handler).

Each figure is the median of --runs runs, each with a fresh server. RSS is
VmRSS from /proc (Linux). Also reported: the server's thread count at each
point, which is where a sync server's memory tends to go.

    python perf/server_memory.py                     # N=500, 3 runs
    python perf/server_memory.py --connections 1000 --calls 1000 --runs 5
    python perf/server_memory.py --json              # one JSON object on stdout
"""
import argparse
import json
import os
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import time

IMPLS = ("grpcpy-sync", "grpcpy-aio", "grpcio-sync", "grpcio-aio")
CALLS_PER_CONNECTION = 100
SERVICE = "mem.Probe"


# ---------------------------------------------------------------- the server side

def serve(impl, workers):
    """Run a server of `impl`; answer commands on stdin: 'count' (handlers
    blocked now), 'release' (let them return), 'quit'."""
    import threading
    top = __import__("grpcpy" if impl.startswith("grpcpy") else "grpc")
    aio = impl.endswith("aio")
    state = {"blocked": 0}
    if aio:
        import asyncio
        aio_mod = __import__(top.__name__ + ".aio", fromlist=["aio"])
        loop = asyncio.new_event_loop()
        release = asyncio.Event()

        async def block(request, context):
            state["blocked"] += 1
            await release.wait()
            return b""

        async def ping(request, context):
            return b""

        handlers = {"Block": top.unary_unary_rpc_method_handler(block),
                    "Ping": top.unary_unary_rpc_method_handler(ping)}

        async def start():
            server = aio_mod.server()
            server.add_generic_rpc_handlers((top.method_handlers_generic_handler(SERVICE, handlers),))
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            return server, port
        server, port = loop.run_until_complete(start())
        threading.Thread(target=loop.run_forever, daemon=True).start()
        do_release = lambda: loop.call_soon_threadsafe(release.set)  # noqa: E731
    else:
        import concurrent.futures
        release = threading.Event()

        def block(request, context):
            state["blocked"] += 1
            release.wait()
            return b""

        def ping(request, context):
            return b""

        handlers = {"Block": top.unary_unary_rpc_method_handler(block),
                    "Ping": top.unary_unary_rpc_method_handler(ping)}
        server = top.server(concurrent.futures.ThreadPoolExecutor(workers))
        server.add_generic_rpc_handlers((top.method_handlers_generic_handler(SERVICE, handlers),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        do_release = release.set
    print(port, flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "count":
            print(state["blocked"], flush=True)
        elif command == "release":
            do_release()
            print("ok", flush=True)
        elif command == "quit":
            break
    os._exit(0)   # no orderly shutdown: the process only measured


class Server:
    def __init__(self, impl, workers):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", impl,
                                      "--workers", str(workers)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the %s server did not start" % impl)
        self.port = int(line)

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def status(self):
        """(RSS in KiB, thread count) of the server process."""
        rss = threads = None
        with open("/proc/%d/status" % self.proc.pid) as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        return rss, threads

    def stop(self):
        try:
            self.ask("quit")
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- the client side

class Connection:
    """One HTTP/2 connection to the server under test (h2 over a socket)."""

    def __init__(self, port):
        import h2.config
        import h2.connection
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.ended = set()
        self.out = bytearray()
        self.flush()

    def call(self, method, silent=False):
        """Start a call; `silent`: HEADERS only, the request never comes."""
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", "/%s/%s" % (SERVICE, method)),
                                   (":authority", "localhost"), ("content-type", "application/grpc"),
                                   ("te", "trailers")])
        if not silent:
            self.h2.send_data(sid, struct.pack(">BI", 0, 0), end_stream=True)
        return sid

    def flush(self):
        self.out += self.h2.data_to_send()
        while self.out:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                return
            del self.out[:sent]

    def readable(self):
        import h2.events
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        if not data:
            raise RuntimeError("the server closed a connection")
        for ev in self.h2.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                raise RuntimeError("stream %d reset by the server (%s)" % (ev.stream_id, ev.error_code))
        self.flush()

    def close(self):
        self.sock.close()


def pump(connections, until=None, timeout=60.0, idle=None):
    """Serve every connection's input (SETTINGS and PING ACKs, window
    updates) until `until()` holds, or until nothing came for `idle`
    seconds when `until` is None."""
    if idle is None:
        idle = min(0.2, SETTLE)
    sel = selectors.DefaultSelector()
    for conn in connections:
        conn.flush()
        sel.register(conn.sock, selectors.EVENT_READ, conn)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if until is not None and until():
                return
            if time.monotonic() > deadline:
                raise RuntimeError("timed out waiting for the server")
            ready = sel.select(idle if until is None else 0.5)
            if not ready and until is None:
                return
            for key, _ in ready:
                key.data.readable()
    finally:
        sel.close()


def connect(port, count):
    """`count` connections, each having made one completed call."""
    conns = []
    for _ in range(count):
        conn = Connection(port)
        conn.pinged = conn.call("Ping")
        conns.append(conn)
    pump(conns, lambda: all(c.pinged in c.ended for c in conns))
    pump(conns)
    return conns


SETTLE = 0.3     # seconds the server is given before its RSS is read (--settle)


def settle(server, conns):
    """Let the server's state settle (its acks answered), then read it."""
    time.sleep(SETTLE)
    pump(conns)
    return server.status()


def measure_connections(impl, n):
    server = Server(impl, workers=8)
    try:
        warm = connect(server.port, 1)
        rss0, threads0 = settle(server, warm)
        conns = connect(server.port, n)
        rss1, threads1 = settle(server, warm + conns)
        for conn in warm + conns:
            conn.close()
        return {"kib": (rss1 - rss0) / n, "threads_before": threads0, "threads_after": threads1}
    finally:
        server.stop()


def measure_calls(impl, n, silent=False):
    """In-flight calls blocked in the handler; `silent`: calls whose
    request never comes (HEADERS only), which no handler sees."""
    server = Server(impl, workers=n + 8)
    try:
        count = max(1, -(-n // CALLS_PER_CONNECTION))
        conns = connect(server.port, count)
        rss0, threads0 = settle(server, conns)
        for i in range(n):
            conns[i % count].call("Block", silent)
        for conn in conns:
            conn.flush()
        deadline = time.monotonic() + 60
        while not silent and int(server.ask("count")) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("%s: only %s of %d calls reached the handler" % (impl, server.ask("count"), n))
            pump(conns, idle=0.05)
        rss1, threads1 = settle(server, conns)
        server.ask("release")
        for conn in conns:
            conn.close()
        return {"kib": (rss1 - rss0) / n, "threads_before": threads0, "threads_after": threads1}
    finally:
        server.stop()


def main():
    global SETTLE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=500, help="idle connections (default 500)")
    ap.add_argument("--calls", type=int, default=500, help="calls in flight (default 500)")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    ap.add_argument("--only", default=",".join(IMPLS), help="comma-separated: " + ", ".join(IMPLS))
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--settle", type=float, default=SETTLE,
                    help="seconds a server is left alone before its RSS is read (default %.1f)" % SETTLE)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=8, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.workers)
        return
    SETTLE = args.settle
    impls = [name for name in args.only.split(",") if name]
    for name in impls:
        if name not in IMPLS:
            ap.error("unknown implementation %r" % name)
    results = {}
    for run in range(args.runs):
        for name in impls:   # interleaved: drift hits every implementation alike
            row = results.setdefault(name, {"connection": [], "call": [], "silent": []})
            row["connection"].append(measure_connections(name, args.connections))
            row["call"].append(measure_calls(name, args.calls))
            row["silent"].append(measure_calls(name, args.calls, silent=True))
    summary = {}
    for name, row in results.items():
        summary[name] = {
            "kib_per_connection": statistics.median(r["kib"] for r in row["connection"]),
            "kib_per_call": statistics.median(r["kib"] for r in row["call"]),
            "kib_per_silent_call": statistics.median(r["kib"] for r in row["silent"]),
            "threads_silent_calls": row["silent"][-1]["threads_after"],
            "threads_idle_connections": row["connection"][-1]["threads_after"],
            "threads_before_connections": row["connection"][-1]["threads_before"],
            "threads_calls": row["call"][-1]["threads_after"],
            "runs": row,
        }
    if args.json:
        json.dump({"connections": args.connections, "calls": args.calls, "runs": args.runs,
                   "python": sys.version.split()[0], "results": summary}, sys.stdout)
        print()
        return
    print("server memory, median of %d runs (N = %d idle connections, %d calls in flight)"
          % (args.runs, args.connections, args.calls))
    print()
    print("| server | KiB per idle connection | KiB per in-flight call | KiB per call waiting for its request "
          "| threads: before / %d idle conns / %d calls / %d waiting |" % (args.connections, args.calls, args.calls))
    print("|---|---|---|---|---|")
    for name in impls:
        s = summary[name]
        print("| %s | %.1f | %.1f | %.1f | %d / %d / %d / %d |" % (
            name, s["kib_per_connection"], s["kib_per_call"], s["kib_per_silent_call"],
            s["threads_before_connections"], s["threads_idle_connections"], s["threads_calls"],
            s["threads_silent_calls"]))


if __name__ == "__main__":
    main()
