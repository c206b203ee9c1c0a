"""Transparent retry (gRFC A6): a request the server never processed (its
stream refused with REFUSED_STREAM, or above a GOAWAY's last stream id) is
sent again without counting against any retry policy, and without one.
The server is the h2-based peer of tests/retry/h2server.py; grpcio's client
against the same peer is the reference."""
import pytest

from .clients import RETRY_CONFIG
from .h2server import RefusingServer
from .service import UNARY, script


@pytest.fixture
def refusing():
    made = []

    def make(mode):
        made.append(RefusingServer(mode))
        return made[-1]
    yield make
    for server in made:
        server.close()


@pytest.mark.parametrize("config", [None, RETRY_CONFIG], ids=["no-policy", "retry-policy"])
def test_refused_stream_is_retried_on_the_connection(refusing, connect, client_impl, key, config):
    server = refusing("refuse")
    client = connect(server.target, config)
    result = client.unary(UNARY, key, script(), b"once")
    if client_impl == "grpcio":
        # grpcio (1.85) does not retry a refused stream transparently: with
        # no policy the call fails; a policy retries it as a failed attempt
        if config is None:
            assert (result.code, server.served) == ("UNAVAILABLE", [])
            return
        assert server.previous == ["1"]
    else:
        # A6: a stream the server refused was never processed; it is sent
        # again outside the policy's count of attempts
        assert server.previous == [None]
    assert (result.code, result.response) == ("OK", b"ok:once")
    assert server.served == [b"once"]
    assert [(n, what) for n, _, what in server.log] == [(0, "refused"), (0, "served")]


@pytest.mark.parametrize("config", [None, RETRY_CONFIG], ids=["no-policy", "retry-policy"])
def test_stream_above_goaway_last_stream_id_is_retried_on_a_new_connection(refusing, connect, key, config):
    server = refusing("goaway")
    client = connect(server.target, config)
    result = client.unary(UNARY, key, script(), b"once")
    assert (result.code, result.response) == ("OK", b"ok:once")
    assert server.served == [b"once"]
    assert server.previous == [None]          # not counted as an attempt
    (refused_on, refused), (served_on, served) = [(n, what) for n, _, what in server.log]
    assert (refused, served) == ("goaway", "served") and served_on != refused_on


@pytest.mark.parametrize("mode", ["goaway", "refuse"])
def test_enable_retries_zero_turns_transparent_retry_off(refusing, connect, key, mode):
    server = refusing(mode)
    client = connect(server.target, None, grpc__enable_retries=0)
    result = client.unary(UNARY, key, script(), b"once")
    assert result.code == "UNAVAILABLE"
    assert server.served == []
