"""Certificates made at test time with trustme (a CA, server and client
leaves), plus an expired one and one from an unrelated CA."""
import datetime
import functools

import trustme


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
    return {
        "ca": ca.cert_pem.bytes(),
        "other_ca": other_ca.cert_pem.bytes(),
        "server": _pair(server),
        "client": _pair(client),
        "expired": _pair(expired),
        "stranger": _pair(stranger),
        "rotated": _pair(rotated),
    }


def _pair(leaf):
    return (leaf.private_key_pem.bytes(), b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
