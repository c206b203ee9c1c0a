"""TLS peers that misbehave in the handshake (tests/security/rawpeers.py),
against clients and servers of both facades of both implementations;
grpcio's clients and servers are the reference.

Clients (grpcio's behaviour): a server that ends or breaks the handshake
(closes after the ClientHello, resets, answers with something that is not
TLS, sends half of its first flight and closes) fails the call UNAVAILABLE
at once; one that accepts and then stalls (never speaks, or stops in the
middle of its first flight) leaves the call to its deadline:
DEADLINE_EXCEEDED, or UNAVAILABLE when the connect timeout
(grpc.min_reconnect_backoff_ms) ends the attempt first. No call outlives
its deadline (drive.call fails a call that hangs).

Servers: TCP clients that stall the TLS handshake (silent, half a
ClientHello, a ClientHello and then nothing) do not keep a server from
serving everyone else - the sync server's accept loop included.
"""
import pytest

from . import drive
from .certs import material
from .rawpeers import HOSTILE_MODES, HostileServer, stall_clients

BREAKS = ("close after ClientHello", "reset", "not TLS", "half ServerHello then close")
STALLS = ("half ServerHello then stall", "silent")
assert set(BREAKS + STALLS) == set(HOSTILE_MODES)


def tls(m):
    return m.ssl_channel_credentials(material()["ca"])


@pytest.mark.parametrize("mode", HOSTILE_MODES)
@pytest.mark.parametrize("client", drive.KINDS)
def test_client_against_hostile_server(client, mode):
    with HostileServer(mode, material()["server"]) as server:
        out = drive.call(client, "localhost:%d" % server.port, tls, timeout=1)
        assert out.code == ("UNAVAILABLE" if mode in BREAKS else "DEADLINE_EXCEEDED"), out


@pytest.mark.parametrize("client", drive.KINDS)
def test_wait_for_ready_retries_a_broken_handshake_until_the_deadline(client):
    with HostileServer("half ServerHello then close", material()["server"]) as server:
        out = drive.call(client, "localhost:%d" % server.port, tls, timeout=1, wait_for_ready=True)
        assert out.code == "DEADLINE_EXCEEDED", out


@pytest.mark.parametrize("mode", STALLS)
@pytest.mark.parametrize("client", drive.KINDS)
def test_connect_timeout_ends_a_stalled_handshake(client, mode):
    """A stalled handshake is one connection attempt: it times out at the
    connect timeout, well before a far deadline, and the call fails."""
    with HostileServer(mode, material()["server"]) as server:
        out = drive.call(client, "localhost:%d" % server.port, tls, timeout=30,
                         options=[("grpc.min_reconnect_backoff_ms", 500), ("grpc.initial_reconnect_backoff_ms", 500)])
        assert out.code == "UNAVAILABLE", out


def server_creds(m):
    return m.ssl_server_credentials([material()["server"]])


@pytest.mark.parametrize("server", drive.KINDS)
def test_server_serves_others_while_clients_stall_the_handshake(server):
    with drive.serving(server, creds=server_creds) as port:
        stalled = stall_clients(port, per_mode=4)
        try:
            for client in ("grpcio-sync", "grpcpy-sync", "grpcpy-aio"):
                out = drive.call(client, "localhost:%d" % port, tls, timeout=8)
                assert out.code == "OK", (client, out)
            stalled += stall_clients(port, per_mode=4)
            out = drive.call("grpcio-sync", "localhost:%d" % port, tls, timeout=8)
            assert out.code == "OK", out
        finally:
            for sock in stalled:
                sock.close()
        # and after they went away
        out = drive.call("grpcpy-sync", "localhost:%d" % port, tls, timeout=8)
        assert out.code == "OK", out
