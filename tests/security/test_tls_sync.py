"""TLS, mTLS and call credentials for the threaded API: grpcpy against grpcio
in both directions (grpcio with itself as the reference)."""
from concurrent import futures

import grpc
import pytest

import grpcpy

from .certs import material

PAIRS = [("grpcio", "grpcpy"), ("grpcpy", "grpcio"), ("grpcpy", "grpcpy"), ("grpcio", "grpcio")]
IDS = ["grpcio-to-grpcpy", "grpcpy-to-grpcio", "grpcpy-to-grpcpy", "grpcio-to-grpcio"]
RPC_ERRORS = (grpc.RpcError, grpcpy.RpcError)


def mod(impl):
    return grpc if impl == "grpcio" else grpcpy


def whoami(request, context):
    md = dict(context.invocation_metadata())
    return repr((sorted(context.auth_context().get("transport_security_type", [])), context.peer_identities(),
                 context.peer_identity_key(), md.get("authorization"))).encode()


def start(impl, creds=None):
    m = mod(impl)
    server = m.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((m.method_handlers_generic_handler("T", {
        "Who": m.unary_unary_rpc_method_handler(whoami),
        "Count": m.unary_stream_rpc_method_handler(lambda r, c: iter([b"0", b"1", b"2"])),
    }),))
    port = server.add_secure_port("127.0.0.1:0", creds(m)) if creds else server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def server_creds(name="server", client_auth=False):
    def make(m):
        mat = material()
        return m.ssl_server_credentials([mat[name]], root_certificates=mat["ca"] if client_auth else None,
                                        require_client_auth=client_auth)
    return make


def channel_creds(m, roots="ca", client=None):
    mat = material()
    key, chain = mat[client] if client else (None, None)
    return m.ssl_channel_credentials(mat[roots], key, chain)


def who(channel, **kw):
    return eval(channel.unary_unary("/T/Who")(b"", timeout=10, **kw))


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_tls_and_mtls(pair):
    cm = mod(pair[0])
    server, port = start(pair[1], server_creds())
    try:
        with cm.secure_channel("localhost:%d" % port, channel_creds(cm)) as ch:
            assert who(ch) == ([b"ssl"], None, None, None)
            assert list(ch.unary_stream("/T/Count")(b"")) == [b"0", b"1", b"2"]
    finally:
        server.stop(None)
    server, port = start(pair[1], server_creds(client_auth=True))
    try:
        with cm.secure_channel("localhost:%d" % port, channel_creds(cm, client="client")) as ch:
            kinds, ids, key, _ = who(ch)
            assert (kinds, ids, key) == ([b"ssl"], [b"client.grpcpy.test"], "x509_subject_alternative_name")
        with cm.secure_channel("localhost:%d" % port, channel_creds(cm)) as ch:
            with pytest.raises(RPC_ERRORS) as info:
                who(ch)
            assert info.value.code().name == "UNAVAILABLE"
        with cm.secure_channel("localhost:%d" % port, channel_creds(cm, client="client")) as ch:
            assert who(ch)[0] == [b"ssl"]
    finally:
        server.stop(None)


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
@pytest.mark.parametrize("case", ["wrong CA", "expired certificate", "hostname mismatch"])
def test_verification_failures(pair, case):
    cm = mod(pair[0])
    spec = {"wrong CA": ("server", "other_ca", None), "expired certificate": ("expired", "ca", None),
            "hostname mismatch": ("server", "ca", "other.example")}[case]
    server, port = start(pair[1], server_creds(spec[0]))
    try:
        options = [("grpc.ssl_target_name_override", spec[2])] if spec[2] else None
        with cm.secure_channel("localhost:%d" % port, channel_creds(cm, roots=spec[1]), options=options) as ch:
            with pytest.raises(RPC_ERRORS) as info:
                who(ch)
            assert info.value.code().name == "UNAVAILABLE"
        if spec[0] == "server":
            with cm.secure_channel("localhost:%d" % port, channel_creds(cm)) as ch:
                assert who(ch)[0] == [b"ssl"]
    finally:
        server.stop(None)


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_plaintext_and_tls_port_mismatches(pair):
    cm = mod(pair[0])
    tls_server, tls_port = start(pair[1], server_creds())
    plain_server, plain_port = start(pair[1])
    try:
        with cm.insecure_channel("localhost:%d" % tls_port) as ch:
            with pytest.raises(RPC_ERRORS) as info:
                who(ch)
            assert info.value.code().name == "UNAVAILABLE"
        with cm.secure_channel("localhost:%d" % plain_port, channel_creds(cm)) as ch:
            with pytest.raises(RPC_ERRORS) as info:
                who(ch)
            assert info.value.code().name == "UNAVAILABLE"
        with cm.secure_channel("localhost:%d" % tls_port, channel_creds(cm)) as ch:
            assert who(ch)[0] == [b"ssl"]
        with cm.insecure_channel("localhost:%d" % plain_port) as ch:
            assert who(ch)[0] == [b"insecure"]
    finally:
        tls_server.stop(None)
        plain_server.stop(None)


class FailingPlugin(grpc.AuthMetadataPlugin):
    def __call__(self, context, callback):
        callback(None, ValueError("no token today"))


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_call_credentials(pair):
    cm = mod(pair[0])
    server, port = start(pair[1], server_creds())
    try:
        creds = cm.composite_channel_credentials(channel_creds(cm), cm.access_token_call_credentials("tok"))
        with cm.secure_channel("localhost:%d" % port, creds) as ch:
            assert who(ch)[3] == "Bearer tok"
            with pytest.raises(RPC_ERRORS) as info:
                who(ch, credentials=cm.metadata_call_credentials(FailingPlugin()))
            assert info.value.code().name == "UNAVAILABLE"
            assert info.value.details() == "Getting metadata from plugin failed with error: no token today"
    finally:
        server.stop(None)
    plain, plain_port = start(pair[1])
    try:
        with cm.insecure_channel("localhost:%d" % plain_port) as ch:
            with pytest.raises(RPC_ERRORS) as info:
                who(ch, credentials=cm.access_token_call_credentials("t"))
            assert info.value.code().name == "UNAUTHENTICATED"
            assert info.value.details() == ("Established channel does not have a sufficient security level "
                                            "to transfer call credential.")
    finally:
        plain.stop(None)


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_local_credentials(pair):
    cm, sm = mod(pair[0]), mod(pair[1])
    server, port = start(pair[1], lambda m: m.local_server_credentials())
    try:
        creds = cm.composite_channel_credentials(cm.local_channel_credentials(), cm.access_token_call_credentials("l"))
        with cm.secure_channel("127.0.0.1:%d" % port, creds) as ch:
            kinds, _, _, auth = who(ch)
            assert kinds == [b"local"] and auth == "Bearer l"
    finally:
        server.stop(None)
