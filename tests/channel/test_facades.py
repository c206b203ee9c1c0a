"""The channel package under both facades, with real channels and a real
(grpcio) server: registered resolver schemes, the load-balancing registry,
and the driver's rules for calls that wait for a connection.  grpcio's own
client runs the same scenarios where it has the feature, as the reference."""
import asyncio
import concurrent.futures
import itertools
import json
import logging
import socket

import grpc
import pytest

import grpcpy
import grpcpy.aio
import grpcpy.experimental
from grpcpy._channel import resolver as resolver_mod
from grpcpy._channel.lb import POLICIES, policy_for, register_policy
from grpcpy._channel.lb.base import LoadBalancingPolicy
from grpcpy._channel.target import parse_target
from grpcpy._options import ChannelOptions

ECHO = "/t.S/Echo"


@pytest.fixture(scope="module")
def server():
    pool = concurrent.futures.ThreadPoolExecutor(4)
    srv = grpc.server(pool)
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "t.S", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request)}),))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield port
    srv.stop(None).wait(5)
    pool.shutdown(wait=False)


def _outcome(call):
    try:
        return call()
    except (grpc.RpcError, grpcpy.RpcError) as exc:
        return exc.code().name, exc.details()


def call_sync(mod, target, options=None, wait_for_ready=None, timeout=5):
    with mod.insecure_channel(target, options) as channel:
        echo = channel.unary_unary(ECHO)
        return _outcome(lambda: echo(b"hi", timeout=timeout, wait_for_ready=wait_for_ready))


def call_aio(target, options=None, wait_for_ready=None, timeout=5):
    async def scenario():
        async with grpcpy.aio.insecure_channel(target, options) as channel:
            echo = channel.unary_unary(ECHO)
            try:
                return await echo(b"hi", timeout=timeout, wait_for_ready=wait_for_ready)
            except grpcpy.RpcError as exc:
                return exc.code().name, exc.details()
    return asyncio.run(scenario())


CLIENTS = {
    "grpcpy": lambda *a, **k: call_sync(grpcpy, *a, **k),
    "grpcpy.aio": call_aio,
}
REFERENCE = {"grpcio": lambda *a, **k: call_sync(grpc, *a, **k)}


@pytest.fixture(params=list(CLIENTS))
def client(request):
    return CLIENTS[request.param]


@pytest.fixture(params=list(CLIENTS) + list(REFERENCE))
def any_client(request):
    return {**CLIENTS, **REFERENCE}[request.param]


_names = itertools.count()


@pytest.fixture
def scheme():
    """A fresh scheme name, unregistered after the test."""
    name = "test-scheme-%d" % next(_names)
    yield name
    resolver_mod._FACTORIES.pop(name, None)


# ---------------------------------------------------------------- resolvers

def test_a_registered_scheme_parses_as_a_uri(scheme):
    with pytest.raises(ValueError, match="unknown scheme"):
        parse_target("%s://x/y" % scheme)
    grpcpy.experimental.register_resolver(scheme, grpcpy.experimental.Resolver)
    t = parse_target("%s://zone-a/blue/green" % scheme)
    assert (t.scheme, t.authority, t.dns_server, t.path) == (scheme, "blue/green", "zone-a", "blue/green")
    t = parse_target("%s:///svc" % scheme.upper())
    assert (t.scheme, t.authority, t.dns_server, t.path) == (scheme, "svc", None, "svc")
    with pytest.raises(ValueError, match="no path"):
        parse_target("%s:///" % scheme)


def test_register_resolver_checks_its_arguments():
    with pytest.raises(ValueError):
        grpcpy.experimental.register_resolver("1bad", grpcpy.experimental.Resolver)
    with pytest.raises(TypeError):
        grpcpy.experimental.register_resolver("fine", "not callable")
    assert "fine" not in resolver_mod.registered_schemes()


def test_a_factory_must_make_a_resolver(scheme):
    grpcpy.experimental.register_resolver(scheme, lambda target: object())
    with pytest.raises(TypeError, match="not a Resolver"):
        grpcpy.insecure_channel("%s:///x" % scheme)


def test_a_registered_scheme_with_addresses(client, server, scheme):
    seen = []

    class Fleet(grpcpy.experimental.Resolver):
        def addresses(self):
            seen.append(self.target.path)
            return [grpcpy.experimental.Address.ip("127.0.0.1", server)]

    grpcpy.experimental.register_resolver(scheme, Fleet)
    assert client("%s:///blue" % scheme) == b"hi"
    assert seen == ["blue"]


def test_a_registered_scheme_with_a_lookup(client, server, scheme):
    answers = []

    class ByName(grpcpy.experimental.Resolver):
        def lookup(self):
            return "localhost", server

        def lookup_done(self, addresses):
            answers.append(addresses)
            return [a for a in addresses if a.family == "inet"]   # the server is on 127.0.0.1 only

    grpcpy.experimental.register_resolver(scheme, ByName)
    assert client("%s:///anything" % scheme) == b"hi"
    assert grpcpy.experimental.Address("inet", "127.0.0.1", server) in answers[0]


def test_a_resolver_that_raises_fails_the_call(client, scheme):
    class Broken(grpcpy.experimental.Resolver):
        def lookup(self):
            raise LookupError("no such fleet")

    grpcpy.experimental.register_resolver(scheme, Broken)
    code, details = client("%s:///x" % scheme)
    assert code == "UNAVAILABLE"
    assert details == "name resolution failed for x: LookupError: no such fleet"


# ---------------------------------------------------------------- load balancing

def _names_for(options):
    return policy_for(ChannelOptions(options)).name


def test_policy_choice(caplog):
    assert _names_for(None) == "pick_first"
    assert _names_for([("grpc.lb_policy_name", "round_robin")]) == "round_robin"
    with caplog.at_level(logging.ERROR, logger="grpcpy.channel"):
        assert _names_for([("grpc.lb_policy_name", "no_such")]) == "pick_first"
    assert "no_such" in caplog.text
    config = {"loadBalancingConfig": [{"no_such": {}}, {"round_robin": {}}]}
    # the service config's choice wins over the channel option
    assert _names_for([("grpc.service_config", json.dumps(config)),
                       ("grpc.lb_policy_name", "pick_first")]) == "round_robin"
    assert _names_for([("grpc.service_config", '{"loadBalancingPolicy": "ROUND_ROBIN"}')]) == "round_robin"
    with pytest.raises(ValueError, match="No known policies in list: a b"):
        _names_for([("grpc.service_config", '{"loadBalancingConfig": [{"a": {}}, {"b": {}}]}')])


def test_register_policy():
    with pytest.raises(TypeError):
        register_policy(object)

    class Nameless(LoadBalancingPolicy):
        pass

    with pytest.raises(TypeError):
        register_policy(Nameless)

    class Mine(POLICIES["pick_first"]):
        name = "test_mine"

    register_policy(Mine)
    try:
        assert _names_for([("grpc.lb_policy_name", "test_mine")]) == "test_mine"
    finally:
        POLICIES.pop("test_mine")


@pytest.mark.parametrize("options", [
    [("grpc.lb_policy_name", "no_such_policy")],
    [("grpc.service_config", json.dumps({"loadBalancingConfig": [{"nope": {}}, {"round_robin": {}}]}))],
])
def test_policy_options_that_work(any_client, server, options):
    assert any_client("127.0.0.1:%d" % server, options) == b"hi"


def test_a_service_config_without_a_known_policy(client, server):
    # grpcio makes the channel and fails its calls with the message; grpcpy
    # refuses to make it, with the same message
    config = json.dumps({"loadBalancingConfig": [{"nope": {}}]})
    target = "127.0.0.1:%d" % server
    code, details = REFERENCE["grpcio"](target, [("grpc.service_config", config)])
    assert code == "INVALID_ARGUMENT"
    with pytest.raises(ValueError) as info:
        client(target, [("grpc.service_config", config)])
    assert "No known policies in list: nope" in str(info.value)
    assert details.endswith(":" + str(info.value))


# ---------------------------------------------------------------- waiting calls

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fail_fast_and_deadline_while_waiting(any_client):
    target = "127.0.0.1:%d" % _free_port()
    code, details = any_client(target)
    assert code == "UNAVAILABLE"
    code, details = any_client(target, wait_for_ready=True, timeout=0.2)
    assert (code, details) == ("DEADLINE_EXCEEDED", "Deadline Exceeded")


def test_close_fails_waiting_calls_sync():
    channel = grpcpy.insecure_channel("127.0.0.1:%d" % _free_port())
    echo = channel.unary_unary(ECHO)
    futures = [echo.future(b"x", wait_for_ready=True) for _ in range(2)]
    while True:
        with channel._lock:
            if len(channel._queue) == 2:
                break
    channel.close()
    for future in futures:
        exc = future.exception(timeout=5)
        assert (exc.code(), exc.details()) == (grpcpy.StatusCode.CANCELLED, "Channel closed!")


def test_close_fails_waiting_calls_aio():
    async def scenario():
        channel = grpcpy.aio.insecure_channel("127.0.0.1:%d" % _free_port())
        echo = channel.unary_unary(ECHO)
        tasks = [asyncio.ensure_future(echo(b"x", wait_for_ready=True)) for _ in range(2)]
        while len(channel._queue) < 2:
            await asyncio.sleep(0)
        await channel.close()
        for task in tasks:
            with pytest.raises(grpcpy.RpcError) as info:
                await task
            assert (info.value.code(), info.value.details()) == (grpcpy.StatusCode.CANCELLED, "Channel closed!")
    asyncio.run(scenario())


def test_a_waiting_call_starts_when_the_server_comes(client):
    """wait_for_ready: the call waits through failed connects and backoff, and
    starts on the first connection."""
    port = _free_port()
    options = [("grpc.testing.fixed_reconnect_backoff_ms", 100)]
    pool = concurrent.futures.ThreadPoolExecutor(1)
    outcome = pool.submit(client, "127.0.0.1:%d" % port, options, True, 30)
    srv = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "t.S", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request)}),))
    try:
        srv.add_insecure_port("127.0.0.1:%d" % port)
        srv.start()
        assert outcome.result(30) == b"hi"
    finally:
        srv.stop(None)
        pool.shutdown(wait=False)
