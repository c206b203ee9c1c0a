"""What an mTLS server reports about its client's certificate: auth_context(),
peer_identities() and peer_identity_key(), for servers of both facades of
both implementations, against a grpcio sync server given the same
certificate (the reference), for certificates whose names trustme cannot
shape: only a common name, many alternative names of every kind, a kind
grpcio does not spell out, no names at all.

grpcio's rules, which the literal assertions below pin down:
* the identity is the subject alternative names when the certificate has
  any, in certificate order, DNS names, URIs, e-mail addresses and IP
  addresses (inet_ntop text) alike; other kinds read "other types of SAN";
* otherwise the subject's (first) common name - b"" when it has none;
* the names are also filed by kind: peer_dns, peer_uri, peer_email,
  peer_ip, and peer_spiffe_id for the one URI of a SPIFFE certificate.
"""
import pytest

from . import drive
from .certs import material

# auth context properties grpcpy reports; grpcio reports these and more
# (x509_subject, ssl_requested_server_name, ssl_negotiated_key_exchange_group)
COMPARED = ("transport_security_type", "security_level", "x509_common_name", "x509_subject_alternative_name",
            "peer_dns", "peer_uri", "peer_email", "peer_ip", "peer_spiffe_id", "x509_pem_cert", "ssl_tls_version",
            "ssl_session_reused")

EXPECTED = {
    "client": ([b"client.grpcpy.test"], "x509_subject_alternative_name"),
    "cn_only": ([b"only-cn.grpcpy.test"], "x509_common_name"),
    "many_sans": ([b"b.grpcpy.test", b"*.wild.grpcpy.test", b"10.1.2.3", b"2001:db8::1", b"::ffff:10.9.8.7",
                   b"spiffe://grpcpy.test/client", b"me@grpcpy.test", b"a.grpcpy.test"],
                  "x509_subject_alternative_name"),
    "odd_san": ([b"other types of SAN", b"odd.grpcpy.test"], "x509_subject_alternative_name"),
    "no_names": ([b""], "x509_common_name"),
}


def server_creds(m):
    mat = material()
    return m.ssl_server_credentials([mat["server"]], root_certificates=mat["ca"], require_client_auth=True)


def client_creds(cert):
    def make(m):
        mat = material()
        return m.ssl_channel_credentials(mat["ca"], *mat[cert])
    return make


def seen_by(server, cert, client="grpcio-sync"):
    with drive.serving(server, creds=server_creds) as port:
        out = drive.call(client, "localhost:%d" % port, client_creds(cert))
    assert out.code == "OK", out
    return drive.decode(out.value)


@pytest.mark.parametrize("cert", sorted(EXPECTED))
@pytest.mark.parametrize("server", drive.KINDS)
def test_peer_identity_matches_grpcio(server, cert):
    reference = seen_by("grpcio-sync", cert)
    got = seen_by(server, cert, client="grpcpy-aio" if server.startswith("grpcio") else "grpcio-sync")
    assert (got["ids"], got["key"]) == EXPECTED[cert]
    assert (reference["ids"], reference["key"]) == EXPECTED[cert]
    want = {k: v for k, v in reference["auth"].items() if k in COMPARED}
    assert {k: v for k, v in got["auth"].items() if k in COMPARED} == want


def test_peer_properties_by_kind_as_grpcio():
    got = seen_by("grpcio-sync", "many_sans")["auth"]
    assert got["peer_dns"] == [b"b.grpcpy.test", b"*.wild.grpcpy.test", b"a.grpcpy.test"]
    assert got["peer_ip"] == [b"10.1.2.3", b"2001:db8::1", b"::ffff:10.9.8.7"]
    assert got["peer_uri"] == got["peer_spiffe_id"] == [b"spiffe://grpcpy.test/client"]
    assert got["peer_email"] == [b"me@grpcpy.test"]
    assert got["x509_common_name"] == [b"grpcpy-many"]
