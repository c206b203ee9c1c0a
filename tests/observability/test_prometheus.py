"""grpcpy.prometheus: known traffic between real peers, then a real HTTP
scrape of /metrics parsed by prometheus_client's own parser; the figures
per label set must be exactly the traffic's."""
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from concurrent import futures

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

import grpcpy
import grpcpy.prometheus
from tests.observability import traffic
from tests.observability.traffic import CALLS, KNOWN, SERVICE

# the grpc_code label values go-grpc-prometheus writes for the codes of the traffic
GO_CODES = {"OK": "OK", "NOT_FOUND": "NotFound", "UNIMPLEMENTED": "Unimplemented"}
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf"]
GRPCPY_SERVERS = ["grpcpy-sync", "grpcpy-aio"]
GRPCPY_CLIENTS = ["grpcpy-sync", "grpcpy-aio"]


@pytest.fixture
def registry():
    return prometheus_client.CollectorRegistry()


@pytest.fixture
def http(registry):
    """The one-line /metrics server, on a free port."""
    server = grpcpy.prometheus.start_http_server(0, addr="127.0.0.1", registry=registry)
    yield server
    server.close()


def scrape(port):
    """{(sample name, sorted labels): value} of a GET of /metrics."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as response:
        assert response.status == 200
        body = response.read().decode("utf-8")
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def series(samples, name, **labels):
    """The samples named `name` whose labels include `labels`: {labels: value}."""
    wanted = set(labels.items())
    return {key: value for (sample, key), value in samples.items()
            if sample == name and wanted <= set(key)}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def scrape_when(port, side, calls):
    """Scrape until `calls` calls have ended on `side` (the server may
    report a call's end after its client has the status: a bound against
    hangs, not a timing assertion)."""
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(port)
        ended = sum(series(samples, "grpc_%s_handled_total" % side).values())
        if ended >= calls or time.monotonic() > deadline:
            return samples
        time.sleep(0.02)


def assert_known(samples, side):
    """The figures of traffic.KNOWN on `side`, exactly, and nothing else
    of that side's."""
    received_from, sent_from = ("client", "server") if side == "server" else ("server", "client")
    prefix = "grpc_%s_" % side
    for (kind, method), (started, handled, from_client, from_server) in KNOWN.items():
        labels = dict(grpc_type=kind, grpc_service=SERVICE, grpc_method=method)
        counts = {"client": from_client, "server": from_server}
        assert value(samples, prefix + "started_total", **labels) == started, (method, samples)
        assert value(samples, prefix + "msg_received_total", **labels) == counts[received_from], method
        assert value(samples, prefix + "msg_sent_total", **labels) == counts[sent_from], method
        assert series(samples, prefix + "handled_total", **labels) == {
            tuple(sorted(dict(labels, grpc_code=GO_CODES[code]).items())): n for code, n in handled.items()}
        assert value(samples, prefix + "handling_seconds_count", **labels) == started
        assert value(samples, prefix + "handling_seconds_bucket", le="+Inf", **labels) == started
        assert value(samples, prefix + "handling_seconds_sum", **labels) > 0
        buckets = series(samples, prefix + "handling_seconds_bucket", **labels)
        assert sorted(dict(key)["le"] for key in buckets) == sorted(BUCKETS)
        by_bound = [value(samples, prefix + "handling_seconds_bucket", le=le, **labels) for le in BUCKETS]
        assert by_bound == sorted(by_bound), by_bound    # cumulative
    for name in ("started_total", "handled_total", "msg_received_total", "msg_sent_total"):
        assert sum(series(samples, prefix + name).values()) == sum(
            series(samples, prefix + name, grpc_service=SERVICE).values()), name


@pytest.mark.parametrize("client", traffic.CLIENTS)
@pytest.mark.parametrize("server", GRPCPY_SERVERS)
def test_server_metrics(registry, http, server, client):
    metrics = grpcpy.prometheus.Metrics(registry=registry, client=False)
    with traffic.serving(server, options=[("grpcpy.stats_hooks", metrics)]) as served:
        traffic.run_known_traffic(client, served.target)
        samples = scrape_when(http.port, "server", CALLS)
    assert_known(samples, "server")
    assert not [key for key in samples if key[0].startswith("grpc_client_")]   # client=False


@pytest.mark.parametrize("server", traffic.SERVERS)
@pytest.mark.parametrize("client", GRPCPY_CLIENTS)
def test_client_metrics(registry, http, client, server):
    metrics = grpcpy.prometheus.Metrics(registry=registry, server=False)
    with traffic.serving(server) as served:
        traffic.run_known_traffic(client, served.target, options=[("grpcpy.stats_hooks", metrics)])
        samples = scrape_when(http.port, "client", CALLS)
    assert_known(samples, "client")


@pytest.mark.parametrize("kind", GRPCPY_CLIENTS)
def test_registered_globally_both_sides(registry, http, kind):
    """register_global through `with`: the server and channel made inside
    report, both sides; those made after the block do not."""
    with grpcpy.prometheus.Metrics(registry=registry):
        with traffic.serving(kind) as served:
            traffic.run_known_traffic(kind, served.target)
            scrape_when(http.port, "server", CALLS)
            samples = scrape_when(http.port, "client", CALLS)     # counts only grow
    assert_known(samples, "server")
    assert_known(samples, "client")

    with traffic.serving(kind) as later:
        traffic.run_known_traffic(kind, later.target)
    assert scrape(http.port) == samples


@pytest.mark.parametrize("client", ["grpcpy-sync", "grpcio"])
@pytest.mark.parametrize("server", GRPCPY_SERVERS)
def test_unregistered_methods_have_bounded_labels(registry, http, server, client):
    """Random method names (unknown services, unknown methods of a known
    service) all count under one fixed label set, so a client cannot make
    the server grow series."""
    metrics = grpcpy.prometheus.Metrics(registry=registry)
    methods = ["/%s/%s" % (uuid.uuid4().hex, uuid.uuid4().hex) for _ in range(10)]
    methods += ["/%s/%s" % (SERVICE, uuid.uuid4().hex) for _ in range(10)]
    methods += ["/%s" % uuid.uuid4().hex, "/%s/Unary" % uuid.uuid4().hex]
    with traffic.serving(server, options=[("grpcpy.stats_hooks", metrics)]) as served:
        assert traffic.call_methods(client, served.target, methods) == ["UNIMPLEMENTED"] * len(methods)
        assert traffic.call_methods(client, served.target, [traffic.UNARY]) == ["OK"]
        samples = scrape_when(http.port, "server", len(methods) + 1)
    other = dict(grpc_type="unknown", grpc_service="other", grpc_method="other")
    assert series(samples, "grpc_server_started_total") == {
        tuple(sorted(other.items())): len(methods),
        tuple(sorted(dict(grpc_type="unary", grpc_service=SERVICE, grpc_method="Unary").items())): 1}
    assert series(samples, "grpc_server_handled_total", grpc_service="other") == {
        tuple(sorted(dict(other, grpc_code="Unimplemented").items())): len(methods)}
    assert value(samples, "grpc_server_msg_sent_total", **other) == 0
    names = {v for _, labels in samples for k, v in labels if k in ("grpc_service", "grpc_method")}
    assert names == {"other", SERVICE, "Unary"}


def test_concurrent_calls_are_counted_exactly(registry, http):
    """Calls from many threads at once on a fresh Metrics (its series are
    made while they run): every call and message counted, both sides."""
    threads, calls = 8, 25
    with grpcpy.prometheus.Metrics(registry=registry):
        with traffic.serving("grpcpy-sync") as served, grpcpy.insecure_channel(served.target) as channel:
            unary = channel.unary_unary(traffic.UNARY)
            start = threading.Barrier(threads)

            def run():
                start.wait(30)
                return [unary(b"x", timeout=traffic.TIMEOUT) for _ in range(calls)]

            with futures.ThreadPoolExecutor(threads) as pool:
                assert [len(f.result(60)) for f in [pool.submit(run) for _ in range(threads)]] == [calls] * threads
            scrape_when(http.port, "server", threads * calls)
            samples = scrape_when(http.port, "client", threads * calls)     # counts only grow
    labels = dict(grpc_type="unary", grpc_service=SERVICE, grpc_method="Unary")
    for side in ("server", "client"):
        prefix = "grpc_%s_" % side
        for name in ("started_total", "msg_received_total", "msg_sent_total", "handling_seconds_count"):
            assert value(samples, prefix + name, **labels) == threads * calls, (side, name)
        assert value(samples, prefix + "handled_total", grpc_code="OK", **labels) == threads * calls


class AnyMethod(grpcpy.GenericRpcHandler):
    """A generic handler that answers every method name (a catch-all)."""

    def service(self, handler_call_details):
        return grpcpy.unary_unary_rpc_method_handler(lambda request, context: request)


@pytest.mark.parametrize("server", GRPCPY_SERVERS)
def test_catch_all_handler_names_at_most_max_methods(registry, http, server):
    """Methods a generic handler answers are named, up to max_methods per
    side (the traffic's Unary is one); calls to any more count as "other"."""
    metrics = grpcpy.prometheus.Metrics(registry=registry, max_methods=4)
    methods = ["/%s/M%d" % (uuid.uuid4().hex, i) for i in range(10)]
    with traffic.serving(server, options=[("grpcpy.stats_hooks", metrics)], more_handlers=[AnyMethod()]) as served:
        assert traffic.call_methods("grpcio", served.target, [traffic.UNARY] + methods) == ["OK"] * 11
        samples = scrape_when(http.port, "server", 11)
    started = series(samples, "grpc_server_started_total")
    named = {dict(key)["grpc_method"] for key in started} - {"other", "Unary"}
    assert named == {"M0", "M1", "M2"}
    assert value(samples, "grpc_server_started_total", grpc_type="unary", grpc_service="other",
                 grpc_method="other") == 7
    assert sum(started.values()) == 11


class Slow(grpcpy.GenericRpcHandler):
    """Every method answers after `delay` seconds."""

    def __init__(self, delay):
        self.delay = delay

    def service(self, handler_call_details):
        def slow(request, context):
            time.sleep(self.delay)
            return request
        return grpcpy.unary_unary_rpc_method_handler(slow)


@pytest.mark.parametrize("server", GRPCPY_SERVERS)
def test_durations_fall_in_their_buckets(registry, http, server):
    """Calls that take at least 0.3 s: none in the buckets up to 0.25, all
    in +Inf, and a sum of at least 0.3 s each (both sides)."""
    buckets = (0.1, 0.25, 60)
    with grpcpy.prometheus.Metrics(registry=registry, buckets=buckets):
        with traffic.serving(server, more_handlers=[Slow(0.3)]) as served:
            assert traffic.call_methods("grpcpy-sync", served.target, ["/slow.S/M"] * 2) == ["OK", "OK"]
            scrape_when(http.port, "server", 2)
            samples = scrape_when(http.port, "client", 2)
    for side in ("server", "client"):
        labels = dict(grpc_type="unary", grpc_service="slow.S", grpc_method="M")
        name = "grpc_%s_handling_seconds_" % side
        assert {dict(key)["le"]: v for key, v in series(samples, name + "bucket", **labels).items()} == {
            "0.1": 0, "0.25": 0, "60.0": 2, "+Inf": 2}
        assert value(samples, name + "count", **labels) == 2
        assert value(samples, name + "sum", **labels) >= 0.6


def test_bad_arguments(registry):
    with pytest.raises(ValueError, match="buckets"):
        grpcpy.prometheus.Metrics(registry=registry, buckets=["soon"])
    with pytest.raises(ValueError, match="buckets"):
        grpcpy.prometheus.Metrics(registry=registry, buckets=5)
    with pytest.raises(ValueError, match="max_methods"):
        grpcpy.prometheus.Metrics(registry=registry, max_methods=-1)


def shapes(text, side):
    """{family: (type, label names)} of a side's five families, from an exposition."""
    names = {"grpc_%s_%s" % (side, n) for n in ("started", "handled", "msg_received", "msg_sent", "handling_seconds")}
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name in names and family.samples:
            found[family.name] = (family.type, {frozenset(s.labels) - {"le"} for s in family.samples})
    return found


def unary_figures(text, side, type_label, code_labels):
    """Started and handled counts of the Unary method, codes by name."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    labels = dict(grpc_type=type_label, grpc_service=SERVICE, grpc_method="Unary")
    return (value(samples, "grpc_%s_started_total" % side, **labels),
            {code: value(samples, "grpc_%s_handled_total" % side, grpc_code=label, **labels)
             for code, label in code_labels.items()})


def test_same_families_as_py_grpc_prometheus(registry):
    """The reference: py-grpc-prometheus' interceptors on a grpcio server
    and channel, and grpcpy.prometheus on grpcpy's, under the same traffic,
    make the same families with the same label names and, for unary calls
    (which py-grpc-prometheus counts like go-grpc-prometheus), the same
    figures; label values differ only where py-grpc-prometheus spells them
    its own way ("UNARY", "NOT_FOUND")."""
    import grpc
    from py_grpc_prometheus.prometheus_client_interceptor import PromClientInterceptor
    from py_grpc_prometheus.prometheus_server_interceptor import PromServerInterceptor

    reference = prometheus_client.CollectorRegistry()
    with traffic.serving("grpcio", interceptors=[PromServerInterceptor(
            enable_handling_time_histogram=True, registry=reference)]) as served:
        with grpc.insecure_channel(served.target) as plain:
            channel = grpc.intercept_channel(plain, PromClientInterceptor(
                enable_client_handling_time_histogram=True, registry=reference))
            traffic.sync_traffic(channel, grpc)
    theirs = prometheus_client.generate_latest(reference).decode("utf-8")

    with grpcpy.prometheus.Metrics(registry=registry):
        with traffic.serving("grpcpy-sync") as served:
            traffic.run_known_traffic("grpcpy-sync", served.target)
    ours = prometheus_client.generate_latest(registry).decode("utf-8")

    for side in ("server", "client"):
        assert len(shapes(theirs, side)) == 5
        assert shapes(ours, side) == shapes(theirs, side)
        assert unary_figures(ours, side, "unary", GO_CODES) == unary_figures(
            theirs, side, "UNARY", {code: code for code in GO_CODES}) == (
            traffic.OK_CALLS + traffic.FAILED_CALLS,
            {"OK": traffic.OK_CALLS, "NOT_FOUND": traffic.FAILED_CALLS, "UNIMPLEMENTED": 0})


def test_one_metrics_per_registry(registry):
    grpcpy.prometheus.Metrics(registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        grpcpy.prometheus.Metrics(registry=registry)
    grpcpy.prometheus.Metrics(registry=prometheus_client.CollectorRegistry(), server=False)


def test_split_method_names():
    split = grpcpy.prometheus.split_method
    assert split("/pkg.Svc/Do") == ("pkg.Svc", "Do")
    for bad in ("", "/", "//", "/pkg.Svc", "/pkg.Svc/", "pkg.Svc/Do", "//Do"):
        assert split(bad) == ("unknown", "unknown"), bad


def test_without_prometheus_client_the_import_says_what_to_install():
    code = ("import sys; sys.modules['prometheus_client'] = None\n"
            "try:\n    import grpcpy.prometheus\nexcept ImportError as e:\n    print(e)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install grpcpy[prometheus]" in done.stdout


def test_a_running_stream_is_counted_live(registry, http):
    """A bidi stream still open: a scrape shows the messages it has sent
    and received so far on both sides (read from the calls' counters when
    scraped, no event per message), and the end keeps them."""
    metrics = grpcpy.prometheus.Metrics(registry=registry)
    options = [("grpcpy.stats_hooks", metrics)]

    def echo(requests, context):
        for request in requests:
            yield request
    server = grpcpy.server(futures.ThreadPoolExecutor(4), options=options)
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "live.Chat", {"Talk": grpcpy.stream_stream_rpc_method_handler(echo)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    labels = dict(grpc_type="bidi_stream", grpc_service="live.Chat", grpc_method="Talk")
    outgoing = []
    more = threading.Condition()

    def requests():
        for i in range(10):
            with more:
                assert more.wait_for(lambda: len(outgoing) > i, timeout=30)
            yield outgoing[i]
    try:
        with grpcpy.insecure_channel("127.0.0.1:%d" % port, options=options) as channel:
            replies = channel.stream_stream("/live.Chat/Talk")(requests(), timeout=30)
            for i in range(5):
                with more:
                    outgoing.append(b"m%d" % i)
                    more.notify_all()
                assert next(replies) == b"m%d" % i
            samples = scrape(http.port)
            # the client has sent and received 5; the server received 5 and
            # sent 5 (its reply reached the client before the scrape)
            for name in ("grpc_client_msg_sent_total", "grpc_client_msg_received_total",
                         "grpc_server_msg_received_total", "grpc_server_msg_sent_total"):
                assert value(samples, name, **labels) == 5, name
            assert value(samples, "grpc_client_handled_total", grpc_code="OK", **labels) == 0
            for i in range(5, 10):
                with more:
                    outgoing.append(b"m%d" % i)
                    more.notify_all()
            assert list(replies) == [b"m%d" % i for i in range(5, 10)]
        samples = scrape_when(http.port, "server", 1)
        for name in ("grpc_client_msg_sent_total", "grpc_client_msg_received_total",
                     "grpc_server_msg_received_total", "grpc_server_msg_sent_total"):
            assert value(samples, name, **labels) == 10, name
    finally:
        server.stop(None)
