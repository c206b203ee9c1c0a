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
