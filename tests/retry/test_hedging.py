"""Hedging (gRFC A6 hedgingPolicy) seen from the server. grpcio's client
parses hedgingPolicy and then sends one attempt per call, so there is no
client reference here: the grpcpy clients (sync and aio) run against a
grpcio server and a grpcpy server, and the server's record of attempts
(arrival, grpc-previous-rpc-attempts, cancellation) is what is checked."""
import time

from .clients import service_config
from .service import UNARY, script


def hedging(max_attempts, delay, non_fatal=("UNAVAILABLE",)):
    return service_config(hedging={"maxAttempts": max_attempts, "hedgingDelay": delay,
                                   "nonFatalStatusCodes": list(non_fatal)})


def test_second_attempt_after_the_delay_wins_and_the_first_is_cancelled(server, grpcpy_connect, key):
    client = grpcpy_connect(server.target, hedging(2, "0.3s"))
    began = time.monotonic()
    result = client.unary(UNARY, key, script(hold=1), b"hedged", timeout=2)
    took = time.monotonic() - began
    assert (result.code, result.response) == ("OK", b"ok:hedged")
    assert result.trailing["x-attempt"] == "2"
    first, second = server.recorder.wait(key, lambda seen: len(seen) == 2 and seen[0].cancelled)
    # the winner was sent after the hedging delay: the call took at least
    # that long (measured at the client; the server's arrival times of the
    # two attempts can be skewed by a loaded machine)
    assert second.at > first.at and took >= 0.3
    assert [first.previous, second.previous] == [None, "1"]
    assert first.messages == second.messages == [b"hedged"]


def test_non_fatal_failure_sends_the_next_attempt_at_once(server, grpcpy_connect, key):
    # a hedging delay far beyond the deadline: only the non-fatal shortcut
    # can get the second attempt out in time
    client = grpcpy_connect(server.target, hedging(3, "30s"))
    result = client.unary(UNARY, key, script(fail=1), timeout=5)
    assert (result.code, result.trailing["x-attempt"]) == ("OK", "2")
    assert len(server.recorder.attempts(key)) == 2


def test_fatal_failure_ends_the_call(server, grpcpy_connect, key):
    client = grpcpy_connect(server.target, hedging(3, "0.2s"))
    result = client.unary(UNARY, key, script(fail=1, code="INVALID_ARGUMENT"))
    assert result.code == "INVALID_ARGUMENT"
    time.sleep(0.5)             # past two hedging delays: nothing more was sent
    assert len(server.recorder.attempts(key)) == 1


def test_all_attempts_failing_non_fatally_end_with_the_last_status(server, grpcpy_connect, key):
    client = grpcpy_connect(server.target, hedging(3, "0.05s"))
    result = client.unary(UNARY, key, script(fail="all"))
    assert result.code == "UNAVAILABLE"
    attempts = server.recorder.attempts(key)
    assert len(attempts) == 3
    assert [a.previous for a in attempts] == [None, "1", "2"]


def test_hedging_attempts_capped_at_five(server, grpcpy_connect, key):
    client = grpcpy_connect(server.target, hedging(10, "0.02s"))
    result = client.unary(UNARY, key, script(fail="all"))
    assert result.code == "UNAVAILABLE"
    assert len(server.recorder.attempts(key)) == 5
