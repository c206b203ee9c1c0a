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


def test_graceful_stop():
    assert _run("graceful_stop.py") == ["short deadline: DEADLINE_EXCEEDED",
                                        "in flight during the stop: done after 0.3 s",
                                        "after the stop: UNAVAILABLE"]


def test_server_stream_limits():
    lines = _run("server_stream_limits.py")
    assert lines[0] in ["12 calls on one channel: 12 succeeded, at most %d ran at once" % n for n in (1, 2, 3)]
    assert lines[1:] == ["while a request was on its way: done:quick", "then: done:late"]


def test_fork_workers():
    assert _run("fork_workers.py") == [
        "parent: echo:before fork",
        "workers ok: 3 of 3",
        "parent: echo:after fork",
    ]


def test_keepalive():
    lines = _run("keepalive.py")
    assert lines == ["call across the server's max_connection_age: done after 1.0 s",
                     "next call: done after 0 s",
                     "connections the server saw: 2"]
