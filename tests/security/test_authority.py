"""grpc.default_authority and grpc.ssl_target_name_override: the `:authority`
a server receives, the server name a TLS client asks for (SNI) and verifies,
and the service URL call credentials see - for clients of both facades of
both implementations against raw HTTP/2 servers that record them
(tests/security/rawpeers.H2Recorder; a gRPC servicer never sees
`:authority`). grpcio's clients are the reference.

What grpcio does:
* `:authority` is grpc.default_authority when set, else
  grpc.ssl_target_name_override when set (on any channel, TLS or not),
  else the target's authority;
* TLS asks for and verifies ssl_target_name_override when set, else the
  host part of the authority;
* with an override in force, a call whose authority is not the verified
  name must still be one the server certificate names (port aside), else
  it fails UNAUTHENTICATED "call host does not match SSL server name"
  without reaching the server.
"""
import pytest

import grpc

from . import drive
from .certs import material
from .rawpeers import H2Recorder

TLS_CASES = {
    # name: (target host, options, (code, :authority or None, SNI)); {port} is the server's port
    "plain target": ("localhost", {}, ("OK", "localhost:{port}", "localhost")),
    "IP target": ("127.0.0.1", {}, ("OK", "127.0.0.1:{port}", None)),
    "default authority": ("127.0.0.1", {"grpc.default_authority": "grpcpy.test"}, ("OK", "grpcpy.test", "grpcpy.test")),
    "default authority with port": ("127.0.0.1", {"grpc.default_authority": "grpcpy.test:9"},
                                    ("OK", "grpcpy.test:9", "grpcpy.test")),
    "default authority not in certificate": ("127.0.0.1", {"grpc.default_authority": "other.example"},
                                             ("UNAVAILABLE", None, "other.example")),
    "override": ("127.0.0.1", {"grpc.ssl_target_name_override": "grpcpy.test"},
                 ("OK", "grpcpy.test", "grpcpy.test")),
    "override on a name target": ("localhost", {"grpc.ssl_target_name_override": "grpcpy.test"},
                                  ("OK", "grpcpy.test", "grpcpy.test")),
    "override and default authority naming the server": (
        "127.0.0.1", {"grpc.ssl_target_name_override": "localhost", "grpc.default_authority": "grpcpy.test:9"},
        ("OK", "grpcpy.test:9", "localhost")),
    "override and default authority host": (
        "127.0.0.1", {"grpc.ssl_target_name_override": "grpcpy.test", "grpc.default_authority": "foo.example"},
        ("OK", "foo.example", "grpcpy.test")),
    "override and default authority not in certificate": (
        "127.0.0.1", {"grpc.ssl_target_name_override": "grpcpy.test", "grpc.default_authority": "foo.example:1234"},
        ("UNAUTHENTICATED", None, "grpcpy.test")),
}


class RecordingPlugin(grpc.AuthMetadataPlugin):
    def __init__(self):
        self.urls = []

    def __call__(self, context, callback):
        self.urls.append(context.service_url)
        callback((), None)


@pytest.fixture(scope="module")
def tls_recorder():
    with H2Recorder(material()["server"]) as recorder:
        yield recorder


@pytest.mark.parametrize("case", sorted(TLS_CASES))
@pytest.mark.parametrize("client", drive.KINDS)
def test_tls_authority_and_server_name(client, case, tls_recorder):
    host, options, (code, authority, sni) = TLS_CASES[case]
    port = tls_recorder.port
    plugin = RecordingPlugin()
    before = len(tls_recorder.requests)

    def creds(m):
        return m.composite_channel_credentials(m.ssl_channel_credentials(material()["ca"]),
                                               m.metadata_call_credentials(plugin))

    out = drive.call(client, "%s:%d" % (host, port), creds, options=list(options.items()), timeout=10)
    assert out.code == code, out
    seen = tls_recorder.requests[before:]
    if code == "UNAUTHENTICATED":
        assert out.value == "call host does not match SSL server name"
    if code != "OK":
        assert seen == []
        return
    assert out.value == b"ok"
    want = authority.format(port=port)
    assert [(s, h[":authority"]) for s, h in seen] == [(sni, want)]
    # call credentials see the authority in the service URL
    assert plugin.urls == ["https://%s/T" % want]


PLAIN_CASES = {
    "plain target": ({}, "127.0.0.1:{port}"),
    "default authority": ({"grpc.default_authority": "da.grpcpy.test"}, "da.grpcpy.test"),
    "override": ({"grpc.ssl_target_name_override": "ovr.grpcpy.test"}, "ovr.grpcpy.test"),
    "both": ({"grpc.ssl_target_name_override": "ovr.grpcpy.test", "grpc.default_authority": "da.grpcpy.test:5"},
             "da.grpcpy.test:5"),
}


@pytest.mark.parametrize("security", ["insecure", "local"])
@pytest.mark.parametrize("case", sorted(PLAIN_CASES))
@pytest.mark.parametrize("client", drive.KINDS)
def test_plaintext_authority(client, case, security):
    options, authority = PLAIN_CASES[case]
    creds = (lambda m: m.local_channel_credentials()) if security == "local" else None
    with H2Recorder() as recorder:
        out = drive.call(client, "127.0.0.1:%d" % recorder.port, creds, options=list(options.items()))
        assert out == ("OK", b"ok")
        assert [h[":authority"] for _, h in recorder.requests] == [authority.format(port=recorder.port)]
