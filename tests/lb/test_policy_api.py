"""The public balancer and resolver API under both facades, against real
grpcio servers: a pushing resolver whose addresses change while calls run,
address attributes, a policy that sees each call (method, metadata) and how
each attempt ended (status, trailers), policy timers, a policy's stream on a
subchannel, and config validation."""
import concurrent.futures
import itertools
import json
import math
import threading

import grpc
import pytest
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2, health_pb2_grpc

import grpcpy
import grpcpy.aio
from grpcpy import balancer, resolver
from grpcpy._channel import resolver as resolver_mod
from grpcpy._channel.lb import POLICIES
from tests.lb.served_by import ECHO, ServedByClient, until

def _start(name, host="127.0.0.1"):
    pool = concurrent.futures.ThreadPoolExecutor(4)
    srv = grpc.server(pool)
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "t.S", {"Echo": grpc.unary_unary_rpc_method_handler(
            lambda request, context: (context.set_trailing_metadata((("served-by", name),)), request)[1])}),))
    health = grpc_health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, srv)
    port = srv.add_insecure_port("%s:0" % host)
    srv.start()
    srv.health = health
    srv.port = port
    srv.pool = pool
    return srv


@pytest.fixture(scope="module")
def backends():
    servers = [_start("a", "127.0.0.1"), _start("b", "127.0.0.2")]
    yield servers
    for srv in servers:
        srv.stop(None).wait(5)
        srv.pool.shutdown(wait=False)


_names = itertools.count()


@pytest.fixture
def name():
    """A fresh scheme / policy name, unregistered after the test."""
    n = "test-api-%d" % next(_names)
    yield n
    resolver_mod._FACTORIES.pop(n, None)
    POLICIES.pop(n, None)


class Pushed(resolver.Resolver):
    """A resolver fed from the test: ``Pushed.listeners`` gets its listener."""
    listeners = []
    closed = []

    def start(self, listener):
        self.listeners.append(listener)
        listener.update(self.first)

    def close(self):
        self.closed.append(self)


@pytest.fixture(params=["sync", "aio"])
def facade(request):
    return request.param


def test_a_pushing_resolver_moves_calls_while_they_run(backends, facade, name):
    a, b = backends

    class Moving(Pushed):
        listeners = []
        closed = []
        first = [resolver.Address.ip("127.0.0.1", a.port)]

    resolver.register_resolver(name, Moving)
    client = ServedByClient(facade, "%s:///svc" % name)
    try:
        assert client.call() == (b"hi", "a")
        listener, = Moving.listeners
        # from another thread, as a registry watch would
        threading.Thread(target=listener.update, args=([resolver.Address.ip("127.0.0.2", b.port)],)).start()
        assert until(lambda: client.call()[1] == "b")
        # both, under round_robin given by the resolver's own service config
        listener.update([resolver.Address.ip("127.0.0.1", a.port), resolver.Address.ip("127.0.0.2", b.port)],
                        json.dumps({"loadBalancingConfig": [{"round_robin": {}}]}))
        assert until(lambda: {client.call()[1] for _ in range(4)} == {"a", "b"})
    finally:
        client.close()
    assert len(Moving.closed) == 1


def test_a_resolver_error_before_any_address_fails_calls_unavailable(facade, name):
    class Failing(resolver.Resolver):
        def start(self, listener):
            listener.error("the registry is down")

    resolver.register_resolver(name, Failing)
    client = ServedByClient(facade, "%s:///svc" % name)
    try:
        code, details = client.outcome(wait_for_ready=False)
        assert code == "UNAVAILABLE" and "the registry is down" in details, details
    finally:
        client.close()


def test_a_policy_sees_calls_attributes_and_outcomes(backends, facade, name):
    a, b = backends
    seen = {"picks": [], "done": [], "weights": None, "timer": []}

    class Recording(POLICIES["round_robin"]):
        uses_pick_info = True
        fire_at = math.inf

        def update_addresses(self, now, addresses):
            super().update_addresses(now, addresses)
            seen["weights"] = sorted(sub.address.attributes.get("weight") for sub in self.subchannels)
            self.fire_at = now + 0.05

        def next_timer(self):
            return self.fire_at

        def timer(self, now):
            self.fire_at = math.inf
            seen["timer"].append(now)

        def pick(self, info):
            sub_id = super().pick(info)
            if sub_id is None:
                return None
            seen["picks"].append((info.method, dict(info.metadata or ()).get("k")))
            return sub_id, lambda now, code, trailing: seen["done"].append((code, dict(trailing or ()).get("served-by")))

    Recording.name = name
    balancer.register_policy(Recording)

    class Two(Pushed):
        listeners = []
        closed = []
        first = [resolver.Address.ip("127.0.0.1", a.port, weight=1), resolver.Address.ip("127.0.0.2", b.port, weight=5)]

    resolver.register_resolver(name, Two)
    client = ServedByClient(facade, "%s:///svc" % name, [("grpc.lb_policy_name", name)])
    try:
        # until both backends are READY (round_robin picks among the READY ones)
        assert until(lambda: {client.call()[1] for _ in range(2)} == {"a", "b"})
        assert until(lambda: len(seen["done"]) == len(seen["picks"]))
        seen["picks"].clear()
        seen["done"].clear()
        served = [client.call(metadata=(("k", "v%d" % i),))[1] for i in range(4)]
        assert sorted(served) == ["a", "a", "b", "b"]
        assert until(lambda: len(seen["done"]) == 4)
        assert seen["picks"] == [(ECHO, "v%d" % i) for i in range(4)]
        assert sorted(seen["done"]) == [(0, "a"), (0, "a"), (0, "b"), (0, "b")]
        assert seen["weights"] == [1, 5]
        assert until(lambda: len(seen["timer"]) == 1)
        # new attributes for the same addresses: the same subchannels (no reconnect), new weights
        listener, = Two.listeners
        listener.update([resolver.Address.ip("127.0.0.1", a.port, weight=7),
                         resolver.Address.ip("127.0.0.2", b.port, weight=5)])
        assert until(lambda: seen["weights"] == [5, 7])
        assert client.call()[0] == b"hi"
    finally:
        client.close()


def test_a_policy_stream_on_each_subchannel(backends, facade, name):
    a, b = backends
    a.health.set("", health_pb2.HealthCheckResponse.SERVING)
    messages = []
    ends = []

    class Watching(POLICIES["round_robin"]):
        def __init__(self, helper, config=None):
            super().__init__(helper, config)
            self.streams = {}

        def subchannel_state_changed(self, now, sub):
            if sub.state == balancer.READY and sub not in self.streams:
                self.streams[sub] = self.helper.open_stream(
                    sub, "/grpc.health.v1.Health/Watch", b"",
                    lambda now, data: messages.append(data), lambda now, code, details: ends.append(code))
            super().subchannel_state_changed(now, sub)

    Watching.name = name
    balancer.register_policy(Watching)
    client = ServedByClient(facade, "ipv4:127.0.0.1:%d" % a.port, [("grpc.lb_policy_name", name)])
    try:
        assert client.call()[0] == b"hi"
        assert until(lambda: messages == [b"\x08\x01"])
        a.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert until(lambda: messages == [b"\x08\x01", b"\x08\x02"])
    finally:
        client.close()
        a.health.set("", health_pb2.HealthCheckResponse.SERVING)
    assert ends == []       # cancelled with the channel: nothing reported after


def test_a_bad_policy_config_is_refused_naming_the_field(name):
    class Strict(POLICIES["round_robin"]):
        @classmethod
        def parse_config(cls, raw):
            if not isinstance(raw.get("size"), int):
                raise ValueError("size must be an integer")
            return raw["size"]

    Strict.name = name
    balancer.register_policy(Strict)
    config = json.dumps({"loadBalancingConfig": [{name: {"size": "big"}}]})
    with pytest.raises(ValueError) as info:
        grpcpy.insecure_channel("127.0.0.1:1", [("grpc.service_config", config)])
    assert "loadBalancingConfig" in str(info.value) and "size must be an integer" in str(info.value)
    good = json.dumps({"loadBalancingConfig": [{"unknown_first": {}}, {name: {"size": 3}}]})
    channel = grpcpy.insecure_channel("127.0.0.1:1", [("grpc.service_config", good)])
    try:
        assert type(channel._plane._policy) is Strict and channel._plane._policy.config == 3
    finally:
        channel.close()


def test_a_policy_that_raises_fails_calls_instead_of_hanging(backends, facade, name):
    a, _ = backends

    class Broken(POLICIES["round_robin"]):
        def pick(self, info):
            raise RuntimeError("bug in the policy")

    Broken.name = name
    balancer.register_policy(Broken)
    client = ServedByClient(facade, "ipv4:127.0.0.1:%d" % a.port, [("grpc.lb_policy_name", name)])
    try:
        code, details = client.outcome(wait_for_ready=False)
        assert code == "UNAVAILABLE" and "bug in the policy" in details, details
    finally:
        client.close()
