"""Every program in examples/ runs from a fresh interpreter and prints
what it promises."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(name):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True,
                          timeout=60, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_resolver_and_aio_run():
    lines = _run("resolver_and_aio_run.py")
    assert lines[0] == "sync: echo:hello"
    # grpcpy.aio.run picks uvloop when it is installed (it is, for the tests)
    assert lines[1] == "aio (uvloop loop): echo:hello"


def test_keepalive():
    lines = _run("keepalive.py")
    assert lines == ["call across the server's max_connection_age: done after 1.0 s",
                     "next call: done after 0 s",
                     "connections the server saw: 2"]
