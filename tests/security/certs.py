"""Certificates made at test time with trustme (a CA, server and client
leaves), plus an expired one and one from an unrelated CA. Leaves whose names
trustme cannot shape (a subject with only a common name, several kinds of
subject alternative names, none at all) are built with `cryptography` and
signed by the same CA."""
import datetime
import functools
import ipaddress

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@functools.lru_cache(maxsize=None)
def material():
    ca = trustme.CA()
    other_ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1", "::1", "grpcpy.test")
    client = ca.issue_cert("client.grpcpy.test", common_name="grpcpy-client")
    expired = ca.issue_cert("localhost", "127.0.0.1",
                            not_before=datetime.datetime(2000, 1, 1), not_after=datetime.datetime(2001, 1, 1))
    stranger = other_ca.issue_cert("localhost", "127.0.0.1")
    rotated = ca.issue_cert("localhost", "127.0.0.1", "rotated.grpcpy.test")
    out = {
        "ca": ca.cert_pem.bytes(),
        "other_ca": other_ca.cert_pem.bytes(),
        "server": _pair(server),
        "client": _pair(client),
        "expired": _pair(expired),
        "stranger": _pair(stranger),
        "rotated": _pair(rotated),
    }
    signer = (serialization.load_pem_private_key(ca.private_key_pem.bytes(), None),
              x509.load_pem_x509_certificate(ca.cert_pem.bytes()))
    cn = x509.NameAttribute(NameOID.COMMON_NAME, "grpcpy-many")
    out.update({
        # a subject common name and no subject alternative name extension
        "cn_only": _leaf(signer, [x509.NameAttribute(NameOID.COMMON_NAME, "only-cn.grpcpy.test")]),
        # every kind of name grpcio reports, in an order that is not sorted
        "many_sans": _leaf(signer, [cn], [
            x509.DNSName("b.grpcpy.test"), x509.DNSName("*.wild.grpcpy.test"),
            x509.IPAddress(ipaddress.ip_address("10.1.2.3")), x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
            x509.IPAddress(ipaddress.ip_address("::ffff:10.9.8.7")),
            x509.UniformResourceIdentifier("spiffe://grpcpy.test/client"), x509.RFC822Name("me@grpcpy.test"),
            x509.DNSName("a.grpcpy.test")]),
        # a kind of alternative name grpcio does not spell out
        "odd_san": _leaf(signer, [x509.NameAttribute(NameOID.COMMON_NAME, "odd")], [
            x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "inner")])),
            x509.DNSName("odd.grpcpy.test")]),
        # neither a common name nor alternative names
        "no_names": _leaf(signer, [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "grpcpy")]),
        # a server certificate for one name only (picked by SNI)
        "sni_only": _leaf(signer, [x509.NameAttribute(NameOID.COMMON_NAME, "sni")],
                          [x509.DNSName("sni.grpcpy.test")]),
    })
    return out


def _pair(leaf):
    return (leaf.private_key_pem.bytes(), b"".join(blob.bytes() for blob in leaf.cert_chain_pems))


def _leaf(signer, subject, sans=None):
    ca_key, ca_cert = signer
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name(subject))
               .issuer_name(ca_cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(datetime.datetime(2000, 1, 1))
               .not_valid_after(datetime.datetime(3000, 1, 1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))
