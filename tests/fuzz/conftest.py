"""The fuzz tests run the harnesses in fuzz/ on grpcpy._cext_checked, the
bounds-checked build of the core. It is built here when missing or out of
date (setup.py does nothing when it is current), so a fresh clone needs no
extra step."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def checked_core():
    env = dict(os.environ, GRPCPY_CHECKED="1")
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    import importlib

    import grpcpy
    importlib.invalidate_caches()
    module = importlib.import_module("grpcpy._cext_checked")
    assert module is not grpcpy._cext
    return module
