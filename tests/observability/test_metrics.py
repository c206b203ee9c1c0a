"""grpcpy.observability.OpenTelemetryPlugin against the real OpenTelemetry
SDK (MeterProvider + InMemoryMetricReader): after known traffic
(metrics_service.traffic()), every instrument's points, attributes and
bucket counts are exactly what gRFC A66 (and A96 for retries) says, on
both facades and with grpcio as the peer; then the filters, the global
registration, and a comparison with grpcio-observability itself.
"""
import asyncio
import bisect
import collections
import json
import os
import subprocess
import sys
import time
from concurrent import futures

import grpc
import grpc.aio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import grpcpy
import grpcpy.aio
from grpcpy import stats
from grpcpy.observability import OpenTelemetryPlugin

from tests.health.harness import LoopThread

from . import metrics_service as svc

HERE = os.path.dirname(os.path.abspath(__file__))

A66_LATENCY, A66_SIZE, A96_RETRIES, A96_TRANSPARENT = (svc.A66_LATENCY, svc.A66_SIZE, svc.A96_RETRIES,
                                                     svc.A96_TRANSPARENT)

# A66's instruments: name -> (unit, kind); kind "counter" or the buckets
CLIENT_INSTRUMENTS = {
    "grpc.client.attempt.started": ("{attempt}", "counter"),
    "grpc.client.attempt.duration": ("s", A66_LATENCY),
    "grpc.client.attempt.sent_total_compressed_message_size": ("By", A66_SIZE),
    "grpc.client.attempt.rcvd_total_compressed_message_size": ("By", A66_SIZE),
    "grpc.client.call.duration": ("s", A66_LATENCY),
    "grpc.client.call.retries": ("{retry}", A96_RETRIES),
    "grpc.client.call.transparent_retries": ("{transparent_retry}", A96_TRANSPARENT),
    "grpc.client.call.hedges": ("{hedge}", A96_RETRIES),
    "grpc.client.call.retry_delay": ("s", A66_LATENCY),
}
SERVER_INSTRUMENTS = {
    "grpc.server.call.started": ("{call}", "counter"),
    "grpc.server.call.duration": ("s", A66_LATENCY),
    "grpc.server.call.sent_total_compressed_message_size": ("By", A66_SIZE),
    "grpc.server.call.rcvd_total_compressed_message_size": ("By", A66_SIZE),
}
RETRY_METRICS = ["grpc.client.call.retries", "grpc.client.call.transparent_retries", "grpc.client.call.hedges",
                 "grpc.client.call.retry_delay"]
TIMINGS = {"grpc.client.attempt.duration", "grpc.client.call.duration", "grpc.server.call.duration",
           "grpc.client.call.retry_delay"}


def new_plugin(**kwargs):
    reader = InMemoryMetricReader()
    plugin = OpenTelemetryPlugin(meter_provider=MeterProvider(metric_readers=[reader]), **kwargs)
    return plugin, reader


# -- what the traffic must give ---------------------------------------------------

def _client_method(name):
    """The client's grpc.method: stubs said every method is known, but for
    Missing's."""
    return "other" if name == svc.MISSING else name


def _server_method(name):
    """The server's: registered handlers only (not Generic, not Missing)."""
    return "other" if name in (svc.MISSING, svc.GENERIC) else name


def _bucket_counts(bounds, values):
    """OpenTelemetry's explicit buckets: value v counts in the first
    bucket whose upper bound is >= v; the last bucket is the overflow."""
    counts = [0] * (len(bounds) + 1)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1
    return counts


class Expected:
    """Points expected: (name, attributes) -> counter value or the list of
    recorded values (histograms)."""

    def __init__(self):
        self.points = collections.defaultdict(list)

    def add(self, name, attributes, value):
        self.points[(name, frozenset(attributes.items()))].append(value)


def expected_client(target, method=_client_method, retry_metrics=True):
    exp = Expected()
    for call in svc.traffic():
        base = {"grpc.method": method(call[0].method), "grpc.target": target}
        for attempt in call:
            attrs = dict(base, **{"grpc.status": attempt.status})
            exp.add("grpc.client.attempt.started", base, 1)
            exp.add("grpc.client.attempt.duration", attrs, None)
            exp.add("grpc.client.attempt.sent_total_compressed_message_size", attrs, attempt.sent)
            exp.add("grpc.client.attempt.rcvd_total_compressed_message_size", attrs, attempt.received)
        exp.add("grpc.client.call.duration", dict(base, **{"grpc.status": call[-1].status}), None)
        if retry_metrics and len(call) > 1:      # A96: no 0 recorded; every attempt here is a retry
            exp.add("grpc.client.call.retries", base, len(call) - 1)
            exp.add("grpc.client.call.retry_delay", base, None)
    return exp


def expected_server(method=_server_method):
    exp = Expected()
    for call in svc.traffic():
        for attempt in call:        # every attempt is a call on the server
            base = {"grpc.method": method(attempt.method)}
            attrs = dict(base, **{"grpc.status": attempt.status})
            exp.add("grpc.server.call.started", base, 1)
            exp.add("grpc.server.call.duration", attrs, None)
            exp.add("grpc.server.call.rcvd_total_compressed_message_size", attrs, attempt.sent)
            exp.add("grpc.server.call.sent_total_compressed_message_size", attrs, attempt.received)
    return exp


def check(reader, expected, instruments):
    """The reader holds exactly the expected points: counters' values;
    histograms' counts, and for sizes and retry counts their sums and
    bucket counts (timings: their count, and a positive sum); every
    instrument with its unit and A66/A96 buckets."""
    got = {(p["name"], frozenset(p["attributes"].items())): p for p in svc.points(reader)}
    assert sorted(got) == sorted(expected.points), _diff(got, expected.points)
    for key, values in expected.points.items():
        point, (name, _) = got[key], key
        unit, kind = instruments[name]
        assert point["unit"] == unit, (name, point["unit"])
        assert point["scope"] == "grpcpy"
        if kind == "counter":
            assert point["value"] == sum(values), (key, point)
            continue
        assert point["bounds"] == kind, name
        assert point["count"] == len(values), (key, point)
        if name in TIMINGS:
            assert point["sum"] >= 0 and (name == "grpc.client.call.retry_delay" or point["sum"] > 0), point
        else:
            assert point["sum"] == sum(values), (key, point)
            assert point["buckets"] == _bucket_counts(kind, values), (key, point)


def _diff(got, expected):
    return {"missing": sorted(set(expected) - set(got)), "unexpected": sorted(set(got) - set(expected))}


def wait_for_calls(reader, name, count, timeout=30.0):
    """Wait until histogram `name` holds `count` records: a call's figures
    are recorded when it ends, which on a server can come just after the
    client got its answer."""
    deadline = time.monotonic() + timeout
    while True:
        total = sum(p["count"] for p in svc.points(reader) if p["name"] == name)
        if total >= count or time.monotonic() > deadline:
            return total
        time.sleep(0.02)


N_CALLS = len(svc.traffic())
N_ATTEMPTS = sum(len(call) for call in svc.traffic())


# -- servers and clients of each kind -----------------------------------------------

class Server:
    """A running server of `kind` (grpcpy, grpcpy.aio, grpcio) with the
    test service; `hooks` goes into its grpcpy.stats_hooks option."""

    def __init__(self, kind, hooks=None):
        self.kind = kind
        options = [(stats.OPTION, hooks)] if hooks is not None else []
        self._aio = None
        if kind == "grpcpy.aio":
            self._aio = LoopThread()

            async def start():
                server = grpcpy.aio.server(options=options)
                svc.AioService(grpcpy).add_to(server)
                port = server.add_insecure_port("127.0.0.1:0")
                await server.start()
                return server, port
            self._server, self.port = self._aio.run(start())
            return
        module = grpcpy if kind == "grpcpy" else grpc
        self._server = module.server(futures.ThreadPoolExecutor(4), options=options)
        svc.Service(module).add_to(self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        if self._aio is not None:
            self._aio.run(self._server.stop(None))
            self._aio.close()
        else:
            self._server.stop(None)


def run_client(kind, target, hooks=None, key="k"):
    """The traffic from a client of `kind` (grpcpy, grpcpy.aio, grpcio)."""
    options = svc.channel_options() + ([(stats.OPTION, hooks)] if hooks is not None else [])
    if kind == "grpcpy.aio":
        async def main():
            async with grpcpy.aio.insecure_channel(target, options=options) as channel:
                await svc.run_aio(grpcpy.aio, grpcpy.StatusCode, channel, key)
        asyncio.run(main())
        return
    module = grpcpy if kind == "grpcpy" else grpc
    with module.insecure_channel(target, options=options) as channel:
        svc.run_sync(module, channel, key)


def exchange(client="grpcpy", server="grpcpy", client_hooks=None, server_hooks=None, client_readers=(),
             server_readers=()):
    """The traffic from a new client to a new server; before the server
    stops, waits until each of `client_readers` has every client call and
    each of `server_readers` every server call. Returns the target."""
    running = Server(server, hooks=server_hooks)
    try:
        run_client(client, running.target, hooks=client_hooks)
        for reader in server_readers:
            wait_for_calls(reader, "grpc.server.call.duration", N_ATTEMPTS)
        for reader in client_readers:
            wait_for_calls(reader, "grpc.client.call.duration", N_CALLS)
    finally:
        running.stop()
    return running.target


PAIRS = [("grpcpy", "grpcpy"), ("grpcpy.aio", "grpcpy.aio"), ("grpcpy", "grpcio"), ("grpcpy.aio", "grpcio"),
         ("grpcio", "grpcpy"), ("grpcio", "grpcpy.aio")]


@pytest.mark.parametrize("client,server", PAIRS, ids=["%s->%s" % pair for pair in PAIRS])
def test_every_instrument_after_known_traffic(client, server):
    """Client and server each have a plugin of their own (installed with
    the grpcpy.stats_hooks option, A96's metrics on): after the traffic,
    each reader holds exactly the points A66/A96 define for it."""
    client_plugin, client_reader = new_plugin(enable_metrics=RETRY_METRICS)
    server_plugin, server_reader = new_plugin()
    target = exchange(client, server, client_hooks=client_plugin if client != "grpcio" else None,
                      server_hooks=server_plugin if server != "grpcio" else None,
                      client_readers=[client_reader] if client != "grpcio" else [],
                      server_readers=[server_reader] if server != "grpcio" else [])
    if client != "grpcio":
        check(client_reader, expected_client("dns:///" + target), CLIENT_INSTRUMENTS)
    else:
        assert svc.points(client_reader) == []
    if server != "grpcio":
        check(server_reader, expected_server(), SERVER_INSTRUMENTS)
    else:
        assert svc.points(server_reader) == []


def test_retry_metrics_are_off_by_default():
    """A96: its metrics are experimental, so off unless enabled; A66's are
    all there."""
    plugin, reader = new_plugin()
    target = exchange(client_hooks=plugin, server_hooks=plugin, client_readers=[reader], server_readers=[reader])
    expected = expected_client("dns:///" + target, retry_metrics=False)
    expected.points.update(expected_server().points)
    check(reader, expected, dict(CLIENT_INSTRUMENTS, **SERVER_INSTRUMENTS))


def test_filters():
    """target_attribute_filter False: the target is "other" (it was asked
    once, with the canonical target); generic_method_attribute_filter True:
    an unregistered method is recorded by name (it was asked with
    "pkg.Service/Method"), on the client and on the server (there Generic's
    too); registered methods are never asked about."""
    asked_targets, asked_methods = [], []

    def target_filter(target):
        asked_targets.append(target)
        return False

    def method_filter(method):
        asked_methods.append(method)
        return True

    client_plugin, client_reader = new_plugin(target_attribute_filter=target_filter,
                                              generic_method_attribute_filter=method_filter)
    server_plugin, server_reader = new_plugin(generic_method_attribute_filter=method_filter)
    assert client_plugin.hook is client_plugin      # the option takes either
    target = exchange(client_hooks=client_plugin.hook, server_hooks=server_plugin, client_readers=[client_reader],
                      server_readers=[server_reader])
    assert asked_targets == ["dns:///" + target]
    # the server about Generic; then the client and the server about Missing
    assert asked_methods == [svc.GENERIC, svc.MISSING, svc.MISSING]
    by_name = lambda name: name           # noqa: E731  every method recorded by its name
    check(client_reader, expected_client("other", method=by_name, retry_metrics=False), CLIENT_INSTRUMENTS)
    check(server_reader, expected_server(method=by_name), SERVER_INSTRUMENTS)


@pytest.mark.parametrize("facade", ["grpcpy", "grpcpy.aio"])
def test_register_global_and_context_manager(facade):
    """`with plugin:` installs it on channels and servers made inside; a
    channel made after it left records nothing (the server made inside
    still does, as grpcpy.stats says)."""
    plugin, reader = new_plugin()
    with plugin as entered:
        assert entered is plugin
        assert plugin in stats.global_hooks()
        with pytest.raises(RuntimeError):
            plugin.register_global()
        running = Server(facade)
        run_client(facade, running.target, key="inside")
    assert plugin not in stats.global_hooks()
    with pytest.raises(RuntimeError):
        plugin.deregister_global()
    try:
        run_client(facade, running.target, key="after")
        wait_for_calls(reader, "grpc.server.call.duration", 2 * N_ATTEMPTS)
        wait_for_calls(reader, "grpc.client.call.duration", N_CALLS)
    finally:
        running.stop()
    expected = expected_client("dns:///" + running.target, retry_metrics=False)
    for _ in range(2):          # the server saw both runs
        for key, values in expected_server().points.items():
            expected.points[key].extend(values)
    check(reader, expected, dict(CLIENT_INSTRUMENTS, **SERVER_INSTRUMENTS))

    plugin.register_global()        # again, by the methods
    try:
        assert plugin in stats.global_hooks()
    finally:
        plugin.deregister_global()
    assert plugin not in stats.global_hooks()


def test_no_meter_provider_records_nothing():
    """A66: no MeterProvider, no metrics (and no fallback on
    OpenTelemetry's global one); calls go on as usual."""
    plugin = OpenTelemetryPlugin()
    assert plugin.meter_provider is None
    exchange(client_hooks=plugin, server_hooks=plugin)
    info = stats.CallInfo("/" + svc.UNARY, True, "t", "t", None, (), None, 0.0, False, "unary")
    assert plugin.client_call(info) is None and plugin.server_call(info) is None


def test_bad_arguments():
    with pytest.raises(TypeError):
        OpenTelemetryPlugin(target_attribute_filter="yes")
    with pytest.raises(TypeError):
        OpenTelemetryPlugin(generic_method_attribute_filter=1)
    with pytest.raises(ValueError, match="grpc.client.call.retry"):
        OpenTelemetryPlugin(enable_metrics=["grpc.client.call.retry"])
    with pytest.raises(TypeError):
        OpenTelemetryPlugin(None)       # keyword-only, as grpcio-observability's


def test_several_plugins_each_with_its_provider():
    """A66: several plugins can be installed at once, each recording to
    its own MeterProvider."""
    first, first_reader = new_plugin()
    second, second_reader = new_plugin()
    exchange(server_hooks=[first, second], server_readers=[first_reader, second_reader])
    check(first_reader, expected_server(), SERVER_INSTRUMENTS)
    check(second_reader, expected_server(), SERVER_INSTRUMENTS)


# -- A96 for hedges and transparent retries -----------------------------------------

def _client_points(plugin_reader, name):
    return {tuple(sorted(p["attributes"].items())): p for p in svc.points(plugin_reader) if p["name"] == name}


def assert_a96(reader, base, retries=0, transparent=0, hedges=0, delay=False):
    """One call's A96 points: each count recorded once when not 0 (with
    its buckets), the delay once when `delay`."""
    for name, value, bounds in (("grpc.client.call.retries", retries, A96_RETRIES),
                                ("grpc.client.call.transparent_retries", transparent, A96_TRANSPARENT),
                                ("grpc.client.call.hedges", hedges, A96_RETRIES)):
        points = _client_points(reader, name)
        if not value:
            assert points == {}, name
            continue
        assert list(points) == [base], (name, points)
        assert (points[base]["count"], points[base]["sum"], points[base]["bounds"]) == (1, value, bounds)
    points = _client_points(reader, "grpc.client.call.retry_delay")
    if delay:
        assert list(points) == [base] and points[base]["count"] == 1 and points[base]["bounds"] == A66_LATENCY
    else:
        assert points == {}


def _with_status(base, status):
    return tuple(sorted(base + (("grpc.status", status),)))


def test_hedged_call():
    """A hedging policy (2 attempts, 50 ms apart); the server holds the
    first attempt until it is cancelled, the hedge answers: A96 records 1
    hedge and the delay, no retry; A66 sees two attempts, the first
    CANCELLED. (The server is tests/retry's scripted one.)"""
    from tests.retry.clients import service_config
    from tests.retry.service import UNARY, RunningServer, script
    plugin, reader = new_plugin(enable_metrics=RETRY_METRICS)
    server = RunningServer("grpcio")
    config = service_config(hedging={"maxAttempts": 2, "hedgingDelay": "0.05s", "nonFatalStatusCodes": []})
    try:
        options = [("grpc.service_config", config), (stats.OPTION, plugin)]
        with grpcpy.insecure_channel(server.target, options=options) as channel:
            call = channel.unary_unary(UNARY, _registered_method=True)
            assert call(b"h", timeout=30, metadata=(("x-key", "hedge"), ("x-script", script(hold=1)))) == b"ok:h"
            wait_for_calls(reader, "grpc.client.call.duration", 1)
    finally:
        server.stop()
    base = (("grpc.method", UNARY[1:]), ("grpc.target", "dns:///" + server.target))
    assert {k: p["value"] for k, p in _client_points(reader, "grpc.client.attempt.started").items()} == {base: 2}
    durations = _client_points(reader, "grpc.client.attempt.duration")
    assert {k: p["count"] for k, p in durations.items()} == {_with_status(base, "CANCELLED"): 1,
                                                              _with_status(base, "OK"): 1}
    assert_a96(reader, base, hedges=1, delay=True)


@pytest.mark.parametrize("mode", ["goaway", "refuse"])
def test_transparent_retry(mode):
    """tests/retry's h2 peer answers the first request with GOAWAY
    (last-stream-id 0), or refuses the first stream of a connection
    (REFUSED_STREAM): either way the channel sends the call again by
    itself. A96 records 1 transparent retry, and no retry and no retry
    delay (as grpc-core's plugin: the delay is that of retries and
    hedges); A66 counts 2 attempts."""
    from tests.retry.h2server import RefusingServer
    from tests.retry.service import UNARY
    plugin, reader = new_plugin(enable_metrics=RETRY_METRICS)
    server = RefusingServer(mode)
    try:
        with grpcpy.insecure_channel(server.target, options=[(stats.OPTION, plugin)]) as channel:
            assert channel.unary_unary(UNARY, _registered_method=True)(b"t", timeout=30) == b"ok:t"
            wait_for_calls(reader, "grpc.client.call.duration", 1)
    finally:
        server.close()
    base = (("grpc.method", UNARY[1:]), ("grpc.target", "dns:///" + server.target))
    assert {k: p["value"] for k, p in _client_points(reader, "grpc.client.attempt.started").items()} == {base: 2}
    assert_a96(reader, base, transparent=1, delay=False)
    calls = _client_points(reader, "grpc.client.call.duration")
    assert {k: p["count"] for k, p in calls.items()} == {_with_status(base, "OK"): 1}


# -- grpcio-observability as the reference ---------------------------------------------

def _reference_python():
    """An interpreter with grpcio-observability: GRPCPY_OBSERVABILITY_PYTHON,
    or this one if it has it. grpcio-observability pins grpcio to its own
    version, so it is not part of the test extra."""
    candidates = [os.environ.get("GRPCPY_OBSERVABILITY_PYTHON"), sys.executable]
    for python in filter(None, candidates):
        found = subprocess.run([python, "-c", "import grpc_observability"], capture_output=True)
        if found.returncode == 0:
            return python
    return None


def _comparable(points, target):
    """What grpcio-observability and grpcpy must agree on: names, units,
    attributes (the target in A66's canonical form), counter values,
    histogram counts, and for sizes sums and bucket counts."""
    out = {}
    for p in points:
        attrs = dict(p["attributes"])
        if attrs.get("grpc.target") == target:
            attrs["grpc.target"] = "dns:///" + target
        key = (p["name"], p["unit"], tuple(sorted(attrs.items())))
        if "value" in p:
            out[key] = p["value"]
        elif p["name"] in TIMINGS:
            out[key] = (p["count"], p["bounds"])
        else:
            out[key] = (p["count"], p["sum"], p["bounds"], p["buckets"])
    return out


def test_same_figures_as_grpcio_observability():
    """The same traffic, grpcio client and server with grpcio-observability
    registered globally, against grpcpy's with this plugin registered
    globally: the same instruments, attributes and bucket counts (both
    providers get a View with A66's buckets, which grpcio-observability
    does not ask for itself). Differences by design: grpcpy records
    grpc.client.call.duration (A66 defines it; grpcio-observability leaves
    it out) and the target in A66's canonical form (grpcio-observability
    records it as given)."""
    python = _reference_python()
    if python is None:
        pytest.skip("grpcio-observability is not installed (set GRPCPY_OBSERVABILITY_PYTHON to an "
                    "interpreter that has it)")
    done = subprocess.run([python, os.path.join(HERE, "grpcio_reference.py")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = json.loads(done.stdout)

    reader = InMemoryMetricReader()
    plugin = OpenTelemetryPlugin(meter_provider=MeterProvider(metric_readers=[reader]))
    with plugin:
        target = exchange(client_readers=[reader], server_readers=[reader])
    ours = _comparable([p for p in svc.points(reader) if p["name"] != "grpc.client.call.duration"], target)
    theirs = _comparable(reference["points"], reference["target"])
    # the targets differ by port only: compare with the port taken out
    ours = {_no_port(k, target): v for k, v in ours.items()}
    theirs = {_no_port(k, reference["target"]): v for k, v in theirs.items()}
    assert ours == theirs


def _no_port(key, target):
    name, unit, attrs = key
    return name, unit, tuple((k, v.replace(target, "TARGET")) for k, v in attrs)


# -- calls that never reach a server; compressed messages -------------------------------

def _closed_port_target():
    """A target nothing listens on (a port the kernel gave and took back)."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return "127.0.0.1:%d" % sock.getsockname()[1]


@pytest.mark.parametrize("facade", ["grpcpy", "grpcpy.aio"])
def test_call_that_never_reaches_a_server(facade):
    """Connection refused: the call fails UNAVAILABLE without a stream,
    and still counts as one attempt of 0 bytes each way (as grpc-core's
    attempt tracer, made before the pick)."""
    plugin, reader = new_plugin(enable_metrics=RETRY_METRICS)
    target = _closed_port_target()
    options = [(stats.OPTION, plugin)]
    if facade == "grpcpy":
        with grpcpy.insecure_channel(target, options=options) as channel:
            with pytest.raises(grpcpy.RpcError) as failed:
                channel.unary_unary("/" + svc.UNARY, _registered_method=True)(b"x", timeout=30)
        assert failed.value.code() == grpcpy.StatusCode.UNAVAILABLE
    else:
        async def main():
            async with grpcpy.aio.insecure_channel(target, options=options) as channel:
                with pytest.raises(grpcpy.aio.AioRpcError) as failed:
                    await channel.unary_unary("/" + svc.UNARY, _registered_method=True)(b"x", timeout=30)
                assert failed.value.code() == grpcpy.StatusCode.UNAVAILABLE
        asyncio.run(main())
    wait_for_calls(reader, "grpc.client.call.duration", 1)
    expected = Expected()
    base = {"grpc.method": svc.UNARY, "grpc.target": "dns:///" + target}
    failed_attrs = dict(base, **{"grpc.status": "UNAVAILABLE"})
    expected.add("grpc.client.attempt.started", base, 1)
    for name in ("grpc.client.attempt.duration", "grpc.client.call.duration"):
        expected.add(name, failed_attrs, None)
    for name in ("grpc.client.attempt.sent_total_compressed_message_size",
                 "grpc.client.attempt.rcvd_total_compressed_message_size"):
        expected.add(name, failed_attrs, 0)
    check(reader, expected, CLIENT_INSTRUMENTS)


def test_sizes_are_compressed_sizes():
    """A66 counts message bytes as compressed: 20000 bytes of b"z" sent
    and echoed with gzip are recorded as the compressed size on both
    sides, the same number for the client's sent and the server's
    received bytes (and the other way round)."""
    client_plugin, client_reader = new_plugin()
    server_plugin, server_reader = new_plugin()
    server = grpcpy.server(futures.ThreadPoolExecutor(2), options=[(stats.OPTION, server_plugin)],
                           compression=grpcpy.Compression.Gzip)
    svc.Service(grpcpy).add_to(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    payload = b"z" * 20000
    try:
        with grpcpy.insecure_channel("127.0.0.1:%d" % port, options=[(stats.OPTION, client_plugin)],
                                     compression=grpcpy.Compression.Gzip) as channel:
            assert channel.unary_unary("/" + svc.UNARY, _registered_method=True)(payload, timeout=30) == payload
        wait_for_calls(server_reader, "grpc.server.call.duration", 1)
        wait_for_calls(client_reader, "grpc.client.call.duration", 1)
    finally:
        server.stop(None)

    def total(reader, name):
        (point,) = [p for p in svc.points(reader) if p["name"] == name]
        assert point["count"] == 1
        return point["sum"]
    sent = total(client_reader, "grpc.client.attempt.sent_total_compressed_message_size")
    received = total(client_reader, "grpc.client.attempt.rcvd_total_compressed_message_size")
    assert 0 < sent < len(payload) and 0 < received < len(payload)
    assert total(server_reader, "grpc.server.call.rcvd_total_compressed_message_size") == sent
    assert total(server_reader, "grpc.server.call.sent_total_compressed_message_size") == received
