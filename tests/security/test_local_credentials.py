"""Local credentials (grpc.local_channel_credentials / local_server_credentials)
over unix sockets (LocalConnectionType.UDS) and loopback TCP (LOCAL_TCP), for
clients and servers of both facades of both implementations; grpcio with
itself is the reference.

What grpcio does, and these tests hold grpcpy to:
* the server's auth context is {transport_security_type: [b"local"],
  security_level: [b"TSI_PRIVACY_AND_INTEGRITY"]}, the peer identity key is
  "transport_security_type" and the peer identities [b"local"];
* call credentials ride on local channels;
* each side checks its own connection type against the socket it got: a
  UDS channel refuses a TCP target, a LOCAL_TCP channel a unix socket, a UDS
  server a TCP connection, a LOCAL_TCP server a unix-socket connection. The
  call ends UNAVAILABLE and the server goes on serving.
"""
import itertools
import os
import shutil
import tempfile

import pytest

from . import drive

PAIRS = list(itertools.product(drive.KINDS, drive.KINDS))
PAIR_IDS = ["%s-to-%s" % pair for pair in PAIRS]
LOCAL_AUTH = {"transport_security_type": [b"local"], "security_level": [b"TSI_PRIVACY_AND_INTEGRITY"]}
_names = itertools.count()


@pytest.fixture
def sock_dir():
    # pytest's tmp_path can be longer than a unix socket path may be
    folder = tempfile.mkdtemp(prefix="grpcpy-", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def unix_address(folder, flavour):
    if flavour == "unix-abstract":
        return "unix-abstract:grpcpy-test-%d-%d" % (os.getpid(), next(_names))
    return "unix:%s/s%d.sock" % (folder, next(_names))


def server_creds(kind):
    return lambda m: m.local_server_credentials(getattr(m.LocalConnectionType, kind))


def channel_creds(kind, token=None):
    def make(m):
        creds = m.local_channel_credentials(getattr(m.LocalConnectionType, kind))
        if token is not None:
            creds = m.composite_channel_credentials(creds, m.access_token_call_credentials(token))
        return creds
    return make


@pytest.mark.parametrize("flavour", ["unix", "unix-abstract"])
@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_uds_local_credentials(pair, flavour, sock_dir):
    client, server = pair
    address = unix_address(sock_dir, flavour)
    with drive.serving(server, address, server_creds("UDS")):
        for shape in ("unary_unary", "stream_stream"):
            out = drive.call(client, address, channel_creds("UDS", token="uds"), shape=shape)
            assert out.code == "OK", out
            got = drive.decode(out.value if shape == "unary_unary" else out.value[0])
            assert got["auth"] == LOCAL_AUTH
            assert (got["ids"], got["key"]) == ([b"local"], "transport_security_type")
            assert got["peer"] == "unix:"
            assert ("authorization", "Bearer uds") in got["md"]


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_loopback_tcp_local_credentials(pair):
    client, server = pair
    with drive.serving(server, "127.0.0.1:0", server_creds("LOCAL_TCP")) as port:
        out = drive.call(client, "127.0.0.1:%d" % port, channel_creds("LOCAL_TCP", token="tcp"))
        assert out.code == "OK", out
        got = drive.decode(out.value)
        assert got["auth"] == LOCAL_AUTH
        assert (got["ids"], got["key"]) == ([b"local"], "transport_security_type")
        assert got["peer"].startswith("ipv4:127.0.0.1:")
        assert ("authorization", "Bearer tcp") in got["md"]
        # per-call credentials too (grpc.aio's UsageError is for insecure_channel only)
        out = drive.call(client, "127.0.0.1:%d" % port, channel_creds("LOCAL_TCP"),
                         credentials=lambda m: m.access_token_call_credentials("per-call"))
        assert out.code == "OK", out
        assert ("authorization", "Bearer per-call") in drive.decode(out.value)["md"]


# (server type, client type, transport): every one refused by one side or both
MISMATCHES = {
    "UDS server, LOCAL_TCP channel, unix socket": ("UDS", "LOCAL_TCP", "unix"),
    "LOCAL_TCP server, UDS channel, unix socket": ("LOCAL_TCP", "UDS", "unix"),
    "LOCAL_TCP server and channel, unix socket": ("LOCAL_TCP", "LOCAL_TCP", "unix"),
    "UDS server, LOCAL_TCP channel, TCP": ("UDS", "LOCAL_TCP", "tcp"),
    "LOCAL_TCP server, UDS channel, TCP": ("LOCAL_TCP", "UDS", "tcp"),
    "UDS server and channel, TCP": ("UDS", "UDS", "tcp"),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_local_connection_type_mismatch_is_refused(pair, case, sock_dir):
    client, server = pair
    server_type, client_type, transport = MISMATCHES[case]
    address = unix_address(sock_dir, "unix") if transport == "unix" else "127.0.0.1:0"
    with drive.serving(server, address, server_creds(server_type)) as port:
        target = address if transport == "unix" else "127.0.0.1:%d" % port
        out = drive.call(client, target, channel_creds(client_type), timeout=10)
        assert out.code == "UNAVAILABLE", out
        if (server_type == "UDS") == (transport == "unix"):
            # the server's own type fits its socket: it serves a channel whose type does too
            out = drive.call(client, target, channel_creds(server_type))
            assert out.code == "OK", out
            assert drive.decode(out.value)["auth"] == LOCAL_AUTH
