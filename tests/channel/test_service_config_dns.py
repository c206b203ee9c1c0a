"""The dns resolver against a real DNS server (dnslib, on 127.0.0.1): a
target naming the server (dns://127.0.0.1:PORT/name:port) resolves its A
records there and takes its service config from the TXT records of
_grpc_config.<name> (gRFC A2), under both facades, on a real grpcpy server."""
import asyncio
import concurrent.futures
import json
import threading
import time

import pytest

dnslib = pytest.importorskip("dnslib")
from dnslib import QTYPE, RCODE, RR, TXT, A  # noqa: E402
from dnslib.server import BaseResolver, DNSServer  # noqa: E402

import grpcpy  # noqa: E402
import grpcpy.aio  # noqa: E402
from grpcpy._channel import dns  # noqa: E402
from grpcpy._channel.service_config import EMPTY  # noqa: E402

ECHO = "/t.S/Echo"


class Zone(BaseResolver):
    """A zone the tests edit: name -> {qtype: [rdata]}; every query is
    logged.  ``fail`` lists (name, qtype) answered SERVFAIL."""

    def __init__(self):
        self.records = {}
        self.queries = []
        self.fail = set()
        self.lock = threading.Lock()

    def set_txt(self, name, config_or_text):
        text = config_or_text if isinstance(config_or_text, str) else (
            "grpc_config=" + json.dumps([{"clientLanguage": ["python"], "serviceConfig": config_or_text}]))
        # a TXT string holds 255 bytes at most: a longer record is several
        chunks = [text[i:i + 255] for i in range(0, len(text), 255)]
        with self.lock:
            self.records.setdefault("_grpc_config." + name, {})["TXT"] = [TXT(chunks)]

    def asked(self, qtype):
        with self.lock:
            return [name for name, kind in self.queries if kind == qtype]

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((name, qtype))
            if (name, qtype) in self.fail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            known = self.records.get(name)
            if known is None:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            for rdata in known.get(qtype, ()):
                reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=0))
        return reply


class _Quiet:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


@pytest.fixture(scope="module")
def dns_server():
    zone = Zone()
    udp = DNSServer(zone, address="127.0.0.1", port=0, logger=_Quiet())
    port = udp.server.server_address[1]
    servers = [udp]
    try:    # a large answer makes the client ask again over TCP
        servers.append(DNSServer(zone, address="127.0.0.1", port=port, tcp=True, logger=_Quiet()))
    except OSError:
        pass
    for server in servers:      # (a short poll interval: a quick shutdown)
        threading.Thread(target=server.server.serve_forever, args=(0.05,), daemon=True).start()
    zone.port = port
    yield zone
    for server in servers:
        server.stop()
        server.server.server_close()


@pytest.fixture
def zone(dns_server):
    """The module's DNS server, its zone reset to svc.test -> 127.0.0.1."""
    with dns_server.lock:
        dns_server.records = {"svc.test": {"A": [A("127.0.0.1")]}}
        dns_server.queries = []
        dns_server.fail = set()
    return dns_server


@pytest.fixture(scope="module")
def server():
    pool = concurrent.futures.ThreadPoolExecutor(4)
    srv = grpcpy.server(pool)
    srv.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "t.S", {"Echo": grpcpy.unary_unary_rpc_method_handler(lambda request, context: request)}),))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield port
    srv.stop(None).wait(5)
    pool.shutdown(wait=False)


def _target(zone, port, name="svc.test"):
    return "dns://127.0.0.1:%d/%s:%d" % (zone.port, name, port)


def call_sync(target, options=None):
    """(outcome, the plane's config); the outcome is the reply or (code, details)."""
    with grpcpy.insecure_channel(target, options) as channel:
        try:
            outcome = channel.unary_unary(ECHO)(b"hi", timeout=10)
        except grpcpy.RpcError as exc:
            outcome = (exc.code().name, exc.details())
        return outcome, channel._plane.service_config, channel._plane._policy.name


def call_aio(target, options=None):
    async def scenario():
        async with grpcpy.aio.insecure_channel(target, options) as channel:
            try:
                outcome = await channel.unary_unary(ECHO)(b"hi", timeout=10)
            except grpcpy.RpcError as exc:
                outcome = (exc.code().name, exc.details())
            return outcome, channel._plane.service_config, channel._plane._policy.name
    return asyncio.run(scenario())


@pytest.fixture(params=["sync", "aio"])
def call(request):
    return {"sync": call_sync, "aio": call_aio}[request.param]


def _timeout_of(config, method=ECHO):
    found = config.method_config(method)
    return None if found is None else found.timeout


CONFIG = {"methodConfig": [{"name": [{"service": "t.S"}], "timeout": "7.5s", "waitForReady": True}]}


def test_a_dns_server_gives_the_addresses_and_the_config(zone, server, call):
    zone.set_txt("svc.test", CONFIG)
    outcome, config, _ = call(_target(zone, server))
    assert outcome == b"hi"
    assert _timeout_of(config) == 7.5 and config.method_config(ECHO).wait_for_ready is True
    # the answers came from that server
    assert "svc.test" in zone.asked("A") and "_grpc_config.svc.test" in zone.asked("TXT")


def test_a_long_txt_record(zone, server):
    # more than one TXT string and more than a UDP answer holds: joined, over TCP
    names = [{"service": "t.S%d" % i} for i in range(40)]
    zone.set_txt("svc.test", {"methodConfig": [{"name": [{"service": "t.S"}] + names, "timeout": "2s"}]})
    outcome, config, _ = call_sync(_target(zone, server))
    assert outcome == b"hi" and _timeout_of(config) == 2.0 and _timeout_of(config, "/t.S39/M") == 2.0


def test_no_txt_record_and_a_failing_txt_lookup_leave_the_default(zone, server, call):
    default = json.dumps({"methodConfig": [{"name": [{}], "timeout": "3s"}]})
    options = [("grpc.service_config", default)]
    outcome, config, _ = call(_target(zone, server), options)
    assert outcome == b"hi" and _timeout_of(config) == 3.0
    # a TXT lookup the server fails never fails the addresses
    zone.fail.add(("_grpc_config.svc.test", "TXT"))
    zone.set_txt("svc.test", CONFIG)
    outcome, config, _ = call(_target(zone, server), options)
    assert outcome == b"hi" and _timeout_of(config) == 3.0
    outcome, config, _ = call(_target(zone, server))
    assert outcome == b"hi" and config is EMPTY


def test_disable_resolution_ignores_txt(zone, server, call):
    zone.set_txt("svc.test", CONFIG)
    outcome, config, _ = call(_target(zone, server), [("grpc.service_config_disable_resolution", 1)])
    assert outcome == b"hi" and config is EMPTY
    assert zone.asked("TXT") == []


def test_an_invalid_first_txt_config_fails_calls_unavailable(zone, server, call):
    zone.set_txt("svc.test", {"methodConfig": [{"name": [{"service": "t.S"}], "timeout": "soon"}]})
    (code, details), config, _ = call(_target(zone, server))
    assert code == "UNAVAILABLE"
    assert details == ("invalid service config from the resolver of svc.test:%d: errors validating service "
                       "config: [field:methodConfig[0].timeout error:Not a duration (no s suffix)]" % server)
    assert config is EMPTY


def test_an_unknown_name(zone, server, call):
    (code, details), _, _ = call(_target(zone, server, "nowhere.test"))
    assert code == "UNAVAILABLE"
    assert details.startswith("DNS resolution failed for nowhere.test:%d: " % server)
    assert "Name or service not known" in details


def test_a_txt_config_choosing_round_robin(zone, server, call):
    zone.set_txt("svc.test", {"loadBalancingConfig": [{"round_robin": {}}]})
    outcome, _, policy = call(_target(zone, server))
    assert (outcome, policy) == (b"hi", "round_robin")


def test_an_invalid_txt_config_after_a_good_one_is_ignored(zone):
    # the channel re-resolves when its connection is lost (the server stops)
    pool = concurrent.futures.ThreadPoolExecutor(2)
    srv = grpcpy.server(pool)
    srv.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "t.S", {"Echo": grpcpy.unary_unary_rpc_method_handler(lambda request, context: request)}),))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    zone.set_txt("svc.test", CONFIG)
    options = [("grpc.dns_min_time_between_resolutions_ms", 0)]
    try:
        with grpcpy.insecure_channel(_target(zone, port), options) as channel:
            assert channel.unary_unary(ECHO)(b"hi", timeout=10) == b"hi"
            assert _timeout_of(channel._plane.service_config) == 7.5
            version = channel._plane.config_version
            zone.set_txt("svc.test", "grpc_config=[{\"serviceConfig\": 1}]")
            asked = len(zone.asked("TXT"))
            srv.stop(None).wait(5)
            # wait (no time limit asserted) for the re-resolution to be taken in
            for _ in range(500):
                with channel._lock:
                    done = len(zone.asked("TXT")) > asked and not channel._plane._resolving
                if done:
                    break
                time.sleep(0.02)
            assert done
            assert _timeout_of(channel._plane.service_config) == 7.5
            assert channel._plane.config_version == version and channel._plane.config_error is None
    finally:
        srv.stop(None)
        pool.shutdown(wait=False)


def test_the_blocking_lookup(zone):
    zone.records["svc.test"]["AAAA"] = [dnslib.AAAA("::1")]
    server = "127.0.0.1:%d" % zone.port
    infos, records = dns.lookup("svc.test", 80, server, txt=False)
    assert sorted(info[4] for info in infos) == [("127.0.0.1", 80), ("::1", 80, 0, 0)]
    assert records is None
    assert dns.lookup("svc.test", 80, server, txt=True)[1] == []
    zone.set_txt("svc.test", "grpc_config=[]")
    assert dns.lookup("svc.test", 80, server, txt=True)[1] == ["grpc_config=[]"]
    with pytest.raises(OSError, match="Name or service not known"):
        dns.lookup("nowhere.test", 80, server)
    zone.records["empty.test"] = {}
    with pytest.raises(OSError, match="No address associated with hostname"):
        dns.lookup("empty.test", 80, server)


def test_the_txt_config_applies_to_calls(zone, server):
    """Once resolved (the channel READY), the channel's calls follow the
    config from DNS: here its maxResponseMessageBytes, as grpcio does
    (test_grpcio_reads_the_same_records)."""
    zone.set_txt("svc.test", {"methodConfig": [{"name": [{"service": "t.S"}], "maxResponseMessageBytes": 1}]})
    target = _target(zone, server)
    with grpcpy.insecure_channel(target) as channel:
        grpcpy.channel_ready_future(channel).result(timeout=10)
        with pytest.raises(grpcpy.RpcError) as info:
            channel.unary_unary(ECHO)(b"hi", timeout=10)
        assert info.value.code() == grpcpy.StatusCode.RESOURCE_EXHAUSTED

    async def aio():
        async with grpcpy.aio.insecure_channel(target) as channel:
            await channel.channel_ready()
            with pytest.raises(grpcpy.aio.AioRpcError) as info:
                await channel.unary_unary(ECHO)(b"hi", timeout=10)
            return info.value.code()
    assert asyncio.run(aio()) == grpcpy.StatusCode.RESOURCE_EXHAUSTED


def test_the_first_call_of_a_fresh_channel_follows_the_txt_config(zone, server):
    """A call made before the channel resolved (the config unknown yet)
    looks its method config up when it starts: the first call already
    follows the TXT record."""
    zone.set_txt("svc.test", {"methodConfig": [{"name": [{"service": "t.S"}], "maxResponseMessageBytes": 1}]})
    target = _target(zone, server)
    with grpcpy.insecure_channel(target) as channel:
        with pytest.raises(grpcpy.RpcError) as info:
            channel.unary_unary(ECHO)(b"hi", timeout=10)
        assert info.value.code() == grpcpy.StatusCode.RESOURCE_EXHAUSTED

    async def aio():
        async with grpcpy.aio.insecure_channel(target) as channel:
            with pytest.raises(grpcpy.aio.AioRpcError) as info:
                await channel.unary_unary(ECHO)(b"hi", timeout=10)
            return info.value.code()
    assert asyncio.run(aio()) == grpcpy.StatusCode.RESOURCE_EXHAUSTED


def test_grpcio_reads_the_same_records(zone, server):
    """The reference: grpcio (which looks TXT records up only when
    grpc.service_config_disable_resolution is 0) applies the zone's config
    and fails on an invalid first one as grpcpy does, naming the same field."""
    import grpc

    def grpcio_call():
        options = [("grpc.service_config_disable_resolution", 0), ("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(_target(zone, server), options) as channel:
            try:
                return channel.unary_unary(ECHO)(b"hi", timeout=10)
            except grpc.RpcError as exc:
                return exc.code().name, exc.details()

    def plain(config):      # a choice for every language: grpcio is "c++"
        return "grpc_config=" + json.dumps([{"serviceConfig": config}])

    zone.set_txt("svc.test", plain({"methodConfig": [{"name": [{"service": "t.S"}], "maxResponseMessageBytes": 1}]}))
    code, _ = grpcio_call()
    assert code == "RESOURCE_EXHAUSTED"         # the config is applied: a 2-byte reply is too long
    _, config, _ = call_sync(_target(zone, server))
    assert config.method_config(ECHO).max_response_bytes == 1

    zone.set_txt("svc.test", plain({"methodConfig": [{"name": [{"service": "t.S"}], "timeout": "soon"}]}))
    reference = grpcio_call()
    (code, details), _, _ = call_sync(_target(zone, server))
    assert reference[0] == code == "UNAVAILABLE"
    error = "errors validating service config: [field:methodConfig[0].timeout error:Not a duration (no s suffix)]"
    assert reference[1].endswith(error) and details.endswith(error)


def test_the_example():
    import pathlib
    import subprocess
    import sys
    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "service_config_dns.py"
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "config from DNS (round_robin): server-1, server-2",
        "TXT ignored (pick_first): 1 server",
        "invalid grpc.service_config: errors validating service config: "
        "[field:methodConfig[0].timeout error:is not a string]",
    ]
