"""TLS, mTLS and call credentials for the asyncio API: grpcpy.aio against
grpc.aio in both directions (grpcio with itself as the reference)."""
import asyncio
import ssl

import grpc
import grpc.aio
import pytest

import grpcpy
import grpcpy.aio

from .certs import material

PAIRS = [("grpcio", "grpcpy"), ("grpcpy", "grpcio"), ("grpcpy", "grpcpy"), ("grpcio", "grpcio")]
IDS = ["grpcio-to-grpcpy", "grpcpy-to-grpcio", "grpcpy-to-grpcpy", "grpcio-to-grpcio"]
RPC_ERRORS = (grpc.RpcError, grpcpy.RpcError)


def mods(impl):
    return (grpc, grpc.aio) if impl == "grpcio" else (grpcpy, grpcpy.aio)


async def whoami(request, context):
    auth = context.auth_context()
    ids = context.peer_identities()
    md = dict(context.invocation_metadata())
    return repr((sorted(auth.get("transport_security_type", [])), ids, context.peer_identity_key(),
                 md.get("authorization"))).encode()


async def count(request, context):
    for i in range(3):
        yield b"%d" % i


def handlers(mod):
    return mod.method_handlers_generic_handler("T", {
        "Who": mod.unary_unary_rpc_method_handler(whoami),
        "Count": mod.unary_stream_rpc_method_handler(count),
    })


async def start_server(impl, creds=None, insecure=False):
    mod, amod = mods(impl)
    server = amod.server()
    server.add_generic_rpc_handlers((handlers(mod),))
    if insecure:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", creds(mod))
    await server.start()
    return server, port


def server_creds(pair_name="server", client_auth=False):
    def make(mod):
        m = material()
        return mod.ssl_server_credentials([m[pair_name]], root_certificates=m["ca"] if client_auth else None,
                                          require_client_auth=client_auth)
    return make


def channel_creds(mod, roots="ca", client=None):
    m = material()
    key, chain = m[client] if client else (None, None)
    return mod.ssl_channel_credentials(m[roots], key, chain)


def run(coro):
    return grpcpy.aio.run(asyncio.wait_for(coro, 30))   # uvloop's TLS when it is installed


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_tls_calls_and_auth_context(pair):
    async def scenario():
        server, port = await start_server(pair[1], server_creds())
        mod, amod = mods(pair[0])
        async with amod.secure_channel("localhost:%d" % port, channel_creds(mod)) as ch:
            who = eval(await ch.unary_unary("/T/Who")(b""))
            assert who == ([b"ssl"], None, None, None)
            assert [m async for m in ch.unary_stream("/T/Count")(b"")] == [b"0", b"1", b"2"]
        await server.stop(None)
    run(scenario())


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_mtls_peer_identity(pair):
    async def scenario():
        server, port = await start_server(pair[1], server_creds(client_auth=True))
        mod, amod = mods(pair[0])
        async with amod.secure_channel("localhost:%d" % port, channel_creds(mod, client="client")) as ch:
            kinds, ids, key, _ = eval(await ch.unary_unary("/T/Who")(b""))
            assert kinds == [b"ssl"]
            assert key == "x509_subject_alternative_name"
            assert ids == [b"client.grpcpy.test"]
        # a client without a certificate is refused; the server goes on
        async with amod.secure_channel("localhost:%d" % port, channel_creds(mod)) as ch:
            with pytest.raises(RPC_ERRORS) as info:
                await ch.unary_unary("/T/Who")(b"", timeout=5)
            assert info.value.code().name == "UNAVAILABLE"
        async with amod.secure_channel("localhost:%d" % port, channel_creds(mod, client="client")) as ch:
            assert eval(await ch.unary_unary("/T/Who")(b""))[0] == [b"ssl"]
        await server.stop(None)
    run(scenario())


FAILURES = {
    "wrong CA": dict(server="server", roots="other_ca"),
    "expired certificate": dict(server="expired", roots="ca"),
    "hostname mismatch": dict(server="server", roots="ca", override="other.example"),
}


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
@pytest.mark.parametrize("case", sorted(FAILURES))
def test_verification_failures_are_unavailable_and_server_goes_on(pair, case):
    spec = FAILURES[case]

    async def scenario():
        server, port = await start_server(pair[1], server_creds(spec["server"]))
        mod, amod = mods(pair[0])
        options = [("grpc.ssl_target_name_override", spec["override"])] if "override" in spec else None
        async with amod.secure_channel("localhost:%d" % port, channel_creds(mod, roots=spec["roots"]),
                                       options=options) as ch:
            with pytest.raises(RPC_ERRORS) as info:
                await ch.unary_unary("/T/Who")(b"", timeout=5)
            assert info.value.code().name == "UNAVAILABLE"
        if spec["server"] == "server":
            async with amod.secure_channel("localhost:%d" % port, channel_creds(mod)) as ch:
                assert eval(await ch.unary_unary("/T/Who")(b""))[0] == [b"ssl"]
        await server.stop(None)
    run(scenario())


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_plaintext_client_on_tls_port_and_tls_client_on_plaintext_port(pair):
    async def scenario():
        mod, amod = mods(pair[0])
        tls_server, tls_port = await start_server(pair[1], server_creds())
        plain_server, plain_port = await start_server(pair[1], insecure=True)
        async with amod.insecure_channel("localhost:%d" % tls_port) as ch:
            with pytest.raises(RPC_ERRORS) as info:
                await ch.unary_unary("/T/Who")(b"", timeout=5)
            assert info.value.code().name == "UNAVAILABLE"
        async with amod.secure_channel("localhost:%d" % plain_port, channel_creds(mod)) as ch:
            with pytest.raises(RPC_ERRORS) as info:
                await ch.unary_unary("/T/Who")(b"", timeout=5)
            assert info.value.code().name == "UNAVAILABLE"
        # both servers still serve well-behaved clients
        async with amod.secure_channel("localhost:%d" % tls_port, channel_creds(mod)) as ch:
            assert eval(await ch.unary_unary("/T/Who")(b""))[0] == [b"ssl"]
        async with amod.insecure_channel("localhost:%d" % plain_port) as ch:
            assert eval(await ch.unary_unary("/T/Who")(b""))[0] == [b"insecure"]
        await tls_server.stop(None)
        await plain_server.stop(None)
    run(scenario())


@pytest.mark.parametrize("client", ["grpcio", "grpcpy"])
def test_server_without_h2_alpn_is_refused(client):
    """A TLS server that does not negotiate h2 (here: one offering only
    http/1.1) is not a gRPC peer: the call fails UNAVAILABLE."""
    async def scenario():
        m = material()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        import tempfile, os
        with tempfile.TemporaryDirectory() as d:
            for name, data in (("c.pem", m["server"][1]), ("k.pem", m["server"][0])):
                with open(os.path.join(d, name), "wb") as fh:
                    fh.write(data)
            ctx.load_cert_chain(os.path.join(d, "c.pem"), os.path.join(d, "k.pem"))
        ctx.set_alpn_protocols(["http/1.1"])

        async def handle(reader, writer):
            try:
                await reader.read(1024)
            except Exception:
                pass
            writer.close()

        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
        port = srv.sockets[0].getsockname()[1]
        mod, amod = mods(client)
        async with amod.secure_channel("localhost:%d" % port, channel_creds(mod)) as ch:
            with pytest.raises(RPC_ERRORS) as info:
                await ch.unary_unary("/T/Who")(b"", timeout=5)
            assert info.value.code().name == "UNAVAILABLE"
        srv.close()
    run(scenario())


class FailingPlugin(grpc.AuthMetadataPlugin):
    def __call__(self, context, callback):
        callback(None, ValueError("no token today"))


class RecordingPlugin(grpc.AuthMetadataPlugin):
    def __init__(self):
        self.contexts = []

    def __call__(self, context, callback):
        self.contexts.append((context.service_url, context.method_name))
        callback((("x-plugin", "yes"),), None)


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_call_credentials(pair):
    async def scenario():
        server, port = await start_server(pair[1], server_creds())
        mod, amod = mods(pair[0])
        composite = mod.composite_channel_credentials(channel_creds(mod), mod.access_token_call_credentials("tok1"))
        async with amod.secure_channel("localhost:%d" % port, composite) as ch:
            assert eval(await ch.unary_unary("/T/Who")(b""))[3] == "Bearer tok1"
            # per-call credentials add to the channel's
            rec = RecordingPlugin()
            who = eval(await ch.unary_unary("/T/Who")(b"", credentials=mod.metadata_call_credentials(rec)))
            assert who[3] == "Bearer tok1"
            assert rec.contexts == [("https://localhost:%d/T" % port, "Who")]
            with pytest.raises(RPC_ERRORS) as info:
                await ch.unary_unary("/T/Who")(b"", credentials=mod.metadata_call_credentials(FailingPlugin()))
            assert info.value.code().name == "UNAVAILABLE"
            assert info.value.details() == "Getting metadata from plugin failed with error: no token today"
        await server.stop(None)
        # call credentials are refused on an insecure channel: grpc.aio
        # raises UsageError when the call is made
        plain, plain_port = await start_server(pair[1], insecure=True)
        async with amod.insecure_channel("localhost:%d" % plain_port) as ch:
            with pytest.raises((grpc.aio.UsageError, grpcpy.aio.UsageError), match="only valid on secure"):
                await ch.unary_unary("/T/Who")(b"", credentials=mod.access_token_call_credentials("t"))
        await plain.stop(None)
    run(scenario())


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_local_credentials_allow_call_credentials(pair):
    async def scenario():
        mod_s, amod_s = mods(pair[1])
        server = amod_s.server()
        server.add_generic_rpc_handlers((handlers(mod_s),))
        port = server.add_secure_port("127.0.0.1:0", mod_s.local_server_credentials())
        await server.start()
        mod, amod = mods(pair[0])
        creds = mod.composite_channel_credentials(mod.local_channel_credentials(),
                                                  mod.access_token_call_credentials("loc"))
        async with amod.secure_channel("127.0.0.1:%d" % port, creds) as ch:
            kinds, _, _, auth = eval(await ch.unary_unary("/T/Who")(b""))
            assert kinds == [b"local"] and auth == "Bearer loc"
        await server.stop(None)
    run(scenario())


@pytest.mark.parametrize("impl", ["grpcio", "grpcpy"])
def test_dynamic_server_credentials_rotate_without_restart(impl):
    async def scenario():
        mod, amod = mods(impl)
        m = material()
        first = mod.ssl_server_certificate_configuration([m["server"]])
        second = mod.ssl_server_certificate_configuration([m["rotated"]])
        current = {"config": None}
        server = amod.server()
        server.add_generic_rpc_handlers((handlers(mod),))
        port = server.add_secure_port("127.0.0.1:0", mod.dynamic_ssl_server_credentials(
            first, lambda: current["config"]))
        await server.start()
        options = [("grpc.ssl_target_name_override", "rotated.grpcpy.test")]
        cmod, camod = mods("grpcpy")
        # the first certificate does not name rotated.grpcpy.test
        async with camod.secure_channel("127.0.0.1:%d" % port, channel_creds(cmod), options=options) as ch:
            with pytest.raises(RPC_ERRORS):
                await ch.unary_unary("/T/Who")(b"", timeout=5)
        current["config"] = second
        async with camod.secure_channel("127.0.0.1:%d" % port, channel_creds(cmod), options=options) as ch:
            assert eval(await ch.unary_unary("/T/Who")(b""))[0] == [b"ssl"]
        await server.stop(None)
    run(scenario())


def test_bad_pem_gives_clear_errors():
    with pytest.raises(ValueError, match="not a PEM certificate"):
        grpcpy.ssl_channel_credentials(b"garbage")
    m = material()
    with pytest.raises(ValueError, match="does not match"):
        grpcpy.ssl_server_credentials([(m["client"][0], m["server"][1])])
