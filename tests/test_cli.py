"""The README's main job: `grpcpy` runs the self-check and exits 0."""
import pathlib
import subprocess
import sys

import grpcpy

ROOT = pathlib.Path(grpcpy.__file__).resolve().parents[1]


def test_selfcheck_runs_every_layer():
    out = subprocess.run([sys.executable, "-m", "grpcpy", "selfcheck", "--seconds", "0.01"],
                         capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    for layer in ("HPACK", "frames", "message framing", "sans-IO core"):
        assert "check %-16s ok" % layer in out.stdout
    assert "selfcheck passed" in out.stdout


def test_demo_runs_four_call_types_through_both_apis():
    out = subprocess.run([sys.executable, "-m", "grpcpy", "demo", "--calls", "50"],
                         capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    for api in ("sync ", "aio  "):
        assert "%s unary          Echo('hello')        -> 'echo: hello'" % api in out.stdout
        assert "%s server stream  Count(5)             -> [1, 2, 3, 4, 5]" % api in out.stdout
        assert "%s client stream  Total(1..10)         -> 55" % api in out.stdout
        assert "%s bidi stream    Chat('a','b','c')    -> ['A', 'B', 'C']" % api in out.stdout
    assert "demo finished" in out.stdout
