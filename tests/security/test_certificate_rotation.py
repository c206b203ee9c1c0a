"""grpc.dynamic_ssl_server_credentials: certificates replaced while the server
runs, on servers of both facades of both implementations (grpcio's are the
reference), with clients of both implementations.

grpcio asks the fetcher before each new connection's handshake and keeps
the certificates it has when the fetcher returns None, raises, or returns
something that is not a ServerCertificateConfiguration. Connections made
before a rotation are not touched by it. A configuration's root
certificates verify client certificates (mTLS) and are rotated with it; a
configuration with several key/certificate pairs serves the one that names
the server name the client asks for (SNI).
"""
import threading

import pytest

from . import drive
from .certs import material

CLIENTS = ("grpcio-sync", "grpcpy-sync", "grpcpy-aio")


class Fetcher:
    """The certificate configuration fetcher: returns (or raises) what the
    test put in `value`; counts its calls."""

    def __init__(self):
        self.value = None
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.calls += 1
            value = self.value
        if isinstance(value, Exception):
            raise value
        return value


def reach(client, port, name, client_cert=None):
    """A call that asks for (and verifies) server name `name`."""
    def creds(m):
        mat = material()
        return m.ssl_channel_credentials(mat["ca"], *(mat[client_cert] if client_cert else (None, None)))
    return drive.call(client, "127.0.0.1:%d" % port, creds, options=[("grpc.ssl_target_name_override", name)],
                      timeout=10)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server", drive.KINDS)
def test_rotation_without_restart(server, client):
    mat = material()
    fetcher = Fetcher()

    def creds(m):
        return m.dynamic_ssl_server_credentials(m.ssl_server_certificate_configuration([mat["server"]]), fetcher)

    with drive.serving(server, creds=creds) as port:
        assert reach(client, port, "localhost").code == "OK"
        # the first certificate does not name rotated.grpcpy.test
        assert reach(client, port, "rotated.grpcpy.test").code == "UNAVAILABLE"
        # a fetcher that fails, or hands back something else, changes nothing
        for bad in (RuntimeError("no certificates today"), "not a configuration"):
            fetcher.value = bad
            assert reach(client, port, "localhost").code == "OK", bad
            assert reach(client, port, "rotated.grpcpy.test").code == "UNAVAILABLE", bad
        calls = fetcher.calls
        top = drive.top(server)
        fetcher.value = top.ssl_server_certificate_configuration([mat["rotated"]])
        assert reach(client, port, "rotated.grpcpy.test").code == "OK"
        assert fetcher.calls > calls      # consulted for the new connection
        # None keeps the certificates of the last rotation
        fetcher.value = None
        assert reach(client, port, "rotated.grpcpy.test").code == "OK"
        # several pairs: the one naming the requested server name is served
        fetcher.value = top.ssl_server_certificate_configuration([mat["server"], mat["sni_only"]])
        assert reach(client, port, "sni.grpcpy.test").code == "OK"
        assert reach(client, port, "grpcpy.test").code == "OK"
        assert reach(client, port, "rotated.grpcpy.test").code == "UNAVAILABLE"


@pytest.mark.parametrize("server", drive.KINDS)
def test_connection_made_before_rotation_keeps_working(server):
    mat = material()
    fetcher = Fetcher()

    def creds(m):
        return m.dynamic_ssl_server_credentials(m.ssl_server_certificate_configuration([mat["server"]]), fetcher)

    with drive.serving(server, creds=creds) as port:
        for client in (drive.top("grpcio-sync"), drive.top("grpcpy-sync")):
            with client.secure_channel("localhost:%d" % port, client.ssl_channel_credentials(mat["ca"])) as ch:
                who = ch.unary_unary("/T/Who")
                assert drive.decode(who(b"", timeout=10))["auth"]["transport_security_type"] == [b"ssl"]
                fetcher.value = drive.top(server).ssl_server_certificate_configuration([mat["stranger"]])
                # the open connection goes on; a new one gets a certificate this client does not trust
                assert drive.decode(who(b"", timeout=10))["auth"]["transport_security_type"] == [b"ssl"]
                assert reach("grpcio-sync", port, "localhost").code == "UNAVAILABLE"
            fetcher.value = drive.top(server).ssl_server_certificate_configuration([mat["server"]])


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server", drive.KINDS)
def test_rotation_replaces_client_roots(server, client):
    """mTLS: the configuration's root certificates decide which client
    certificates are accepted, and rotate with it."""
    mat = material()
    fetcher = Fetcher()

    def creds(m):
        first = m.ssl_server_certificate_configuration([mat["server"]], root_certificates=mat["ca"])
        return m.dynamic_ssl_server_credentials(first, fetcher, require_client_authentication=True)

    with drive.serving(server, creds=creds) as port:
        out = reach(client, port, "localhost", client_cert="client")
        assert out.code == "OK", out
        assert drive.decode(out.value)["ids"] == [b"client.grpcpy.test"]
        assert reach(client, port, "localhost", client_cert="stranger").code == "UNAVAILABLE"
        assert reach(client, port, "localhost").code == "UNAVAILABLE"     # no client certificate
        fetcher.value = drive.top(server).ssl_server_certificate_configuration(
            [mat["server"]], root_certificates=mat["other_ca"])
        assert reach(client, port, "localhost", client_cert="stranger").code == "OK"
        assert reach(client, port, "localhost", client_cert="client").code == "UNAVAILABLE"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server", drive.KINDS)
def test_several_certificates_chosen_by_sni(server, client):
    """ssl_server_credentials with several pairs (no rotation): the client's
    server name picks the certificate, the first one serves any other name."""
    mat = material()
    with drive.serving(server, creds=lambda m: m.ssl_server_credentials([mat["server"], mat["sni_only"]])) as port:
        assert reach(client, port, "sni.grpcpy.test").code == "OK"
        assert reach(client, port, "localhost").code == "OK"
        assert reach(client, port, "unknown.grpcpy.test").code == "UNAVAILABLE"
