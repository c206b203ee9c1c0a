"""Memory: what a server spends per idle connection and per call in flight,
grpcpy (sync, aio) and grpcio (sync, aio) side by side; and what a client
keeps after a run of aio channels opened, used and let go.

Each server runs in its own process; its RSS (/proc/<pid>/status) is read
before and after this process opens N idle HTTP/2 connections (preface and
SETTINGS exchanged, no stream), then again after M unary calls whose
handlers sleep (spread over connections of 100 streams each). The
differences divided by N and M are the figures; the first few connections
and calls are made before the baseline so that lazily built state
(thread pools, caches) is not counted.

    python perf/memory_bench.py [--connections 1000] [--calls 500] [--only grpcpy-aio,...]
                                [--churn 2000]

--churn K also runs K aio channel cycles (open, one call, close; and open,
one call, drop) in this process against a grpcio server and reports the
client's RSS growth.
"""
import argparse
import asyncio
import gc
import os
import socket
import struct
import subprocess
import sys
import time

IMPLS = ("grpcpy-sync", "grpcpy-aio", "grpcio-sync", "grpcio-aio")

SERVER = r'''
import asyncio, concurrent.futures, sys, time
kind, workers = sys.argv[1], int(sys.argv[2])
if kind.startswith("grpcio"):
    import grpc as top
else:
    import grpcpy as top
opts = [("grpc.max_concurrent_streams", 1000)]

def sleep_sync(request, context):
    time.sleep(600)
    return b""

async def sleep_aio(request, context):
    await asyncio.sleep(600)
    return b""

def handler(fn):
    return top.method_handlers_generic_handler("m.S", {"Sleep": top.unary_unary_rpc_method_handler(fn)})

if kind.endswith("-aio"):
    async def main():
        server = top.aio.server(options=opts)
        server.add_generic_rpc_handlers((handler(sleep_aio),))
        print(server.add_insecure_port("127.0.0.1:0"), flush=True)
        await server.start()
        await server.wait_for_termination()
    try:
        import uvloop
        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
else:
    server = top.server(concurrent.futures.ThreadPoolExecutor(workers), options=opts,
                        maximum_concurrent_rpcs=None)
    server.add_generic_rpc_handlers((handler(sleep_sync),))
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    server.start()
    server.wait_for_termination()
'''

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def rss_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def settled_rss(pid, quiet=0.5, limit=10.0):
    """The server's RSS once it stops changing (it is still accepting and
    starting handlers for a moment after our last write)."""
    end = time.monotonic() + limit
    last = rss_of(pid)
    while time.monotonic() < end:
        time.sleep(quiet)
        now = rss_of(pid)
        if abs(now - last) < 64 * 1024:
            return now
        last = now
    return last


def open_idle(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(PREFACE + frame(4, 0, 0))           # our SETTINGS
    s.settimeout(10)
    s.recv(65536)                                 # the server's SETTINGS (and maybe its ACK)
    s.sendall(frame(4, 1, 0))                     # ACK
    return s


def hpack_literal(name, value):
    # literal header field without indexing, new name; no Huffman
    def string(b):
        assert len(b) < 127
        return bytes([len(b)]) + b
    return b"\x00" + string(name) + string(value)


def start_calls(sock, port, count):
    block = b"".join(hpack_literal(n, v) for n, v in (
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/m.S/Sleep"),
        (b":authority", b"127.0.0.1:%d" % port), (b"content-type", b"application/grpc"), (b"te", b"trailers")))
    out = bytearray()
    for i in range(count):
        sid = 1 + 2 * i
        out += frame(1, 0x4, sid, block)              # HEADERS, END_HEADERS
        out += frame(0, 0x1, sid, b"\x00\x00\x00\x00\x00")   # an empty message, END_STREAM
    sock.sendall(bytes(out))


def measure_server(kind, connections, calls):
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(calls + 50)], stdout=subprocess.PIPE, text=True)
    socks = []
    try:
        port = int(proc.stdout.readline())
        for _ in range(10):                               # warm-up, not counted
            socks.append(open_idle(port))
        start_calls(socks[0], port, 10)
        base = settled_rss(proc.pid)
        for _ in range(connections):
            socks.append(open_idle(port))
        idle = settled_rss(proc.pid)
        per_conn = (idle - base) / connections
        left = calls
        while left:
            n = min(100, left)
            s = open_idle(port)
            socks.append(s)
            start_calls(s, port, n)
            left -= n
        busy = settled_rss(proc.pid)
        per_call = (busy - idle - (calls + 99) // 100 * per_conn) / calls
        return per_conn, per_call
    finally:
        for s in socks:
            s.close()
        proc.kill()
        proc.wait()


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
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--only", default=",".join(IMPLS))
    ap.add_argument("--churn", type=int, default=0, metavar="K")
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    print("server memory: %d idle connections, %d calls in flight" % (args.connections, args.calls))
    print("%-12s %18s %14s" % ("server", "per connection", "per call"))
    for kind in args.only.split(","):
        per_conn, per_call = measure_server(kind, args.connections, args.calls)
        print("%-12s %15.1f KiB %11.1f KiB" % (kind, per_conn / 1024, per_call / 1024), flush=True)
    if args.churn:
        grown = churn(args.churn)
        print("client RSS after %d grpcpy.aio channel cycles: closed %+.1f MiB, dropped %+.1f MiB"
              % (args.churn, grown["close"] / 2**20, grown["drop"] / 2**20))


if __name__ == "__main__":
    main()
