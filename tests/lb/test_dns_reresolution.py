"""The dns resolver re-resolving against a real DNS server (dnslib on
127.0.0.1) whose A and AAAA records change during the test, under both
facades, with grpcio and grpcpy backends: a name that moves is followed
once the connection to its old address is lost; a re-resolution is no
sooner than grpc.dns_min_time_between_resolutions_ms after the previous
lookup; a failing lookup is retried with backoff until it works."""
import concurrent.futures
import threading
import time

import grpc
import pytest

dnslib = pytest.importorskip("dnslib")
from dnslib import AAAA, A  # noqa: E402
from dnslib.server import DNSServer  # noqa: E402

import grpcpy  # noqa: E402
from grpcpy._channel.plane import READY  # noqa: E402
from tests.channel.test_service_config_dns import Zone, _Quiet  # noqa: E402

from .clients import AioClient, SyncClient  # noqa: E402

WHO = "/rr.Backend/Who"


class TimedZone(Zone):
    """The zone, with the time of each query."""

    def resolve(self, request, handler):
        from dnslib import QTYPE
        with self.lock:
            self.times.append((QTYPE[request.q.qtype], time.monotonic()))
        return super().resolve(request, handler)

    def count(self, qtype):
        return len(self.asked(qtype))

    def times_of(self, qtype):
        with self.lock:
            return [t for kind, t in self.times if kind == qtype]


@pytest.fixture(scope="module")
def dns_server():
    zone = TimedZone()
    udp = DNSServer(zone, address="127.0.0.1", port=0, logger=_Quiet())
    threading.Thread(target=udp.server.serve_forever, args=(0.05,), daemon=True).start()
    zone.port = udp.server.server_address[1]
    yield zone
    udp.stop()
    udp.server.server_close()


@pytest.fixture
def zone(dns_server):
    with dns_server.lock:
        dns_server.records = {}
        dns_server.queries = []
        dns_server.times = []
        dns_server.fail = set()
    return dns_server


def _set(zone, name, *ips):
    records = {}
    for ip in ips:
        records.setdefault("AAAA" if ":" in ip else "A", []).append(AAAA(ip) if ":" in ip else A(ip))
    with zone.lock:
        zone.records[name] = records


def _backend(kind, host, port, name):
    mod = grpc if kind == "grpcio" else grpcpy
    pool = concurrent.futures.ThreadPoolExecutor(4)
    srv = mod.server(pool)
    srv.add_generic_rpc_handlers((mod.method_handlers_generic_handler("rr.Backend", {
        "Who": mod.unary_unary_rpc_method_handler(lambda request, context: name)}),))
    bound = srv.add_insecure_port("%s:%d" % ("[%s]" % host if ":" in host else host, port))
    srv.start()
    srv.port, srv.pool = bound, pool
    return srv


@pytest.fixture
def backends():
    """Start backends on one port at several addresses (a DNS name gives
    hosts, the target the port): ``start(kind, host, name)``."""
    started = []

    def start(kind, host, name):
        port = started[0].port if started else 0
        srv = _backend(kind, host, port, name)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop(None).wait(5)
        srv.pool.shutdown(wait=False)


@pytest.fixture(params=["grpcpy", "grpcpy.aio"])
def client_cls(request):
    return SyncClient if request.param == "grpcpy" else AioClient


def _target(zone, port, name="svc.test"):
    return "dns://127.0.0.1:%d/%s:%d" % (zone.port, name, port)


def _wait(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_a_moved_name_is_followed_after_the_connection_is_lost(zone, backends, client_cls):
    """pick_first: the name moves from an A record (a grpcio server) to an
    AAAA record (a grpcpy server); the channel looks it up again when its
    connection goes."""
    old = backends("grpcio", "127.0.0.1", b"v4")
    backends("grpcpy", "::1", b"v6")
    _set(zone, "svc.test", "127.0.0.1")
    client = client_cls(_target(zone, old.port), [("grpc.dns_min_time_between_resolutions_ms", 0)], WHO)
    try:
        assert client.call() == b"v4"
        assert client.call() == b"v4"              # one lookup serves both calls
        assert zone.count("A") == 1
        _set(zone, "svc.test", "::1")
        old.stop(None).wait(5)
        assert _wait(lambda: client.state() != READY)
        assert client.call(wait_for_ready=True) == b"v6"
        assert zone.count("AAAA") == 2             # looked up again
    finally:
        client.close()


def test_re_resolution_waits_for_the_min_interval_then_uses_an_added_backend(zone, backends, client_cls):
    """round_robin: a backend added to the records is not seen until a
    re-resolution, which losing the old backend asks for, and which comes
    no sooner than grpc.dns_min_time_between_resolutions_ms after the first
    lookup."""
    old = backends("grpcpy", "127.0.0.1", b"one")
    backends("grpcio", "127.0.0.2", b"two")
    _set(zone, "svc.test", "127.0.0.1")
    interval = 0.4
    client = client_cls(_target(zone, old.port), [("grpc.lb_policy_name", "round_robin"),
                                                  ("grpc.dns_min_time_between_resolutions_ms",
                                                   int(interval * 1000))], WHO)
    try:
        assert client.call() == b"one"
        _set(zone, "svc.test", "127.0.0.1", "127.0.0.2")
        assert {client.call() for _ in range(10)} == {b"one"}     # no lookup without a reason
        assert zone.count("A") == 1
        old.stop(None).wait(5)
        assert client.call(wait_for_ready=True) == b"two"
        assert zone.count("A") == 2
        first, second = zone.times_of("A")
        # (measured at the server: less the time the first query took to get there)
        assert second - first >= interval - 0.05, (first, second)
    finally:
        client.close()


def test_a_failed_lookup_is_retried_with_backoff(zone, backends, client_cls):
    srv = backends("grpcio", "127.0.0.1", b"up")
    _set(zone, "svc.test", "127.0.0.1")
    with zone.lock:
        zone.fail = {("svc.test", "A"), ("svc.test", "AAAA")}
    client = client_cls(_target(zone, srv.port), [("grpc.initial_reconnect_backoff_ms", 50),
                                                  ("grpc.max_reconnect_backoff_ms", 200)], WHO)
    try:
        failed = client.call()
        assert failed == "UNAVAILABLE"
        assert failed.details.startswith("DNS resolution failed for svc.test:%d" % srv.port), failed.details
        # a patient call waits while the lookups are retried, and runs once one works
        box = []
        waiter = threading.Thread(target=lambda: box.append(client.call(wait_for_ready=True)))
        waiter.start()
        assert _wait(lambda: zone.count("A") >= 4)
        with zone.lock:
            zone.fail = set()
        waiter.join(10)
        assert box == [b"up"]
        times = zone.times_of("A")
        gaps = [b - a for a, b in zip(times, times[1:])]
        # with backoff: not back to back (50 ms less the 20 % jitter at least)
        assert all(gap >= 0.04 for gap in gaps[:3]), gaps
    finally:
        client.close()
