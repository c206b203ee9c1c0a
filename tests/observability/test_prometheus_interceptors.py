"""py-grpc-prometheus's interceptors (PromServerInterceptor on the server,
PromClientInterceptor through intercept_channel) on grpcpy's sync server
and channel: the same traffic as on grpcio gives the same counters, read
by prometheus_client's parser from a real HTTP scrape. The server
interceptor reads grpcio's private context._state (client, code) to label
grpc_server_handled_total; grpcpy's ServicerContext gives both.

The package has sync interceptors only (its server interceptor calls the
behaviour without awaiting it), so grpc.aio servers are not its use."""
import threading
import time
import urllib.request
from concurrent import futures

import grpc
import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from py_grpc_prometheus.prometheus_client_interceptor import PromClientInterceptor
from py_grpc_prometheus.prometheus_server_interceptor import PromServerInterceptor

import grpcpy

IMPLEMENTATIONS = {"grpcio": grpc, "grpcpy": grpcpy}


def _handlers(api, seen_inactive):
    def unary(request, context):
        if request == b"abort":
            context.abort(api.StatusCode.NOT_FOUND, "no such thing")
        if request == b"set_code":
            context.set_code(api.StatusCode.INVALID_ARGUMENT)
            return b""
        if request == b"raise":
            raise ValueError("the handler failed")
        if request == b"wait":      # until the client's deadline ends the call
            end = time.monotonic() + 60
            while context.is_active() and time.monotonic() < end:
                time.sleep(0.01)
            seen_inactive.set()
        return request

    def server_stream(request, context):
        yield request
        yield request

    def client_stream(requests, context):
        return b"".join(requests)

    def bidi(requests, context):
        for request in requests:
            yield request

    return api.method_handlers_generic_handler("demo.Counted", {
        "Unary": api.unary_unary_rpc_method_handler(unary),
        "ServerStream": api.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": api.stream_unary_rpc_method_handler(client_stream),
        "Bidi": api.stream_stream_rpc_method_handler(bidi),
    })


def _scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.name.endswith("_created")}


def _counters(api):
    """Run the traffic through a server and a channel of `api` with the
    interceptors; the counters a scrape shows once the server counted the
    last call."""
    registry = CollectorRegistry()
    seen_inactive = threading.Event()
    server = api.server(futures.ThreadPoolExecutor(4), handlers=[_handlers(api, seen_inactive)],
                        interceptors=[PromServerInterceptor(registry=registry)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    httpd, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    channel = api.insecure_channel("127.0.0.1:%d" % port)
    try:
        intercepted = api.intercept_channel(channel, PromClientInterceptor(registry=registry))
        unary = intercepted.unary_unary("/demo.Counted/Unary")
        codes = []
        for request in (b"x", b"x", b"abort", b"set_code", b"raise"):
            try:
                unary(request, timeout=30)
                codes.append("OK")
            except api.RpcError as exc:
                codes.append(exc.code().name)
        try:
            unary(b"wait", timeout=1)
        except api.RpcError as exc:
            codes.append(exc.code().name)
        assert codes == ["OK", "OK", "NOT_FOUND", "INVALID_ARGUMENT", "UNKNOWN", "DEADLINE_EXCEEDED"]
        assert list(intercepted.unary_stream("/demo.Counted/ServerStream")(b"s", timeout=30)) == [b"s", b"s"]
        assert intercepted.stream_unary("/demo.Counted/ClientStream")(iter([b"a", b"b"]), timeout=30) == b"ab"
        assert list(intercepted.stream_stream("/demo.Counted/Bidi")(iter([b"a", b"b", b"c"]), timeout=30)) \
            == [b"a", b"b", b"c"]
        assert seen_inactive.wait(60)
        end = time.monotonic() + 60
        while True:     # the waiting handler's call is counted when it returns
            counters = _scrape(httpd.server_port)
            handled = sum(value for (name, _), value in counters.items() if name == "grpc_server_handled_total")
            if handled >= 6 or time.monotonic() > end:
                return counters
            time.sleep(0.01)
    finally:
        channel.close()
        server.stop(None)
        httpd.shutdown()
        httpd.server_close()


def _value(counters, name, **labels):
    return counters.get((name, tuple(sorted(labels.items()))))


@pytest.fixture(scope="module")
def reference():
    counters = _counters(grpc)
    unary = dict(grpc_type="UNARY", grpc_service="demo.Counted", grpc_method="Unary")
    # the reference as the package documents it (a sanity check of the traffic)
    assert _value(counters, "grpc_server_handled_total", grpc_code="OK", **unary) == 2
    assert _value(counters, "grpc_server_handled_total", grpc_code="NOT_FOUND", **unary) == 1
    assert _value(counters, "grpc_server_handled_total", grpc_code="INVALID_ARGUMENT", **unary) == 1
    assert _value(counters, "grpc_server_handled_total", grpc_code="UNKNOWN", **unary) == 1
    assert _value(counters, "grpc_server_handled_total", grpc_code="CANCELLED", **unary) == 1
    assert _value(counters, "grpc_client_handled_total", grpc_code="DEADLINE_EXCEEDED", **unary) == 1
    assert _value(counters, "grpc_server_started_total", **unary) == 6
    assert _value(counters, "grpc_server_msg_sent_total", grpc_type="BIDI_STREAMING",
                  grpc_service="demo.Counted", grpc_method="Bidi") == 3
    return counters


def test_grpcpy_counts_as_grpcio(reference):
    assert _counters(grpcpy) == reference


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_context_state(name):
    """context._state (grpcio's first, the reference): client "open" while
    a streaming client still sends, "closed" once it half-closed; code None
    until set, then the code set."""
    api = IMPLEMENTATIONS[name]
    seen = []

    def collect(requests, context):
        seen.append((context._state.client, context._state.code))
        consumed = list(requests)
        context.set_code(api.StatusCode.ALREADY_EXISTS)
        seen.append((context._state.client, context._state.code))
        return b"".join(consumed)

    server = api.server(futures.ThreadPoolExecutor(2), handlers=[api.method_handlers_generic_handler(
        "demo.State", {"Collect": api.stream_unary_rpc_method_handler(collect)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    release = threading.Event()

    def requests():
        yield b"a"
        release.wait(30)
        yield b"b"

    try:
        with api.insecure_channel("127.0.0.1:%d" % port) as channel:
            future = channel.stream_unary("/demo.State/Collect").future(requests(), timeout=30)
            end = time.monotonic() + 30
            while not seen and time.monotonic() < end:
                time.sleep(0.01)
            release.set()
            with pytest.raises(api.RpcError) as failed:
                future.result(timeout=30)
            assert failed.value.code() == api.StatusCode.ALREADY_EXISTS
    finally:
        server.stop(None)
    assert seen == [("open", None), ("closed", api.StatusCode.ALREADY_EXISTS)]
