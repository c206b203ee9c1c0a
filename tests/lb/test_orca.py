"""grpcpy.orca on the server: the recorders, per-call reports in the
endpoint-load-metrics-bin trailer (grpcpy sync and asyncio servers, grpcio's
sync and asyncio servers), the out-of-band OpenRcaService, and reading a
report on the client."""
import math
from concurrent import futures

import grpc
import grpc.aio
import pytest

import grpcpy
import grpcpy.aio
from grpcpy import orca
from tests.health.harness import LoopThread, wait_until

SERVICE = "test.Orca"


# ---------------------------------------------------------------- recorders

def test_recorder_snapshot_has_what_is_set():
    r = orca.ServerMetricsRecorder()
    assert r.snapshot().SerializeToString() == b""
    r.set_cpu_utilization(1.5)          # past a soft limit is allowed
    r.set_memory_utilization(0.25)
    r.set_application_utilization(0.75)
    r.set_qps(120)
    r.set_eps(3)
    r.set_named_utilization("disk", 0.5)
    r.set_named_metric("queue", -4)
    r.set_request_cost("rows", 12)
    s = r.snapshot()
    assert (s.cpu_utilization, s.mem_utilization, s.application_utilization, s.rps_fractional, s.eps) == (
        1.5, 0.25, 0.75, 120.0, 3.0)
    assert dict(s.utilization) == {"disk": 0.5}
    assert dict(s.named_metrics) == {"queue": -4.0}
    assert dict(s.request_cost) == {"rows": 12.0}
    r.delete_cpu_utilization()
    r.delete_named_utilization("disk")
    r.delete_named_metric("queue")
    s = r.snapshot()
    assert s.cpu_utilization == 0 and s.application_utilization == 0.75
    assert dict(s.utilization) == {} and dict(s.named_metrics) == {}


@pytest.mark.parametrize("setter, value", [
    ("set_cpu_utilization", -0.1), ("set_memory_utilization", 1.1), ("set_memory_utilization", -1),
    ("set_application_utilization", -1), ("set_qps", -1), ("set_eps", -0.5), ("set_qps", math.nan)])
def test_recorder_rejects_invalid_values(setter, value):
    r = orca.ServerMetricsRecorder()
    with pytest.raises(ValueError):
        getattr(r, setter)(value)
    with pytest.raises(ValueError):
        r.set_named_utilization("x", 2.0)
    assert r.snapshot().SerializeToString() == b""


def test_parse_load_report():
    report = orca.OrcaLoadReport(cpu_utilization=0.5, rps_fractional=10)
    good = (("a", "b"), (orca.TRAILER_KEY, report.SerializeToString()))
    assert orca.parse_load_report(good) == report
    assert orca.parse_load_report(None) is None
    assert orca.parse_load_report((("a", "b"),)) is None
    assert orca.parse_load_report(((orca.TRAILER_KEY, b"\xff\xff\xff"),)) is None
    assert orca.parse_load_report(((orca.TRAILER_KEY, "text"),)) is None


# ---------------------------------------------------------------- per-call reports

def _sync_unary(request, context):
    call = orca.call_recorder(context)
    call.set_cpu_utilization(0.5)
    call.set_request_cost("rows", 3)
    call.set_named_metric("queue", 7)
    context.set_trailing_metadata((("x-mine", "kept"),))
    return request


def _sync_stream(request, context):
    for _ in range(3):
        yield request
    orca.call_recorder(context).set_application_utilization(0.7)   # after the messages


def _sync_abort(request, context):
    orca.call_recorder(context).set_eps(2)
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")


def _sync_silent(request, context):
    assert orca.call_recorder(context) is not None
    return request


async def _aio_unary(request, context):
    return _sync_unary(request, context)


async def _aio_stream(request, context):
    for _ in range(3):
        yield request
    orca.call_recorder(context).set_application_utilization(0.7)


async def _aio_stream_write(request, context):
    for _ in range(3):
        await context.write(request)
    orca.call_recorder(context).set_application_utilization(0.7)


async def _aio_abort(request, context):
    orca.call_recorder(context).set_eps(2)
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")


async def _aio_silent(request, context):
    return _sync_silent(request, context)


SYNC = {"Unary": _sync_unary, "Stream": _sync_stream, "Abort": _sync_abort, "Silent": _sync_silent}
AIO = {"Unary": _aio_unary, "Stream": _aio_stream, "Abort": _aio_abort, "Silent": _aio_silent,
       "StreamWrite": _aio_stream_write}


def _handlers(api, behaviors):
    table = {}
    for name, fn in behaviors.items():
        make = api.unary_stream_rpc_method_handler if name.startswith("Stream") else \
            api.unary_unary_rpc_method_handler
        table[name] = make(fn)
    return api.method_handlers_generic_handler(SERVICE, table)


class Backend:
    """A server of one kind with the ORCA interceptor (and a server recorder
    with qps 100 and cpu 0.1 set), serving raw bytes."""

    def __init__(self, kind, recorder, oob=False):
        self.kind = kind
        self.loop = None
        if kind in ("grpcpy-sync", "grpcio-sync"):
            api = grpcpy if kind == "grpcpy-sync" else grpc
            self.server = api.server(futures.ThreadPoolExecutor(4),
                                     interceptors=[orca.ServerInterceptor(recorder)])
            self.server.add_generic_rpc_handlers((_handlers(api, SYNC),))
            if oob:
                orca.add_orca_service(self.server, recorder, min_report_interval=0.05)
            self.port = self.server.add_insecure_port("127.0.0.1:0")
            self.server.start()
        else:
            self.loop = LoopThread()
            self.port = self.loop.run(self._start(recorder, oob))

    async def _start(self, recorder, oob):
        api = grpcpy if self.kind == "grpcpy-aio" else grpc
        self.server = api.aio.server(interceptors=[orca.AioServerInterceptor(recorder)])
        self.server.add_generic_rpc_handlers((_handlers(api, AIO),))
        if oob:
            orca.add_orca_service(self.server, recorder, min_report_interval=0.05)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return port

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    def close(self):
        if self.loop is None:
            self.server.stop(None).wait(10)
        else:
            self.loop.run(self.server.stop(None))
            self.loop.close()


grpc.aio.ServerInterceptor.register(orca.AioServerInterceptor)    # grpc.aio checks the type
KINDS = ["grpcpy-sync", "grpcpy-aio", "grpcio-sync", "grpcio-aio"]


@pytest.fixture(scope="module", params=KINDS)
def backend(request):
    recorder = orca.ServerMetricsRecorder()
    recorder.set_qps(100)
    recorder.set_cpu_utilization(0.1)
    b = Backend(request.param, recorder)
    yield b
    b.close()


@pytest.fixture(scope="module")
def channel(backend):
    with grpcpy.insecure_channel(backend.target) as ch:
        yield ch


def test_unary_report_merged_over_the_server_recorder(channel):
    _, call = channel.unary_unary("/%s/Unary" % SERVICE).with_call(b"x", timeout=10)
    trailing = call.trailing_metadata()
    assert ("x-mine", "kept") in trailing        # the handler's own trailers stay
    report = orca.parse_load_report(trailing)
    assert report.cpu_utilization == 0.5         # the call's value wins
    assert report.rps_fractional == 100          # the server's fills in
    assert dict(report.request_cost) == {"rows": 3.0}
    assert dict(report.named_metrics) == {"queue": 7.0}


def test_streaming_report_after_the_last_message(channel):
    call = channel.unary_stream("/%s/Stream" % SERVICE)(b"y", timeout=10)
    assert list(call) == [b"y"] * 3
    report = orca.parse_load_report(call.trailing_metadata())
    assert report.application_utilization == pytest.approx(0.7)
    assert report.rps_fractional == 100


def test_aio_stream_written_by_context_write(backend, channel):
    if backend.kind not in ("grpcpy-aio", "grpcio-aio"):
        pytest.skip("asyncio handlers only")
    call = channel.unary_stream("/%s/StreamWrite" % SERVICE)(b"w", timeout=10)
    assert list(call) == [b"w"] * 3
    assert orca.parse_load_report(call.trailing_metadata()).application_utilization == pytest.approx(0.7)


def test_aborted_call_still_reports(backend, channel):
    if backend.kind == "grpcio-aio":
        pytest.skip("grpc.aio's abort() sends the status itself, before the interceptor can add the report")
    with pytest.raises(grpcpy.RpcError) as caught:
        channel.unary_unary("/%s/Abort" % SERVICE)(b"z", timeout=10)
    assert caught.value.code() == grpcpy.StatusCode.RESOURCE_EXHAUSTED
    report = orca.parse_load_report(caught.value.trailing_metadata())
    assert report.eps == 2 and report.cpu_utilization == pytest.approx(0.1)


def test_call_recording_nothing_sends_the_server_values(channel):
    _, call = channel.unary_unary("/%s/Silent" % SERVICE).with_call(b"s", timeout=10)
    report = orca.parse_load_report(call.trailing_metadata())
    assert (report.cpu_utilization, report.rps_fractional) == (pytest.approx(0.1), 100)


def test_no_call_recorder_outlives_its_call(channel):
    channel.unary_unary("/%s/Unary" % SERVICE)(b"x", timeout=10)
    list(channel.unary_stream("/%s/Stream" % SERVICE)(b"x", timeout=10))
    call = channel.unary_stream("/%s/Stream" % SERVICE)(b"x", timeout=10)
    next(call)
    call.cancel()       # a stream cut short
    assert wait_until(lambda: not orca._interceptor._CALLS)


def test_grpcio_client_consumes_the_trailer(backend):
    # grpcio's core takes endpoint-load-metrics-bin for its own balancers
    # and does not show it to the application; the call is unharmed
    with grpc.insecure_channel(backend.target) as ch:
        response, call = ch.unary_unary("/%s/Unary" % SERVICE).with_call(b"x", timeout=10)
        assert response == b"x" and ("x-mine", "kept") in call.trailing_metadata()


def test_no_recorder_and_nothing_recorded_sends_no_trailer():
    server = grpcpy.server(futures.ThreadPoolExecutor(2), interceptors=[orca.ServerInterceptor()])
    server.add_generic_rpc_handlers((_handlers(grpcpy, SYNC),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpcpy.insecure_channel("127.0.0.1:%d" % port) as ch:
            _, call = ch.unary_unary("/%s/Silent" % SERVICE).with_call(b"s", timeout=10)
            assert orca.parse_load_report(call.trailing_metadata()) is None
            assert not [k for k, _ in call.trailing_metadata() or () if k == orca.TRAILER_KEY]
            _, call = ch.unary_unary("/%s/Unary" % SERVICE).with_call(b"s", timeout=10)
            assert orca.parse_load_report(call.trailing_metadata()).rps_fractional == 0
    finally:
        server.stop(None).wait(10)
    assert orca.call_recorder(object()) is None


# ---------------------------------------------------------------- out-of-band reports

def test_report_interval_is_at_least_the_server_minimum():
    request = orca.OrcaLoadReportRequest()
    assert orca._service.report_interval(request, 30.0) == 30.0
    request.report_interval.FromMilliseconds(45500)
    assert orca._service.report_interval(request, 30.0) == 45.5
    assert orca._service.report_interval(request, 60.0) == 60.0
    with pytest.raises(ValueError):
        orca.add_orca_service(grpcpy.server(futures.ThreadPoolExecutor(1)), orca.ServerMetricsRecorder(), 0)


@pytest.mark.parametrize("kind", ["grpcpy-sync", "grpcpy-aio", "grpcio-sync"])
def test_oob_stream_follows_the_recorder(kind):
    recorder = orca.ServerMetricsRecorder()
    recorder.set_cpu_utilization(0.25)
    recorder.set_qps(10)
    backend = Backend(kind, recorder, oob=True)
    try:
        with grpcpy.insecure_channel(backend.target) as ch:
            stream = ch.unary_stream(orca.METHOD, request_serializer=orca.OrcaLoadReportRequest.SerializeToString,
                                     response_deserializer=orca.OrcaLoadReport.FromString)
            request = orca.OrcaLoadReportRequest()
            request.report_interval.FromMilliseconds(1)     # raised to the server's 50 ms
            call = stream(request, timeout=30)
            first = next(call)
            assert (first.cpu_utilization, first.rps_fractional) == (0.25, 10)
            recorder.set_cpu_utilization(0.75)
            for report in call:     # the next snapshots show the change
                if report.cpu_utilization == 0.75:
                    break
            else:
                pytest.fail("the stream ended")
            call.cancel()
    finally:
        backend.close()


@pytest.mark.parametrize("api", [grpcpy, grpc], ids=["grpcpy-sync", "grpcio-sync"])
def test_oob_streams_hold_no_server_thread(api):
    recorder = orca.ServerMetricsRecorder()
    recorder.set_qps(5)
    # the per-call interceptor leaves non-blocking handlers as they are
    server = api.server(futures.ThreadPoolExecutor(1), interceptors=[orca.ServerInterceptor(recorder)])
    server.add_generic_rpc_handlers((_handlers(api, {"Silent": lambda request, context: request}),))
    orca.add_orca_service(server, recorder, min_report_interval=0.05)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpcpy.insecure_channel("127.0.0.1:%d" % port) as ch:
            stream = ch.unary_stream(orca.METHOD, request_serializer=orca.OrcaLoadReportRequest.SerializeToString,
                                     response_deserializer=orca.OrcaLoadReport.FromString)
            calls = [stream(orca.OrcaLoadReportRequest(), timeout=30) for _ in range(3)]
            for call in calls:
                assert next(call).rps_fractional == 5 and next(call).rps_fractional == 5
            # the one worker is free for an ordinary call
            assert ch.unary_unary("/%s/Silent" % SERVICE)(b"ok", timeout=10) == b"ok"
            for call in calls:
                call.cancel()
    finally:
        server.stop(None).wait(10)
