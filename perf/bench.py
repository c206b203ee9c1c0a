"""End-to-end benchmark: every scenario for every implementation, in one run.

    pip install -e '.[perf]' && apt-get install -y nghttp2-client
    python perf/bench.py                  # full run, about 7 minutes on 2 cores
    python perf/bench.py --quick          # smoke run, about a minute
    python perf/bench.py --only grpcpy-aio-uvloop,grpcio-aio,unary,stream

Implementations (server and client of the same implementation, in separate
processes, on 127.0.0.1, each on a free port; messages are raw bytes with no
serializers everywhere):
  grpcpy-sync          grpcpy's threaded API (server on a 32-thread pool)
  grpcpy-aio-uvloop    grpcpy.aio on uvloop (as grpcpy.aio.run chooses when installed)
  grpcpy-aio-asyncio   grpcpy.aio on asyncio's own loop
  grpcio-sync          grpc (server on a 32-thread pool)
  grpcio-aio           grpc.aio (on asyncio's loop, as grpc.aio runs)
  grpclib              grpclib on uvloop, handlers without code generation
  raw-floor            asyncio+uvloop TCP client and server exchanging the
                       same 5-byte length-prefixed messages with no HTTP/2:
                       the Python overhead no gRPC stack can beat

Scenarios (`--only` takes these names and the implementations' names):
  unary     unary ping-pong, one call in flight: calls/s, p50 and p99 latency
  unary64   unary calls, 64 in flight on one channel (the sync APIs: 16
            threads sharing the channel): calls/s
  stream    server streaming of 100,000 16-byte messages: messages/s
  bidi      ping-pong on one bidi stream: round trips/s
  mib       1 MiB unary echo, one call in flight: MiB/s (1 MiB counted per
            call, though it crosses the wire both ways)
  cpu       CPU seconds (user+system, resource.getrusage in each process) spent by the
            client process and by the server process for 10,000 ping-pong
            unary calls, read around the measured calls only
  h2load    h2load (nghttp2) as an independent load generator against each
            server's unary method: 4 connections x 16 streams, POST of a
            5-byte-prefixed 16-byte message with content-type
            application/grpc and te: trailers. h2load cannot see
            grpc-status, so each server is first checked with one real
            client call of the same message and one nghttp request whose
            trailers must carry grpc-status: 0; h2load must count every
            request as succeeded.

Samples are taken in rounds; each round runs every scenario for every
implementation (A B C ..., the order rotated by one each round) so that drift
of a noisy machine hits all alike. Each sample opens a fresh channel, warms
it up, then measures for a fixed duration or count. The table gives medians
with the min-max spread, and ratios of medians of the same run, always as
"how many times better grpcpy is" (throughput: grpcpy / peer; latency and
CPU: peer / grpcpy), followed by the goal table.

Every process has a timeout: a crashed or hung implementation is reported as
failed in the table (its process is killed and started afresh for the next
sample), never a hang of the harness. Every server is stopped at the end, and
peers exit by themselves when the harness goes away. The full run also runs
perf/codec_bench.py --quick and perf/core_bench.py first, so that a
regression can be traced to the codec or the core. Raw results (every
sample, versions, loops, failures) go to perf/results/bench-*.json.
"""
import argparse
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(1, ROOT)

from bench_peers import EXTRA_IMPLS, IMPLS, SMALL, SYNC_IMPLS, UNARY  # noqa: E402
from harness import fmt_rate, summary, versions, write_results  # noqa: E402

PEERS = os.path.join(HERE, "bench_peers.py")
SCENARIOS = ("unary", "unary64", "stream", "bidi", "mib", "cpu", "h2load")
UNSUPPORTED = {("raw-floor", "h2load")}
H2LOAD_CLIENTS, H2LOAD_STREAMS = 4, 16

AIO, AIO_ASYNCIO, SYNC = "grpcpy-aio-uvloop", "grpcpy-aio-asyncio", "grpcpy-sync"
# (column title, grpcpy implementation, peer)
RATIOS = (
    ("aio-uvloop / grpcio-aio", AIO, "grpcio-aio"),
    ("aio-uvloop / grpclib", AIO, "grpclib"),
    ("aio-uvloop / raw floor", AIO, "raw-floor"),
    ("aio-asyncio / grpcio-aio", AIO_ASYNCIO, "grpcio-aio"),
    ("sync / grpcio-sync", SYNC, "grpcio-sync"),
    # (with grpcpy-*-rr in --only: round_robin's pick against pick_first's)
    ("aio round_robin / pick_first", "grpcpy-aio-uvloop-rr", AIO),
    ("sync round_robin / pick_first", "grpcpy-sync-rr", SYNC),
    # (with grpcpy-*-otel / -prom in --only: observability on against off)
    ("aio otel-metrics / off", "grpcpy-aio-uvloop-otel", AIO),
    ("sync otel-metrics / off", "grpcpy-sync-otel", SYNC),
    ("aio prometheus / off", "grpcpy-aio-uvloop-prom", AIO),
    ("sync prometheus / off", "grpcpy-sync-prom", SYNC),
)


def _rate(x):
    return fmt_rate(x)


def _us(x):
    return "%.0fus" % x


def _cpu(x):
    return "%.2fs" % x


def _mib(x):
    return "%.0f" % x


# (key, scenario, label, higher is better, formatter, value from one sample)
FIGURES = (
    ("unary", "unary", "unary ping-pong (calls/s)", True, _rate, lambda r: r["rate"]),
    ("unary_p50", "unary", "unary ping-pong p50 latency", False, _us, lambda r: r["p50_us"]),
    ("unary_p99", "unary", "unary ping-pong p99 latency", False, _us, lambda r: r["p99_us"]),
    ("unary64", "unary64", "unary, 64 in flight; sync: 16 threads (calls/s)", True, _rate, lambda r: r["rate"]),
    ("stream", "stream", "server streaming, 100k msgs (msgs/s)", True, _rate, lambda r: r["rate"]),
    ("bidi", "bidi", "bidi ping-pong (round trips/s)", True, _rate, lambda r: r["rate"]),
    ("mib", "mib", "1 MiB unary echo (MiB/s)", True, _mib, lambda r: r["rate"]),
    ("cpu_client", "cpu", "client CPU per 10k unary calls", False, _cpu,
     lambda r: (r["user"] + r["system"]) / r["calls"] * 10000),
    ("cpu_server", "cpu", "server CPU per 10k unary calls", False, _cpu,
     lambda r: (r["server_user"] + r["server_system"]) / r["calls"] * 10000),
    ("h2load", "h2load", "h2load vs the server (requests/s)", True, _rate, lambda r: r["rate"]),
)
FIGURE = {f[0]: f for f in FIGURES}

# (goal, figure, grpcpy implementation, peer, minimum ratio; "> 1" when strict)
GOALS = (
    ("aio unary ping-pong >= 3x grpc.aio", "unary", AIO, "grpcio-aio", 3.0),
    ("aio unary ping-pong >= 50% of the raw floor", "unary", AIO, "raw-floor", 0.5),
    ("aio unary 64 in flight >= 5x grpc.aio", "unary64", AIO, "grpcio-aio", 5.0),
    ("aio server streaming >= 10x grpc.aio", "stream", AIO, "grpcio-aio", 10.0),
    ("aio server streaming >= 2x grpclib", "stream", AIO, "grpclib", 2.0),
    ("aio bidi ping-pong >= 2x grpc.aio", "bidi", AIO, "grpcio-aio", 2.0),
    ("sync unary ping-pong >= 2x grpcio sync", "unary", SYNC, "grpcio-sync", 2.0),
    ("sync unary 16 threads >= 1.5x grpcio sync", "unary64", SYNC, "grpcio-sync", 1.5),
    ("1 MiB unary >= grpcio sync", "mib", SYNC, "grpcio-sync", 1.0),
    ("h2load vs the server >= 3x the grpc.aio server", "h2load", AIO, "grpcio-aio", 3.0),
    ("aio client CPU per call below grpc.aio", "cpu_client", AIO, "grpcio-aio", "> 1"),
    ("aio server CPU per call below grpc.aio", "cpu_server", AIO, "grpcio-aio", "> 1"),
    ("sync client CPU per call below grpcio sync", "cpu_client", SYNC, "grpcio-sync", "> 1"),
    ("sync server CPU per call below grpcio sync", "cpu_server", SYNC, "grpcio-sync", "> 1"),
)

PROFILES = {
    # duration: seconds per timed sample; stream: messages; cpu: calls;
    # warmup: calls before a timed sample
    "full": {"rounds": 5, "duration": 1.0, "stream": 100000, "cpu": 10000, "warmup": 200},
    "quick": {"rounds": 2, "duration": 0.25, "stream": 10000, "cpu": 1000, "warmup": 50},
}


class SampleFailed(Exception):
    pass


class Peer:
    """One server or client process, driven one JSON line at a time."""

    def __init__(self, role, impl, logdir, env):
        self.role, self.impl = role, impl
        self.log_path = os.path.join(logdir, "%s-%s-%d.log" % (impl, role, time.monotonic_ns()))
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, PEERS, role, impl], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env, cwd=ROOT)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, obj):
        data = obj if isinstance(obj, str) else json.dumps(obj)
        try:
            self.proc.stdin.write(data.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise SampleFailed("%s %s process is gone (exit code %s)%s" % (
                self.impl, self.role, self.proc.poll(), self.stderr_tail()))

    def recv(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise SampleFailed("%s %s timed out after %.0f s (hung); killed%s" % (
                self.impl, self.role, timeout, self.kill()))
        if line is None:
            self.proc.wait(5)
            raise SampleFailed("%s %s process exited (code %s)%s" % (
                self.impl, self.role, self.proc.returncode, self.stderr_tail()))
        try:
            return json.loads(line)
        except ValueError:
            raise SampleFailed("%s %s wrote %r" % (self.impl, self.role, line[:200]))

    def alive(self):
        return self.proc.poll() is None

    def stderr_tail(self, n=1500):
        self.log.flush()
        try:
            with open(self.log_path, "rb") as fh:
                text = fh.read().decode(errors="replace").strip()
        except OSError:
            return ""
        return ("; stderr: ..." + text[-n:]) if text else ""

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        return self.stderr_tail()

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class Implementation:
    """An implementation's server and client processes, started on demand and
    started afresh after a failure."""

    def __init__(self, name, logdir):
        self.name, self.logdir = name, logdir
        self.server = self.client = None
        self.port = None
        self.loops = {"server": None, "client": None}
        self.verified = False
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    def ensure(self):
        if self.server is None or not self.server.alive():
            if self.server is not None:
                self.server.stop()
            self.verified = False
            self.server = Peer("server", self.name, self.logdir, self.env)
            hello = self.server.recv(60)
            self.port = hello["port"]
            self.loops["server"] = hello["loop"]
        if self.client is None or not self.client.alive():
            if self.client is not None:
                self.client.stop()
            self.client = Peer("client", self.name, self.logdir, self.env)
            self.loops["client"] = self.client.recv(60)["loop"]

    def command(self, cmd, timeout):
        self.client.send(cmd)
        return self.result(timeout)

    def result(self, timeout):
        res = self.client.recv(timeout)
        if not res.get("ok", True):
            raise SampleFailed("%s client: %s" % (self.name, res.get("error")))
        return res

    def stop(self):
        for peer in (self.client, self.server):
            if peer is not None:
                peer.stop()

    def reset(self):
        """After a failed sample: kill both processes (either may be the hung
        one); the next sample starts them afresh."""
        for peer in (self.client, self.server):
            if peer is not None:
                peer.kill()
                peer.stop()
        self.client = self.server = None


class Bench:
    def __init__(self, args, profile, logdir):
        self.args, self.p, self.logdir = args, profile, logdir
        self.h2load = shutil.which("h2load")
        self.nghttp = shutil.which("nghttp")
        self.body = os.path.join(logdir, "grpc-request.bin")
        with open(self.body, "wb") as fh:
            fh.write(b"\x00" + len(SMALL).to_bytes(4, "big") + SMALL)

    def timeout(self, scenario):
        d = self.p["duration"]
        return {"stream": 60 + self.p["stream"] / 1000.0, "cpu": 60 + self.p["cpu"] / 100.0,
                "h2load": 60 + d}.get(scenario, 30 + 4 * d)

    def sample(self, impl, scenario):
        impl.ensure()
        p = self.p
        cmd = {"scenario": scenario, "target": impl.target, "duration": p["duration"], "warmup": p["warmup"],
               "count": p["stream"] if scenario == "stream" else p["cpu"], "concurrency": 64, "threads": 16}
        if scenario == "h2load":
            return self.run_h2load(impl)
        if scenario != "cpu":
            return impl.command(cmd, self.timeout(scenario))
        impl.client.send(cmd)
        warm = impl.result(60)
        if warm.get("phase") != "warm":
            raise SampleFailed("%s client: expected the warm-up mark, got %r" % (impl.name, warm))
        impl.server.send("cpu")
        s0 = impl.server.recv(10)
        impl.client.send("go")
        res = impl.result(self.timeout("cpu"))
        impl.server.send("cpu")
        s1 = impl.server.recv(10)
        res["server_user"] = s1["user"] - s0["user"]
        res["server_system"] = s1["system"] - s0["system"]
        return res

    def verify_unary(self, impl):
        """h2load cannot see grpc-status: check the method with one real call
        of the same message, and with one nghttp request's trailers."""
        impl.command({"scenario": "check", "target": impl.target, "payload": SMALL.hex()}, 30)
        if self.nghttp:
            out = subprocess.run(
                [self.nghttp, "-v", "-d", self.body, "-H", "content-type: application/grpc", "-H", "te: trailers",
                 "http://%s%s" % (impl.target, UNARY)], capture_output=True, timeout=30)
            text = out.stdout.decode(errors="replace")
            if not re.search(r"recv \(stream_id=\d+\) grpc-status: 0\b", text):
                raise SampleFailed("%s server: nghttp request to %s did not end with grpc-status: 0 (%s)" % (
                    impl.name, UNARY, " | ".join(l for l in text.splitlines()
                                                 if "status" in l or "grpc-message" in l)[:500] or text[-300:]))
        impl.verified = True

    def run_h2load(self, impl):
        if not self.h2load:
            raise SampleFailed("h2load is not installed (apt-get install -y nghttp2-client)")
        if not impl.verified:
            self.verify_unary(impl)
        d = self.p["duration"]
        cmd = [self.h2load, "-c", str(H2LOAD_CLIENTS), "-m", str(H2LOAD_STREAMS), "-t", "1",
               "-D", "%dms" % (d * 1000),
               "--warm-up-time", "%dms" % (min(d, 1.0) * 500),
               "-d", self.body, "-H", "content-type: application/grpc", "-H", "te: trailers",
               "http://%s%s" % (impl.target, UNARY)]
        try:
            out = subprocess.run(cmd, capture_output=True, timeout=self.timeout("h2load"))
        except subprocess.TimeoutExpired:
            raise SampleFailed("h2load against %s timed out" % impl.name)
        text = out.stdout.decode(errors="replace")
        m = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", text)
        r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                      r"(\d+) errored, (\d+) timeout", text)
        if not (m and r):
            raise SampleFailed("h2load against %s: unreadable output (exit %d): %s %s" % (
                impl.name, out.returncode, text[-400:], out.stderr.decode(errors="replace")[-400:]))
        total, started, done, ok, failed, errored, timeouts = map(int, r.groups())
        if ok == 0 or failed or errored or timeouts or ok != done:
            raise SampleFailed("h2load against %s: %d done, %d succeeded, %d failed, %d errored, %d timeout" % (
                impl.name, done, ok, failed, errored, timeouts))
        if not impl.server.alive():
            raise SampleFailed("%s server died under h2load%s" % (impl.name, impl.server.stderr_tail()))
        return {"rate": float(m.group(3)), "requests": ok, "done": done}


def run_micro(out):
    """codec_bench --quick and core_bench: where a regression comes from."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    results = {}
    for name, argv in (("codec", ["codec_bench.py", "--quick"]), ("core", ["core_bench.py"])):
        out("\n## %s: python perf/%s\n" % (name, " ".join(argv)))
        try:
            proc = subprocess.run([sys.executable, os.path.join(HERE, argv[0])] + argv[1:], env=env, cwd=ROOT,
                                  capture_output=True, timeout=600)
        except subprocess.TimeoutExpired:
            results[name] = {"error": "timed out"}
            out("%s: timed out" % name)
            continue
        text = proc.stdout.decode(errors="replace")
        out(text.rstrip())
        m = re.search(r"^results: (.*)$", text, re.M)
        results[name] = {"exit": proc.returncode, "results": os.path.relpath(m.group(1), HERE) if m else None}
        if proc.returncode:
            results[name]["error"] = proc.stderr.decode(errors="replace")[-2000:]
            out("%s failed (exit %d): %s" % (name, proc.returncode, results[name]["error"]))
    return results


def git_commit():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def tool_version(path):
    if not path:
        return None
    try:
        return subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def advantage(g, p, higher):
    if g is None or p is None or g <= 0 or p <= 0:
        return None
    return g / p if higher else p / g


def goal_met(ratio, threshold):
    if ratio is None:
        return None
    return ratio > 1.0 if threshold == "> 1" else ratio >= threshold


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Implementations: %s. Scenarios: %s." % (", ".join(IMPLS), ", ".join(SCENARIOS)))
    ap.add_argument("--quick", action="store_true", help="smoke run of about a minute (2 short rounds, no "
                                                         "codec/core benchmarks)")
    ap.add_argument("--only", default="", help="comma-separated implementations and/or scenarios to run")
    ap.add_argument("--rounds", type=int, help="rounds (default 5; --quick 2)")
    ap.add_argument("--duration", type=float, help="seconds per timed sample (default 1.0; --quick 0.25)")
    ap.add_argument("--skip-micro", action="store_true", help="do not run codec_bench/core_bench")
    ap.add_argument("--no-save", action="store_true", help="do not write perf/results/bench-*.json")
    args = ap.parse_args(argv)

    profile = dict(PROFILES["quick" if args.quick else "full"])
    if args.rounds:
        profile["rounds"] = args.rounds
    if args.duration:
        profile["duration"] = args.duration
    impls, scenarios = list(IMPLS), list(SCENARIOS)
    tokens = [t.strip() for t in args.only.split(",") if t.strip()]
    every = IMPLS + EXTRA_IMPLS
    unknown = [t for t in tokens if t not in every and t not in SCENARIOS]
    if unknown:
        ap.error("--only: unknown %s (implementations: %s; scenarios: %s)" % (
            ", ".join(unknown), ", ".join(every), ", ".join(SCENARIOS)))
    if any(t in every for t in tokens):
        impls = [i for i in every if i in tokens]
    if any(t in SCENARIOS for t in tokens):
        scenarios = [s for s in SCENARIOS if s in tokens]

    def out(*a):
        print(*a, flush=True)

    started = time.time()
    vers = versions("grpcio", "grpclib", "uvloop", "h2", "Cython", "protobuf")
    import grpcpy
    vers["grpcpy"] = grpcpy.__version__
    vers["grpcpy_commit"] = git_commit()
    vers["h2load"] = tool_version(shutil.which("h2load"))
    out("grpcpy %s (%s), Python %s, grpcio %s, grpclib %s, uvloop %s, %s; %s CPUs" % (
        vers["grpcpy"], vers["grpcpy_commit"], vers["python"], vers["grpcio"], vers["grpclib"], vers["uvloop"],
        vers["h2load"] or "h2load not installed", vers["cpus"]))
    out("profile: %s" % json.dumps(profile))

    micro = {}
    if not (args.quick or args.skip_micro or args.only):
        micro = run_micro(out)
    elif args.quick:
        out("(codec and core figures: python perf/codec_bench.py --quick; python perf/core_bench.py)")

    logdir = tempfile.mkdtemp(prefix="grpcpy-bench-")
    bench = Bench(args, profile, logdir)
    running = {name: Implementation(name, logdir) for name in impls}
    samples = {s: {i: [] for i in impls} for s in scenarios}
    failures = []
    out("\n## end-to-end: %d rounds of %s x %s\n" % (profile["rounds"], ", ".join(scenarios), ", ".join(impls)))
    try:
        for rnd in range(profile["rounds"]):
            order = impls[rnd % len(impls):] + impls[:rnd % len(impls)]
            for scenario in scenarios:
                for name in order:
                    if (name, scenario) in UNSUPPORTED:
                        continue
                    impl = running[name]
                    t0 = time.perf_counter()
                    try:
                        res = bench.sample(impl, scenario)
                        res.pop("ok", None)
                        shown = ", ".join("%s %s" % (FIGURE[k][2].split(" (")[0].split(";")[0], FIGURE[k][4](FIGURE[k][5](res)))
                                          for k, f in FIGURE.items() if f[1] == scenario)
                    except SampleFailed as exc:
                        res = {"error": str(exc)}
                        shown = "FAILED: " + str(exc)[:300]
                        failures.append({"round": rnd + 1, "scenario": scenario, "impl": name, "error": str(exc)})
                        impl.reset()
                    except Exception as exc:  # a harness-side surprise is still one failed sample
                        res = {"error": "%s: %s" % (type(exc).__name__, exc)}
                        shown = "FAILED: " + res["error"][:300]
                        failures.append({"round": rnd + 1, "scenario": scenario, "impl": name, "error": res["error"]})
                        impl.reset()
                    samples[scenario][name].append(res)
                    out("round %d  %-8s %-19s %5.1fs  %s" % (rnd + 1, scenario, name, time.perf_counter() - t0, shown))
    except KeyboardInterrupt:
        out("interrupted: reporting what was measured")
    finally:
        for impl in running.values():
            impl.stop()

    # medians, ratios, goals
    figures = {}
    for key, scenario, label, higher, fmt, value in FIGURES:
        if scenario not in scenarios:
            continue
        figures[key] = {}
        for name in impls:
            vals = [value(r) for r in samples[scenario][name] if "error" not in r]
            n_fail = sum(1 for r in samples[scenario][name] if "error" in r)
            if (name, scenario) in UNSUPPORTED:
                figures[key][name] = None
            else:
                figures[key][name] = dict(summary(vals), failed=n_fail) if vals else {"failed": n_fail}

    def median(key, name):
        f = figures.get(key, {}).get(name)
        return f.get("median") if f else None

    ratios = {key: {title: advantage(median(key, g), median(key, p), FIGURE[key][3])
                    for title, g, p in RATIOS} for key in figures}
    goals = []
    for text, key, g, p, threshold in GOALS:
        r = advantage(median(key, g), median(key, p), FIGURE[key][3]) if key in figures else None
        goals.append({"goal": text, "figure": key, "grpcpy": g, "peer": p, "threshold": threshold, "ratio": r,
                      "met": goal_met(r, threshold)})

    def cell(key, name):
        f = figures[key].get(name)
        if f is None:
            return "—"
        if "median" not in f:
            return "FAILED"
        fmt = FIGURE[key][4]
        s = "%s (%s–%s)" % (fmt(f["median"]), fmt(f["min"]), fmt(f["max"]))
        return s + (" [%d failed]" % f["failed"] if f["failed"] else "")

    loops = {name: impl.loops for name, impl in running.items()}
    out("\n## results: median (min–max) of %d rounds; %s s samples" % (profile["rounds"], profile["duration"]))
    out("grpcpy %s (%s), Python %s, grpcio %s, grpclib %s, uvloop %s; event loops: %s" % (
        vers["grpcpy"], vers["grpcpy_commit"], vers["python"], vers["grpcio"], vers["grpclib"], vers["uvloop"],
        ", ".join("%s %s" % (n, l["client"] or "threads") for n, l in loops.items())))
    out("")
    out(table(["figure"] + impls, [[FIGURE[k][2]] + [cell(k, n) for n in impls] for k in figures]))
    out("\nratios of medians, as times better for grpcpy (throughput: grpcpy/peer; latency, CPU: peer/grpcpy)\n")
    fr = lambda r: "%.2fx" % r if r is not None else "—"  # noqa: E731
    out(table(["figure"] + [t for t, _, _ in RATIOS],
              [[FIGURE[k][2]] + [fr(ratios[k][t]) for t, _, _ in RATIOS] for k in figures]))
    out("\ngoals\n")
    out(table(["goal", "measured", "status"],
              [[g["goal"], fr(g["ratio"]), {True: "met", False: "MISSED", None: "not measured"}[g["met"]]]
               for g in goals]))
    if failures:
        out("\nfailures:")
        for f in failures:
            out("  round %d %s %s: %s" % (f["round"], f["scenario"], f["impl"], f["error"][:1500]))
    if micro:
        out("\ncodec/core figures: %s" % ", ".join("%s %s" % (k, v.get("results") or v.get("error"))
                                                  for k, v in micro.items()))
    elapsed = time.time() - started
    out("\nwall time %.0f s" % elapsed)
    if not args.no_save:
        payload = {"benchmark": "bench", "command": " ".join(["python", "perf/bench.py"] + sys.argv[1:]),
                   "profile": profile, "implementations": impls, "scenarios": scenarios,
                   "h2load": {"clients": H2LOAD_CLIENTS, "streams_per_client": H2LOAD_STREAMS},
                   "sync_server_threads": 32, "message_bytes": len(SMALL), "versions": vers, "loops": loops,
                   "uvloop_used": {n: l["client"] == "uvloop" for n, l in loops.items() if n not in SYNC_IMPLS},
                   "samples": samples, "figures": figures, "ratios": ratios, "goals": goals, "failures": failures,
                   "micro": micro, "wall_seconds": elapsed}
        out("results: %s" % os.path.relpath(write_results("bench", payload), ROOT))
    shutil.rmtree(logdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
