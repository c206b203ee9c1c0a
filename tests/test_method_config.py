"""A service config's methodConfig takes effect on calls: timeout,
waitForReady, maxRequestMessageBytes, maxResponseMessageBytes, and name
matching (method over service over default). Each scenario runs with
grpcio's client first (the reference) and then grpcpy's, sync and aio,
against one grpcpy server.

Except the timeout: grpcio (1.85) counts a methodConfig timeout from when
the process started gRPC, not from the call (measured: with "10s" a call
made 1.5 s after start ends DEADLINE_EXCEEDED after 8.5 s, and sends no
grpc-timeout), so it is no reference there; the spec's rule (the smaller of
the config's and the call's timeout, from the call's start) is tested on
grpcpy alone."""
import asyncio
import json
import threading
import time
from concurrent import futures

import grpc
import grpc.aio
import pytest

import grpcpy
import grpcpy.aio

CLIENTS = ["grpcio", "grpcpy-sync", "grpcpy-aio"]
GRPCPY = ["grpcpy-sync", "grpcpy-aio"]


def _handlers():
    def sleep(request, context):
        time.sleep(float(request.decode() or "0"))
        return b"slept"

    def echo_size(request, context):
        return b"x" * int(request.decode())

    return grpcpy.method_handlers_generic_handler("t.Conf", {
        "Sleep": grpcpy.unary_unary_rpc_method_handler(sleep),
        "Other": grpcpy.unary_unary_rpc_method_handler(sleep),
        "Size": grpcpy.unary_unary_rpc_method_handler(echo_size),
    }), grpcpy.method_handlers_generic_handler("t.Else", {
        "Sleep": grpcpy.unary_unary_rpc_method_handler(sleep),
    })


def _server(port=0):
    server = grpcpy.server(futures.ThreadPoolExecutor(8))
    server.add_generic_rpc_handlers(_handlers())
    port = server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    return server, port


@pytest.fixture(scope="module")
def target():
    server, port = _server()
    yield "127.0.0.1:%d" % port
    server.stop(None)


def call(client, target, config, method, request, timeout=None, wait_for_ready=None):
    """One unary call: (status code, details, response or None)."""
    options = [("grpc.service_config", json.dumps(config))]
    if client == "grpcio":
        with grpc.insecure_channel(target, options=options) as channel:
            try:
                response = channel.unary_unary(method)(request, timeout=timeout, wait_for_ready=wait_for_ready)
                return grpc.StatusCode.OK.name, "", response
            except grpc.RpcError as err:
                return err.code().name, err.details(), None
    if client == "grpcpy-sync":
        with grpcpy.insecure_channel(target, options=options) as channel:
            try:
                response = channel.unary_unary(method)(request, timeout=timeout, wait_for_ready=wait_for_ready)
                return "OK", "", response
            except grpcpy.RpcError as err:
                return err.code().name, err.details(), None

    async def aio():
        async with grpcpy.aio.insecure_channel(target, options=options) as channel:
            try:
                response = await channel.unary_unary(method)(request, timeout=timeout,
                                                             wait_for_ready=wait_for_ready)
                return "OK", "", response
            except grpcpy.aio.AioRpcError as err:
                return err.code().name, err.details(), None
    return asyncio.run(aio())


def _method_config(names, **fields):
    return {"methodConfig": [dict(name=names, **fields)]}


@pytest.mark.parametrize("client", GRPCPY)
def test_timeout_stops_a_longer_handler(client, target):
    config = _method_config([{"service": "t.Conf"}], timeout="0.3s")
    code, _, _ = call(client, target, config, "/t.Conf/Sleep", b"1.5")
    assert code == "DEADLINE_EXCEEDED"
    # the call's own, shorter, timeout wins; a longer one does not
    code, _, _ = call(client, target, config, "/t.Conf/Sleep", b"1.5", timeout=10)
    assert code == "DEADLINE_EXCEEDED"
    code, _, response = call(client, target, config, "/t.Conf/Sleep", b"0", timeout=10)
    assert (code, response) == ("OK", b"slept")


@pytest.mark.parametrize("client", GRPCPY)
def test_most_specific_name_wins(client, target):
    config = {"methodConfig": [
        {"name": [{}], "timeout": "0.2s"},                                  # the default
        {"name": [{"service": "t.Conf"}], "timeout": "5s"},                 # the service
        {"name": [{"service": "t.Conf", "method": "Sleep"}], "timeout": "0.3s"},
    ]}
    assert call(client, target, config, "/t.Conf/Sleep", b"1")[0] == "DEADLINE_EXCEEDED"     # method entry
    assert call(client, target, config, "/t.Conf/Other", b"0.6")[0] == "OK"                  # service entry
    assert call(client, target, config, "/t.Else/Sleep", b"0.6")[0] == "DEADLINE_EXCEEDED"   # default


@pytest.mark.parametrize("client", CLIENTS)
def test_max_response_message_bytes(client, target):
    config = _method_config([{"service": "t.Conf", "method": "Size"}], maxResponseMessageBytes=64)
    code, _, response = call(client, target, config, "/t.Conf/Size", b"64", timeout=5)
    assert (code, response) == ("OK", b"x" * 64)
    code, details, _ = call(client, target, config, "/t.Conf/Size", b"65", timeout=5)
    assert code == "RESOURCE_EXHAUSTED" and "65 vs. 64" in details


@pytest.mark.parametrize("client", CLIENTS)
def test_max_request_message_bytes(client, target):
    config = _method_config([{"service": "t.Conf", "method": "Size"}], maxRequestMessageBytes=3)
    assert call(client, target, config, "/t.Conf/Size", b"100", timeout=5)[0] == "OK"
    code, details, _ = call(client, target, config, "/t.Conf/Size", b"1000", timeout=5)
    assert code == "RESOURCE_EXHAUSTED" and "4 vs. 3" in details


@pytest.mark.parametrize("client", CLIENTS)
def test_wait_for_ready_from_the_config(client):
    probe, port = _server()
    probe.stop(None)        # a port with nothing behind it, for now
    target = "127.0.0.1:%d" % port
    # without waitForReady the call fails fast
    code, _, _ = call(client, target, {}, "/t.Conf/Sleep", b"0", timeout=5)
    assert code == "UNAVAILABLE"
    started = []

    def start_later():
        time.sleep(0.5)
        started.append(_server(port)[0])

    thread = threading.Thread(target=start_later)
    thread.start()
    try:
        config = _method_config([{"service": "t.Conf"}], waitForReady=True)
        code, _, response = call(client, target, config, "/t.Conf/Sleep", b"0", timeout=10)
        assert (code, response) == ("OK", b"slept")
    finally:
        thread.join()
        for server in started:
            server.stop(None)
