"""Retries (gRFC A6) seen from the server: each scenario runs with grpcio's
client (the reference), grpcpy's sync client and grpcpy.aio's, against a
grpcio server and a grpcpy server. The server counts the attempts of each
call, reads `grpc-previous-rpc-attempts` from each and notes when each
arrived (tests/retry/service.py); the client sees one call and its status.

Backoffs are short (50-200 ms); the only timings asserted are lower bounds
where the behaviour is the timing (pushback), with upper bounds no tighter
than several times the expected value."""
import time

import pytest

from .clients import retry_policy, service_config
from .service import COLLECT, ECHO, UNARY, script

RETRY = service_config(retry=retry_policy(max_attempts=4))


def previous(attempts):
    return [a.previous for a in attempts]


def after_first(n):
    """grpc-previous-rpc-attempts of n attempts: absent on the first, then 1, 2, ..."""
    return [None] + [str(i) for i in range(1, n)]


# ------------------------------------------------------------ how many attempts

@pytest.mark.parametrize("failures", [1, 3])
def test_fails_first_n_then_ok(server, connect, key, failures):
    client = connect(server.target, RETRY)
    result = client.unary(UNARY, key, script(fail=failures), b"hello")
    assert (result.code, result.response) == ("OK", b"ok:hello")
    assert result.trailing["x-attempt"] == str(failures + 1)
    attempts = server.recorder.attempts(key)
    assert len(attempts) == failures + 1
    assert previous(attempts) == after_first(failures + 1)
    assert [a.messages for a in attempts] == [[b"hello"]] * (failures + 1)


def test_failures_beyond_max_attempts_end_with_the_last_status(server, connect, key):
    client = connect(server.target, RETRY)
    result = client.unary(UNARY, key, script(fail=4))
    assert (result.code, result.details) == ("UNAVAILABLE", "attempt 4 failed")
    assert len(server.recorder.attempts(key)) == 4


def test_max_attempts_capped_at_five(server, connect, key):
    client = connect(server.target, service_config(retry=retry_policy(max_attempts=10, initial="0.01s",
                                                                      maximum="0.05s")))
    result = client.unary(UNARY, key, script(fail="all"))
    assert (result.code, result.details) == ("UNAVAILABLE", "attempt 5 failed")
    attempts = server.recorder.attempts(key)
    assert len(attempts) == 5
    assert previous(attempts) == after_first(5)


@pytest.mark.parametrize("code", ["INTERNAL", "UNKNOWN", "RESOURCE_EXHAUSTED"])
def test_non_retryable_code_is_not_retried(server, connect, key, code):
    client = connect(server.target, RETRY)
    result = client.unary(UNARY, key, script(fail=1, code=code))
    assert result.code == code
    assert len(server.recorder.attempts(key)) == 1


def test_every_listed_code_is_retried(server, connect, key):
    client = connect(server.target, service_config(retry=retry_policy(codes=("UNAVAILABLE", "ABORTED"))))
    result = client.unary(UNARY, key, script(fail=2, code="ABORTED"))
    assert result.code == "OK"
    assert len(server.recorder.attempts(key)) == 3


def test_enable_retries_zero_turns_retries_off(server, connect, key):
    client = connect(server.target, RETRY, grpc__enable_retries=0)
    result = client.unary(UNARY, key, script(fail=1))
    assert result.code == "UNAVAILABLE"
    assert len(server.recorder.attempts(key)) == 1


def test_no_retry_policy_no_retry(server, connect, key):
    client = connect(server.target)
    result = client.unary(UNARY, key, script(fail=1))
    assert result.code == "UNAVAILABLE"
    assert len(server.recorder.attempts(key)) == 1


# ------------------------------------------------------------ pushback

def test_pushback_delays_the_retry(server, connect, key):
    # the policy's own backoff is at most 50 ms; the server asks for 500
    client = connect(server.target, service_config(retry=retry_policy(initial="0.05s", maximum="0.05s")))
    result = client.unary(UNARY, key, script(fail=1, pushback=500))
    assert result.code == "OK"
    first, second = server.recorder.attempts(key)
    assert 0.45 <= second.at - first.at < 4.0
    assert [first.previous, second.previous] == [None, "1"]


@pytest.mark.parametrize("value", ["-1", "soon", "1.5", ""])
def test_negative_or_malformed_pushback_stops_retries(server, connect, client_impl, key, value):
    # A grpcio server sends any value it cannot read as an integer as
    # -9223372036854775808 (negative, so: no retry); a grpcpy server sends it
    # as given. grpcio's client then fails the stream INTERNAL in its header
    # parser, before any retry decision; grpcpy keeps the server's status.
    client = connect(server.target, RETRY)
    result = client.unary(UNARY, key, script(fail=1, pushback=value))
    malformed_on_the_wire = server.impl == "grpcpy" and value != "-1"
    assert result.code == ("INTERNAL" if malformed_on_the_wire and client_impl == "grpcio" else "UNAVAILABLE")
    assert len(server.recorder.attempts(key)) == 1


# ------------------------------------------------------------ commit points

@pytest.mark.parametrize("path", [UNARY, ECHO], ids=["unary", "bidi"])
def test_no_retry_after_response_headers(server, connect, key, path):
    client = connect(server.target, RETRY)
    if path == UNARY:
        result = client.unary(path, key, script(fail=1, headers=1))
    else:
        result = client.stream_stream(path, key, script(fail=1, headers=1), [b"one", b"two"])
    assert (result.code, result.details) == ("UNAVAILABLE", "attempt 1 failed")
    assert len(server.recorder.attempts(key)) == 1


REQUESTS = [b"first", b"", b"\x00\x01\xff" * 300, bytes(range(256)) * 40]


def test_client_stream_replayed_byte_exact(server, connect, key):
    client = connect(server.target, RETRY)
    result = client.stream_unary(COLLECT, key, script(fail=2), REQUESTS)
    assert (result.code, result.response) == ("OK", b"".join(REQUESTS))
    attempts = server.recorder.attempts(key)
    assert [a.messages for a in attempts] == [REQUESTS] * 3
    assert previous(attempts) == after_first(3)


def test_bidi_stream_replayed_byte_exact(server, connect, key):
    client = connect(server.target, RETRY)
    result = client.stream_stream(ECHO, key, script(fail=1), REQUESTS)
    assert (result.code, result.responses) == ("OK", REQUESTS)
    attempts = server.recorder.attempts(key)
    assert [a.messages for a in attempts] == [REQUESTS] * 2


def test_stream_beyond_the_retry_buffer_commits(server, connect, key):
    # 3 KiB of requests through a 1 KiB per-call buffer: no replay possible
    client = connect(server.target, RETRY, grpc__per_rpc_retry_buffer_size=1024)
    result = client.stream_unary(COLLECT, key, script(fail=1), [b"a" * 1024] * 3)
    assert result.code == "UNAVAILABLE"
    assert len(server.recorder.attempts(key)) == 1


@pytest.mark.parametrize("client_impl", ["grpcpy-sync", "grpcpy-aio"])
def test_stream_beyond_the_channels_retry_buffer_commits(server, connect, key):
    # grpc.retry_buffer_size (grpcpy's own): every call of the channel
    # together; a roomy per-call buffer does not help past it
    client = connect(server.target, RETRY, grpc__per_rpc_retry_buffer_size=64 * 1024,
                     grpc__retry_buffer_size=2048)
    result = client.stream_unary(COLLECT, key, script(fail=1), [b"a" * 1024] * 3)
    assert result.code == "UNAVAILABLE"
    assert len(server.recorder.attempts(key)) == 1
    # what the call kept is given back: the next call has the room again
    result = client.stream_unary(COLLECT, key + "-2", script(fail=1), [b"a" * 1024])
    assert (result.code, result.response) == ("OK", b"a" * 1024)
    assert len(server.recorder.attempts(key + "-2")) == 2


def test_stream_within_the_retry_buffer_is_retried(server, connect, key):
    client = connect(server.target, RETRY, grpc__per_rpc_retry_buffer_size=64 * 1024)
    result = client.stream_unary(COLLECT, key, script(fail=1), [b"a" * 1024] * 3)
    assert (result.code, result.response) == ("OK", b"a" * 3072)
    assert len(server.recorder.attempts(key)) == 2


# ------------------------------------------------------------ throttling

@pytest.mark.parametrize("server_impl", ["grpcio", "grpcpy"])
def test_throttling_stops_retries_once_the_bucket_drains(fresh_server, connect, key, server_impl):
    # maxTokens 6: retries go on while more than 3 tokens are left; each
    # failed attempt takes one. The first call fails 3 times (6 -> 3) and
    # stops there, below its maxAttempts; the next is not retried at all.
    server = fresh_server(server_impl)  # a bucket of its own (grpcio keeps one per server name)
    client = connect(server.target, service_config(retry=retry_policy(max_attempts=5),
                                                   throttling={"maxTokens": 6, "tokenRatio": 0.5}))
    first = client.unary(UNARY, key + "-1", script(fail="all"))
    assert first.code == "UNAVAILABLE"
    assert len(server.recorder.attempts(key + "-1")) == 3
    second = client.unary(UNARY, key + "-2", script(fail="all"))
    assert second.code == "UNAVAILABLE"
    assert len(server.recorder.attempts(key + "-2")) == 1
    # successes put tokenRatio back each: 5 of them refill 2.5 tokens (2 -> 4.5)
    for i in range(5):
        assert client.unary(UNARY, "%s-ok%d" % (key, i), script()).code == "OK"
    third = client.unary(UNARY, key + "-3", script(fail=1))
    assert third.code == "OK"
    assert len(server.recorder.attempts(key + "-3")) == 2


# ------------------------------------------------------------ deadline, cancel
# (the client's doing alone: one server implementation is enough)

def test_deadline_spans_all_attempts(grpcio_server, connect, key):
    server = grpcio_server
    # every failure asks for 400 ms: a 0.6 s deadline leaves room for two
    # attempts at most, never for the five the policy allows (a first call
    # connects the channel, so the deadline is all the attempts')
    client = connect(server.target, service_config(retry=retry_policy(max_attempts=5)))
    assert client.unary(UNARY, key + "-warm", script()).code == "OK"
    result = client.unary(UNARY, key, script(fail="all", pushback=400), timeout=0.6)
    assert result.code == "DEADLINE_EXCEEDED"
    assert 1 <= len(server.recorder.attempts(key)) <= 2


def test_cancel_during_backoff(grpcio_server, connect, key):
    server = grpcio_server
    client = connect(server.target, RETRY)
    cancel, finish = client.start_unary(UNARY, key, script(fail="all", pushback=1200), timeout=10)
    first, = server.recorder.wait(key, lambda seen: seen and seen[0].done)
    time.sleep(0.2)               # the failure reaches the client; the retry waits 1.2 s
    cancel()
    assert finish().code == "CANCELLED"
    # past the pushback, and some: still the one attempt
    left = first.at + 1.8 - time.monotonic()
    if left > 0:
        time.sleep(left)
    assert len(server.recorder.attempts(key)) == 1
