"""perf/server_memory.py runs (a tiny N, one run), so it cannot rot: every
implementation measured, every figure a number."""
import json
import math
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_server_memory_script_runs():
    done = subprocess.run([sys.executable, str(ROOT / "perf" / "server_memory.py"), "--connections", "3",
                           "--calls", "3", "--runs", "1", "--settle", "0.05", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert sorted(out["results"]) == ["grpcio-aio", "grpcio-sync", "grpcpy-aio", "grpcpy-sync"]
    for name, row in out["results"].items():
        for key in ("kib_per_connection", "kib_per_call", "kib_per_silent_call"):
            assert isinstance(row[key], (int, float)) and math.isfinite(row[key]), (name, key, row[key])
        # a blocked sync handler holds a worker thread; an aio one does not
        assert row["threads_calls"] >= 3 if name.endswith("sync") else row["threads_calls"] >= 1
    # a call waiting for its request holds no worker in grpcpy (grpcio's sync server gives it one)
    assert out["results"]["grpcpy-sync"]["threads_silent_calls"] < out["results"]["grpcpy-sync"]["threads_calls"]


def test_channel_churn_script_runs():
    """perf/channel_churn.py with a few cycles prints both growth figures."""
    done = subprocess.run([sys.executable, str(ROOT / "perf" / "channel_churn.py"), "--cycles", "20"],
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("client RSS after 20 grpcpy.aio channel cycles: closed ")
    assert " MiB, dropped " in done.stdout
