"""Client-side health checking (gRFC A17) under both facades: with
healthCheckConfig in the service config, every subchannel of round_robin
watches grpc.health.v1.Health and only SERVING backends get calls.  The
backends are real grpcio servers (grpcio-health-checking) and grpcpy
servers (grpcpy.health) on 127.0.0.x."""
import collections
import concurrent.futures
import json

import grpc
import pytest
from grpc_health.v1 import health as grpcio_health
from grpc_health.v1 import health_pb2, health_pb2_grpc

import grpcpy
import grpcpy.aio
import grpcpy.health
from tests.lb.served_by import ServedByClient, until

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _handlers(mod, name):
    def echo(request, context):
        context.set_trailing_metadata((("served-by", name),))
        return request
    return mod.method_handlers_generic_handler("t.S", {"Echo": mod.unary_unary_rpc_method_handler(echo)})


class Backend:
    def __init__(self, kind, name, host, with_health=True):
        self.name = name
        self.pool = concurrent.futures.ThreadPoolExecutor(8)
        mod = grpc if kind == "grpcio" else grpcpy
        self.server = mod.server(self.pool)
        self.server.add_generic_rpc_handlers((_handlers(mod, name),))
        self.health = None
        if with_health:
            if kind == "grpcio":
                self.health = grpcio_health.HealthServicer()
                health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
            else:
                self.health = grpcpy.health.HealthServicer()
                grpcpy.health.add_HealthServicer_to_server(self.health, self.server)
            self.health.set("t.S", SERVING)
        self.port = self.server.add_insecure_port("%s:0" % host)
        self.address = "%s:%d" % (host, self.port)
        self.server.start()

    def stop(self):
        self.server.stop(None)
        self.pool.shutdown(wait=False)


@pytest.fixture(scope="module")
def backends():
    made = [Backend("grpcio", "a", "127.0.0.1"), Backend("grpcpy", "b", "127.0.0.2"),
            Backend("grpcio", "c", "127.0.0.3")]
    yield made
    for b in made:
        b.stop()


@pytest.fixture(autouse=True)
def all_serving(backends):
    for b in backends:
        b.health.set("t.S", SERVING)
    yield


def client_for(facade, addresses, config, options=()):
    return ServedByClient(facade, "ipv4:" + ",".join(addresses), [("grpc.service_config", config)] + list(options))


def _config(policy="round_robin", service="t.S"):
    return json.dumps({"loadBalancingConfig": [{policy: {}}], "healthCheckConfig": {"serviceName": service}})


@pytest.fixture(params=["sync", "aio"])
def facade(request):
    return request.param


@pytest.mark.parametrize("facade", ["sync", "aio", "grpcio"])
def test_a_backend_that_turns_not_serving_is_drained_and_comes_back(backends, facade):
    client = client_for(facade, [b.address for b in backends], _config())
    try:
        assert until(lambda: set(client.served(6)) == {"a", "b", "c"})
        backends[1].health.set("t.S", NOT_SERVING)      # the grpcpy backend
        assert until(lambda: "b" not in client.served(6))
        counts = collections.Counter(client.served(30))
        assert set(counts) == {"a", "c"} and min(counts.values()) >= 10, counts
        backends[0].health.set("t.S", NOT_SERVING)      # a grpcio backend too
        assert until(lambda: set(client.served(6)) == {"c"})
        backends[0].health.set("t.S", SERVING)
        backends[1].health.set("t.S", SERVING)
        assert until(lambda: set(client.served(6)) == {"a", "b", "c"})
    finally:
        client.close()


def test_no_serving_backend_fails_calls_naming_the_health_check(backends, facade):
    for b in backends:
        b.health.set("t.S", NOT_SERVING)
    client = client_for(facade, [b.address for b in backends], _config())
    try:
        assert until(lambda: client.served(1, wait_for_ready=False)[0][0] == "UNAVAILABLE")
        code, details = client.served(1, wait_for_ready=False)[0]
        assert "NOT_SERVING" in details, details
        backends[2].health.set("t.S", SERVING)
        assert until(lambda: client.served(1, wait_for_ready=False) == ["c"])
    finally:
        client.close()


def test_a_backend_without_the_health_service_is_used_unchecked(facade):
    plain = Backend("grpcio", "plain", "127.0.0.4", with_health=False)
    checked = Backend("grpcpy", "checked", "127.0.0.5")
    try:
        checked.health.set("t.S", NOT_SERVING)
        client = client_for(facade, [plain.address, checked.address], _config())
        try:
            assert until(lambda: client.served(1) == ["plain"])
            assert set(client.served(6)) == {"plain"}
            checked.health.set("t.S", SERVING)
            assert until(lambda: set(client.served(6)) == {"plain", "checked"})
        finally:
            client.close()
    finally:
        plain.stop()
        checked.stop()


def test_pick_first_and_the_inhibit_option_ignore_health(backends, facade):
    backends[0].health.set("t.S", NOT_SERVING)
    client = client_for(facade, [backends[0].address], _config("pick_first"))
    try:
        assert client.served(2) == ["a", "a"]
    finally:
        client.close()
    client = client_for(facade, [backends[0].address], _config(), [("grpc.inhibit_health_checking", 1)])
    try:
        assert client.served(2) == ["a", "a"]
    finally:
        client.close()


def test_an_unknown_service_name_is_not_serving(backends, facade):
    client = client_for(facade, [backends[0].address, backends[1].address], _config(service="no.such.Service"))
    try:
        assert until(lambda: client.served(1, wait_for_ready=False)[0][0] == "UNAVAILABLE")
        assert "SERVICE_UNKNOWN" in client.served(1, wait_for_ready=False)[0][1]
    finally:
        client.close()
