"""Server CPU per request under h2load, for the grpcpy servers (sync, aio)
and optionally grpcio's.

    python perf/h2load_cpu.py [--requests 40000] [--impl grpcpy-sync,grpcpy-aio]

Each server runs in a process of its own (the unary echo method of
perf/bench_peers.py, 32 worker threads for the sync servers); h2load
(nghttp2-client) sends a fixed number of requests over 4 connections x 16
streams; the server's CPU time (user + system, from the process's own
accounting) over the run, divided by the requests h2load counted as
succeeded, is the figure. A short warm-up run comes first and is not
counted. Wall time matters little here: the machine may be shared, CPU
time per request much less so.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_peers import SERVICE  # noqa: E402

IMPLS = ("grpcpy-sync", "grpcpy-aio-asyncio", "grpcpy-aio-uvloop", "grpcio-sync", "grpcio-aio")


def _start(impl):
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "bench_peers.py"), "server", impl],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    hello = json.loads(proc.stdout.readline())
    return proc, hello["port"]


def _cpu(proc):
    proc.stdin.write("cpu\n")
    proc.stdin.flush()
    got = json.loads(proc.stdout.readline())
    return got["user"] + got["system"]


def _h2load(port, body, requests, conns=4, streams=16):
    cmd = [shutil.which("h2load"), "-n", str(requests), "-c", str(conns), "-m", str(streams), "-t", "1",
           "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers",
           "http://127.0.0.1:%d/%s/Unary" % (port, SERVICE)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    for line in out.splitlines():
        if line.startswith("requests:"):
            # requests: N total, N started, N done, N succeeded, ...
            return int(line.split(",")[3].split()[0])
    raise RuntimeError("unreadable h2load output: %s" % out[-500:])


def measure(impl, requests, body):
    proc, port = _start(impl)
    try:
        _h2load(port, body, max(1000, requests // 10))   # warm-up
        before = _cpu(proc)
        ok = _h2load(port, body, requests)
        used = _cpu(proc) - before
    finally:
        try:
            proc.stdin.write("quit\n")
            proc.stdin.flush()
        except OSError:
            pass
        proc.wait(10)
    return ok, used


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=40000)
    ap.add_argument("--impl", default="grpcpy-sync,grpcpy-aio-asyncio,grpcpy-aio-uvloop")
    args = ap.parse_args(argv)
    if not shutil.which("h2load"):
        sys.exit("h2load is not installed (Debian: apt-get install nghttp2-client)")
    folder = tempfile.mkdtemp(prefix="grpcpy-h2load-")
    body = os.path.join(folder, "request.bin")
    with open(body, "wb") as fh:
        fh.write(b"\0\0\0\0\x05hello")
    print("%-12s %10s %10s %14s" % ("server", "requests", "CPU s", "CPU us/request"))
    for impl in args.impl.split(","):
        ok, used = measure(impl, args.requests, body)
        print("%-12s %10d %10.2f %14.1f" % (impl, ok, used, used / max(1, ok) * 1e6))


if __name__ == "__main__":
    main()
