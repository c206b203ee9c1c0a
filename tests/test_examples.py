"""Every program in examples/ runs from a fresh interpreter and prints
what it promises."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(name):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True,
                          timeout=60, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_resolver_and_aio_run():
    lines = _run("resolver_and_aio_run.py")
    assert lines[0] == "sync: echo:hello"
    # grpcpy.aio.run picks uvloop when it is installed (it is, for the tests)
    assert lines[1] == "aio (uvloop loop): echo:hello"


def test_graceful_stop():
    assert _run("graceful_stop.py") == ["short deadline: DEADLINE_EXCEEDED",
                                        "in flight during the stop: done after 0.3 s",
                                        "after the stop: UNAVAILABLE"]


def test_server_stream_limits():
    lines = _run("server_stream_limits.py")
    assert lines[0] in ["12 calls on one channel: 12 succeeded, at most %d ran at once" % n for n in (1, 2, 3)]
    assert lines[1:] == ["while a request was on its way: done:quick", "then: done:late"]


def test_fork_workers():
    assert _run("fork_workers.py") == [
        "parent: echo:before fork",
        "workers ok: 3 of 3",
        "parent: echo:after fork",
    ]


def test_keepalive():
    lines = _run("keepalive.py")
    assert lines == ["call across the server's max_connection_age: done after 1.0 s",
                     "next call: done after 0 s",
                     "connections the server saw: 2"]


def test_retry():
    assert _run("retry.py") == ["with a retry policy: ok:hello, answered by attempt 3",
                                "with a retry policy: ok:again, answered by attempt 3",
                                "without one: UNAVAILABLE, answered by attempt 1"]


def test_health():
    assert _run("health.py") == [
        "check '': SERVING",
        "check 'demo.Echo': NOT_FOUND",
        "watch: SERVICE_UNKNOWN",
        "watch: SERVING",
        "watch: NOT_SERVING",
        "watch: SERVING",
        "list: {'': 'SERVING', 'demo.Echo': 'SERVING'}",
        "stopping; watch: NOT_SERVING",
        "server stopped",
    ]


def test_reflection():
    assert _run("reflection.py") == [
        "services: demo.Greeter, grpc.health.v1.Health, grpc.reflection.v1.ServerReflection, "
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.health.v1.Health.Watch is in grpc/health/v1/health.proto",
        "demo.Greeter.SayHello is in demo/greeter.proto (with google/protobuf/timestamp.proto)",
        "rpc SayHello(demo.HelloRequest) returns (demo.HelloReply)",
        "demo.HelloReply: string message, google.protobuf.Timestamp at",
        "dynamic call: Hello, reflection! (at set: True)",
    ]


def test_rich_errors():
    assert _run("rich_errors.py") == ["ordered 2",
                                      "INVALID_ARGUMENT: the order is not valid, quantity must be positive",
                                      "RESOURCE_EXHAUSTED: not enough stock, retry in 3 s",
                                      "aio: INVALID_ARGUMENT, 1 detail(s)"]


def test_with_grpcpy_testing():
    lines = _run("test_with_grpcpy_testing.py")
    assert any(line.startswith("4 passed") for line in lines), lines


def test_channelz():
    assert _run("channelz.py") == ["channel to the app: READY, 4 calls started, 3 succeeded, 1 failed",
                                   "its socket: 4 messages sent, 3 received",
                                   "app server: 4 calls started, 3 succeeded, 1 failed"]


def test_custom_balancer():
    assert _run("custom_balancer.py") == ["primary blue: {'blue': 6}", "primary green: {'green': 6}",
                                          "green gone, spill-over: {'blue': 6}", "one OK report per call: True"]


def test_client_health_checking():
    assert _run("client_health_checking.py") == ["all serving: ['one', 'three', 'two']",
                                                 "two not serving: ['one', 'three']",
                                                 "two back: ['one', 'three', 'two']"]


def test_weighted_round_robin():
    lines = _run("weighted_round_robin.py")
    shares = [int(line.split(": ")[1].split("%")[0]) for line in lines]
    # CPU 0.2 / 0.4 / 0.8 at equal qps: weights 4 : 2 : 1, so 57 / 29 / 14 %
    assert [line.split(" (")[0] for line in lines] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"], lines
    for share, expected in zip(shares, (57, 29, 14)):
        assert abs(share - expected) <= 5, lines


def test_name_resolution():
    assert _run("name_resolution.py") == ["a+b: a: 10, b: 10",
                                          "calls while the registry changed: 0 failed",
                                          "b+c: b: 15, c: 15"]


def test_ring_hash():
    assert _run("ring_hash.py") == [
        "placement: alice->shard-2, bob->shard-2, carol->shard-3, dave->shard-3, erin->shard-1, frank->shard-3",
        "without x-user: 3 shards",
        "shard-2 gone, moved: alice, bob",
        "the others stayed: True",
        "shards in use: {'shard-1': 2, 'shard-3': 4}"]


def test_outlier_detection():
    assert _run("outlier_detection.py") == ["first calls served by: a b c - some failed: True",
                                            "after the ejection, 30 calls served by: a c",
                                            "after the ejection time, b is called again: True"]


def test_opentelemetry_instrumentation():
    assert _run("opentelemetry_instrumentation.py") == [
        "sync: b'hello world' INVALID_ARGUMENT",
        "aio: b'hello async world'",
        "CLIENT /demo.Greeter/Hello status=UNSET rpc.grpc.status_code=0",
        "SERVER /demo.Greeter/Hello status=UNSET rpc.grpc.status_code=0",
        "CLIENT /demo.Greeter/Hello status=ERROR rpc.grpc.status_code=3",
        "SERVER /demo.Greeter/Hello status=UNSET rpc.grpc.status_code=3",
        "CLIENT /demo.AioGreeter/Hello status=UNSET rpc.grpc.status_code=0",
        "SERVER /demo.AioGreeter/Hello status=UNSET rpc.grpc.status_code=0"]


def test_stats_hooks():
    lines = _run("stats_hooks.py")
    assert [line.split()[:3] for line in lines] == [["client", "/demo.Greeter/SayHello", "calls=205"],
                                                   ["server", "/demo.Greeter/SayHello", "calls=205"]]
    for line in lines:
        assert line.endswith("INVALID_ARGUMENT=5, OK=200")
        p50, p95, p99 = (float(part.split("=")[1][:-2]) for part in line.split()[3:6])
        assert 0 < p50 <= p95 <= p99


def test_opentelemetry_tracing():
    hops = [("Sent.demo.Shop.Buy", "CLIENT"), ("Attempt.demo.Shop.Buy", "INTERNAL"), ("Recv.demo.Shop.Buy", "SERVER"),
            ("Sent.demo.Stock.Take", "CLIENT"), ("Attempt.demo.Stock.Take", "INTERNAL"),
            ("Recv.demo.Stock.Take", "SERVER")]
    lines = _run("opentelemetry_tracing.py")
    expected = []
    for item, status in (("apple", "OK"), ("pear", "ERROR (FAILED_PRECONDITION, out of stock)")):
        # one trace per purchase: the application's span, then the six spans of two hops, each a child of the one before
        expected += [("", "trace of 'buy %s': 7 spans" % item), ("", "buy %s INTERNAL UNSET" % item)]
        expected += [("  " * depth, "%s %s %s" % (name, kind, status)) for depth, (name, kind) in enumerate(hops, 1)]
    assert [(line[:len(line) - len(line.lstrip())], " ".join(line.split())) for line in lines] == expected


def test_prometheus_metrics():
    labels = 'grpc_method="Say",grpc_service="demo.Echo",grpc_type="unary"'
    lines = []
    for side, sent, received in (("server", 3, 4), ("client", 4, 3)):
        lines += ["grpc_%s_started_total{%s} 4.0" % (side, labels),
                  'grpc_%s_handled_total{grpc_code="OK",%s} 3.0' % (side, labels),
                  'grpc_%s_handled_total{grpc_code="InvalidArgument",%s} 1.0' % (side, labels),
                  "grpc_%s_msg_received_total{%s} %d.0" % (side, labels, received),
                  "grpc_%s_msg_sent_total{%s} %d.0" % (side, labels, sent),
                  "grpc_%s_handling_seconds_count{%s} 4.0" % (side, labels)]
    assert _run("prometheus_metrics.py") == lines


def test_opentelemetry_metrics():
    lines = [" ".join(line.split()) for line in _run("opentelemetry_metrics.py")]
    assert lines == [
        "call failed: INVALID_ARGUMENT",
        "grpc.client.attempt.duration INVALID_ARGUMENT=1 OK=3",
        "grpc.client.attempt.rcvd_total_compressed_message_size INVALID_ARGUMENT=1 OK=3 (38 bytes)",
        "grpc.client.attempt.sent_total_compressed_message_size INVALID_ARGUMENT=1 OK=3 (11 bytes)",
        "grpc.client.attempt.started started=4",
        "grpc.client.call.duration INVALID_ARGUMENT=1 OK=3",
        "grpc.server.call.duration INVALID_ARGUMENT=1 OK=3",
        "grpc.server.call.rcvd_total_compressed_message_size INVALID_ARGUMENT=1 OK=3 (11 bytes)",
        "grpc.server.call.sent_total_compressed_message_size INVALID_ARGUMENT=1 OK=3 (38 bytes)",
        "grpc.server.call.started started=4",
    ]


def test_observability():
    lines = _run("observability.py")
    assert [line for line in lines if line.startswith("lookup")] == ["lookup ada: found ada", "lookup nobody: NOT_FOUND"]
    spans = [line.split() for line in lines if line.startswith("span")]
    assert len(spans) == 6
    for status in ("OK", "ERROR"):
        trace = {name: dict(field.split("=") for field in fields) for _, name, *fields, s in spans if s == status}
        # one trace per call: Sent (the client call) -> Attempt -> Recv (the server)
        assert sorted(trace) == ["Attempt.demo.Users.Lookup", "Recv.demo.Users.Lookup", "Sent.demo.Users.Lookup"]
        sent, attempt, recv = (trace[n + ".demo.Users.Lookup"] for n in ("Sent", "Attempt", "Recv"))
        assert sent["trace"] == attempt["trace"] == recv["trace"]
        assert (attempt["parent"], recv["parent"]) == (sent["id"], attempt["id"])
    handled = sorted(line for line in lines if line.startswith("grpc_"))
    labels = 'grpc_method="Lookup",grpc_service="demo.Users",grpc_type="unary"'
    assert handled == sorted('grpc_%s_handled_total{grpc_code="%s",%s} 1.0' % (side, code, labels)
                             for side in ("client", "server") for code in ("OK", "NotFound"))
