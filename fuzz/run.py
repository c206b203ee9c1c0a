"""Run the fuzzing harnesses (atheris/libFuzzer), each in its own process.

    python -m fuzz.run --minutes 60                 # all harnesses, time split evenly
    python -m fuzz.run --seconds 20 server client   # these, 20 s each
    python -m fuzz.run --replay                     # seeds and crash inputs, once each

Seeds are read from fuzz/corpus/<harness>/; inputs the fuzzer finds
interesting go to build/fuzz-corpus/<harness>/ (not committed); an input that
breaks an invariant is written to fuzz/crashes/<harness>/ (commit it: the
suite replays every file there). Prints executions and coverage per harness;
exits non-zero when a harness failed.
"""
import argparse
import importlib
import os
import re
import subprocess
import sys
import time

HARNESSES = ["frames", "hpack", "framing", "server", "client"]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def corpus_dir(name):
    return os.path.join(HERE, "corpus", name)


def crash_dir(name):
    return os.path.join(HERE, "crashes", name)


def inputs(name):
    """(path, bytes) of every seed and crash input of a harness."""
    out = []
    for d in (corpus_dir(name), crash_dir(name)):
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                p = os.path.join(d, f)
                if os.path.isfile(p) and not f.startswith("."):
                    with open(p, "rb") as fh:
                        out.append((p, fh.read()))
    return out


def _child(name, argv):
    import atheris

    from fuzz import _support
    mod = importlib.import_module("fuzz." + name)
    print("fuzz %s on %s" % (name, _support.core.__name__), flush=True)
    _support.enable_coverage()
    atheris.Setup([sys.argv[0]] + argv, _support.coverage_target(mod.one_input))
    try:
        atheris.Fuzz()
    finally:
        print("edges %d" % _support.coverage_edges(), flush=True)


_STAT = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)")


def fuzz(name, seconds, quiet=False, extra=()):
    """Fuzz one harness for `seconds` in a child process; return
    (ok, executions, cov, ft, output tail)."""
    work = os.path.join(ROOT, "build", "fuzz-corpus", name)
    os.makedirs(work, exist_ok=True)
    os.makedirs(crash_dir(name), exist_ok=True)
    args = [work, corpus_dir(name), "-max_total_time=%d" % max(1, int(seconds)),
            "-artifact_prefix=%s/" % crash_dir(name), "-rss_limit_mb=2048", "-malloc_limit_mb=1024",
            "-timeout=20", "-max_len=4096", "-print_final_stats=1"] + list(extra)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "fuzz.run", "--child", name, "--"] + args,
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace")
    out = proc.stdout
    execs = cov = ft = 0
    for m in _STAT.finditer(out):
        execs, cov, ft = int(m.group(1)), int(m.group(2)), int(m.group(3))
    m = re.search(r"stat::number_of_executed_units: (\d+)", out)
    if m:
        execs = int(m.group(1))
    if not quiet:
        print("%-8s %s  execs=%d cov=%d ft=%d" % (name, "ok  " if proc.returncode == 0 else "FAIL",
                                                 execs, cov, ft), flush=True)
        if proc.returncode != 0:
            print(out[-6000:], flush=True)
    return proc.returncode == 0, execs, cov, ft, out[-6000:]


def replay(names):
    failures = 0
    for name in names:
        mod = importlib.import_module("fuzz." + name)
        for path, data in inputs(name):
            try:
                mod.one_input(data)
            except Exception as exc:  # noqa: BLE001 - report every failing input
                failures += 1
                print("FAIL %s: %r" % (os.path.relpath(path, ROOT), exc))
        print("%-8s replayed %d inputs" % (name, len(inputs(name))))
    return failures


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        name = argv[1]
        rest = argv[3:] if argv[2:3] == ["--"] else argv[2:]
        return _child(name, rest)
    ap = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("harness", nargs="*", help="any of: %s (default: all)" % " ".join(HARNESSES))
    ap.add_argument("--minutes", type=float, help="total time, split over the harnesses")
    ap.add_argument("--seconds", type=float, help="time per harness")
    ap.add_argument("--replay", action="store_true", help="run seeds and crash inputs once, no fuzzing")
    ns = ap.parse_args(argv)
    names = ns.harness or HARNESSES
    for name in names:
        if name not in HARNESSES:
            ap.error("unknown harness %r (choose from %s)" % (name, ", ".join(HARNESSES)))
    if ns.replay:
        return 1 if replay(names) else 0
    per = ns.seconds if ns.seconds else (ns.minutes or 2.0) * 60.0 / len(names)
    ok = True
    start = time.monotonic()
    for name in names:
        ok = fuzz(name, per)[0] and ok
    print("total %.0f s" % (time.monotonic() - start))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
