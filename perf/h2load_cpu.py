"""Server CPU per request under h2load, for the grpcpy servers (sync, aio)
and optionally grpcio's.

    python perf/h2load_cpu.py [--requests 40000] [--rounds 5] [--baseline ../main]
                              [--impl grpcpy-sync,grpcpy-aio-asyncio,grpcpy-aio-uvloop,grpcio-sync]

`--baseline DIR` measures the grpcpy servers of another (built) checkout as
well, in the same rounds; `--together` loads all the servers at the same
time in each round (each under its own h2load), so that they share the
machine's load and their figures compare. Each server runs in a process of its own (the unary echo method of
perf/bench_peers.py, 32 worker threads for the sync servers); h2load
(nghttp2-client) sends a fixed number of requests over 4 connections x 16
streams; the server's CPU time (user + system, from the process's own
accounting) over the run, divided by the requests h2load counted as
succeeded, is the figure. A short warm-up run comes first and is not
counted. Wall time matters little here: the machine may be shared, CPU
time per request much less so. CPU time still moves with the machine's load
(cache and scheduler effects, +-30% on a busy 2-core machine), so each server
is measured `--rounds` times, alternating between servers, and the lowest
and the median figure are reported.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_peers import SERVICE  # noqa: E402


def _start(impl):
    """impl, or impl@DIR: grpcpy imported from the checkout DIR (a baseline)."""
    env = dict(os.environ)
    impl, _, checkout = impl.partition("@")
    if checkout:
        env["PYTHONPATH"] = os.path.abspath(checkout) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "bench_peers.py"), "server", impl],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
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
        _stop(proc)
    return ok, used


def _stop(proc):
    """Tell a server started by _start to quit, and wait for it."""
    try:
        proc.stdin.write("quit\n")
        proc.stdin.flush()
    except OSError:
        pass
    proc.wait(10)


def measure_together(impls, requests, body):
    """Every server at once, each under its own h2load: the servers share
    whatever load the machine has, so their figures compare."""
    started = {impl: _start(impl) for impl in impls}
    try:
        for proc, port in started.values():
            _h2load(port, body, max(1000, requests // 10))
        before = {impl: _cpu(proc) for impl, (proc, _) in started.items()}
        done = {}

        def load(impl, port):
            done[impl] = _h2load(port, body, requests)

        runs = [threading.Thread(target=load, args=(impl, port)) for impl, (_, port) in started.items()]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
        return {impl: (done[impl], _cpu(proc) - before[impl]) for impl, (proc, _) in started.items()}
    finally:
        for proc, _ in started.values():
            _stop(proc)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=40000)
    ap.add_argument("--impl", default="grpcpy-sync,grpcpy-aio-asyncio,grpcpy-aio-uvloop")
    ap.add_argument("--rounds", type=int, default=1, help="runs per server, alternating")
    ap.add_argument("--baseline", help="a grpcpy checkout (built) to measure the grpcpy servers of as well")
    ap.add_argument("--together", action="store_true",
                    help="load every server at the same time in each round (fairer on a shared machine)")
    args = ap.parse_args(argv)
    if not shutil.which("h2load"):
        sys.exit("h2load is not installed (Debian: apt-get install nghttp2-client)")
    folder = tempfile.mkdtemp(prefix="grpcpy-h2load-")
    body = os.path.join(folder, "request.bin")
    with open(body, "wb") as fh:
        fh.write(b"\0\0\0\0\x05hello")
    impls = args.impl.split(",")
    if args.baseline:
        impls += ["%s@%s" % (impl, args.baseline) for impl in impls if impl.startswith("grpcpy")]
    figures = {impl: [] for impl in impls}
    for _ in range(args.rounds):
        if args.together:
            results = measure_together(impls, args.requests, body)
        else:
            results = {impl: measure(impl, args.requests, body) for impl in impls}
        for impl, (ok, used) in results.items():
            figures[impl].append(used / max(1, ok) * 1e6)
    print("server CPU per request under h2load (%d requests, 4 connections x 16 streams), %d round(s)%s"
          % (args.requests, args.rounds, ", servers loaded together" if args.together else ""))
    print("%-32s %12s %12s" % ("server", "lowest us", "median us"))
    for impl in impls:
        cpu = sorted(figures[impl])
        print("%-32s %12.1f %12.1f" % (impl, cpu[0], cpu[len(cpu) // 2]))


if __name__ == "__main__":
    main()
