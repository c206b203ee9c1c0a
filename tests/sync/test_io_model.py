"""The threaded facade's I/O model: one loop thread per process, whatever
the number of connections; channels dropped without close() are released;
fork and gevent. Each case runs tests/sync/io_programs.py in a process of
its own, so the counts see no other test's threads or sockets."""
import json
import os
import subprocess
import sys

import pytest

PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "io_programs.py")


def run(*args, timeout=120):
    out = subprocess.run([sys.executable, PROGRAM] + [str(a) for a in args], capture_output=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-3000:]
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def test_dropped_channels_leave_no_thread_or_socket():
    got = run("dropped", 100)
    # grpcio: +0; before the loop, each channel kept two threads and three fds
    assert got["threads"] == got["base_threads"], got
    assert got["fds"] == got["base_fds"], got
    assert got["peak_threads"] <= got["base_threads"] + 2, got


def test_idle_connections_take_no_thread():
    got = run("idle", 1000)
    assert got["connections"] == 1000 and got["answered"] == 1000 and got["works"], got
    assert got["threads"] <= got["base_threads"] + 1, got
    # one descriptor per connection on each side (the clients are in the same process)
    assert got["fds"] <= got["base_fds"] + 2 * 1000 + 5, got


def test_fork_child_uses_inherited_and_new_channels_parent_undisturbed():
    got = run("fork")
    child = got["child"]
    assert got["child_status"] == 0, got
    # the inherited channel connects again in the child (as grpcio's does)
    assert child["inherited"] == "child", got
    assert child["inherited_seconds"] < 5, got
    assert child["new"] == "new", got
    # the child wrote nothing on the parent's connection
    assert got["parent_ok"] == 50, got


def test_gevent_monkey_patched_fifty_greenlet_calls():
    pytest.importorskip("gevent")
    got = run("gevent", 50)
    assert got == {"ok": 50, "n": 50}


def test_fork_inherited_aio_channel_fails_at_once_parent_undisturbed():
    got = run("aio-fork")
    child = got["child"]
    assert got["child_status"] == 0, got
    # an asyncio channel cannot cross fork(): a clear error at once
    assert child["inherited"].startswith("error StatusCode.UNAVAILABLE: this grpcpy.aio channel was created in "
                                         "another process"), got
    assert child["inherited_seconds"] < 5, got
    assert child["new"] == "new", got
    assert got["parent_ok"] == 50, got


def test_connect_to_a_silent_peer_ends_at_the_attempt_deadline():
    """The loop's timers end a connect whose peer never sends the HTTP/2
    preface (the connection attempt is closed, the call fails UNAVAILABLE,
    not at its own deadline). Which timer speaks first, the attempt's or
    the channel's, depends on the machine's load."""
    import socket

    import grpcpy

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    options = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
               ("grpc.max_reconnect_backoff_ms", 100)]
    try:
        with grpcpy.insecure_channel("127.0.0.1:%d" % listener.getsockname()[1], options=options) as ch:
            with pytest.raises(grpcpy.RpcError) as info:
                ch.unary_unary("/t.S/Echo")(b"x", timeout=10)
        assert info.value.code() == grpcpy.StatusCode.UNAVAILABLE
        assert "preface" in info.value.details() or "timed out" in info.value.details()
    finally:
        listener.close()
