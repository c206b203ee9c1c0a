"""OpenTelemetry tracing (gRFC A72) of real calls, under both facades.

The spans go to the real OpenTelemetry SDK (a TracerProvider with an
InMemorySpanExporter); the calls are real calls between grpcpy channels and
servers, grpcio servers and clients. grpcio has no A72 tracing of its own, so
where it is a peer the test reads (or writes) the W3C `traceparent` it
received (or sends) in its metadata.

The spans of a call end when the call layer reports the call's end, which
may come just after the application saw its result: the tests wait for the
spans they expect (no sleeps, no timing).
"""
import socket
import threading
import time
from concurrent import futures

import grpc
import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode as SpanStatus
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import grpcpy
import grpcpy.aio
from grpcpy.observability import OpenTelemetryTracing

from tests.facades.drivers import LoopThread
from tests.retry.h2server import RefusingServer
from tests.retry.service import UNARY as REFUSED, RunningServer, script

FACADES = ("sync", "aio")
SERVICE = "trace.Demo"
ECHO = "/trace.Demo/Echo"           # the request back; b"fail" ends NOT_FOUND
FLAKY = "/trace.Demo/Flaky"         # the first attempt of each x-key fails UNAVAILABLE
RELAY = "/trace.Demo/Relay"         # calls FAR on a grpcio server, returns its answer
CHAT = "/trace.Demo/Chat"           # bidi: every message back
PLAIN = "/trace.Demo/Plain"         # Echo as a plain function, on both servers
ZIP = "/trace.Demo/Zip"             # the request back, gzip-compressed
FAR = "/trace.Far/Where"            # grpcio: the traceparent and baggage it received
TIMEOUT = 15


def retry_config():
    return ('{"methodConfig": [{"name": [{"service": "%s"}], "retryPolicy": {"maxAttempts": 3, '
            '"initialBackoff": "0.01s", "maxBackoff": "0.05s", "backoffMultiplier": 2, '
            '"retryableStatusCodes": ["UNAVAILABLE"]}}]}' % SERVICE)


# -- the OpenTelemetry SDK --------------------------------------------------------------------

@pytest.fixture
def otel():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Otel(provider, exporter)
    provider.shutdown()


class Otel:
    def __init__(self, provider, exporter):
        self.provider = provider
        self.exporter = exporter
        self.tracer = provider.get_tracer("tests")

    def tracing(self, **kwargs):
        return OpenTelemetryTracing(tracer_provider=self.provider, **kwargs)

    def spans(self, *names):
        """The finished spans once there are as many as `names`, checked
        against them; a dict name -> [spans in end order]."""
        deadline = time.monotonic() + TIMEOUT
        while len(self.exporter.get_finished_spans()) < len(names) and time.monotonic() < deadline:
            time.sleep(0.01)
        spans = self.exporter.get_finished_spans()
        assert sorted(s.name for s in spans) == sorted(names)
        by_name = {}
        for span in spans:
            by_name.setdefault(span.name, []).append(span)
        return by_name


def hooks(tracing):
    return [("grpcpy.stats_hooks", tracing)]


def child_of(span, parent):
    return (span.parent is not None and span.parent.span_id == parent.context.span_id
            and span.context.trace_id == parent.context.trace_id)


def span_id(span):
    return "%016x" % span.context.span_id


def trace_id(span):
    return "%032x" % span.context.trace_id


# -- the servers ------------------------------------------------------------------------------

class Service:
    """The handlers of both facades; what they saw."""

    def __init__(self, far_target, client_options):
        self.far_target = far_target
        self.client_options = client_options
        self.current = []           # the span current in each Echo handler
        self._lock = threading.Lock()
        self._keys = set()

    def _first_attempt(self, context):
        key = dict(context.invocation_metadata()).get("x-key")
        with self._lock:
            first = key not in self._keys
            self._keys.add(key)
        return first

    def handlers(self, aio):
        if aio:
            echo, flaky, relay, chat, zip_ = self.aio_echo, self.aio_flaky, self.aio_relay, self.aio_chat, self.aio_zip
        else:
            echo, flaky, relay, chat, zip_ = self.echo, self.flaky, self.relay, self.chat, self.zip
        return grpcpy.method_handlers_generic_handler(SERVICE, {
            "Echo": grpcpy.unary_unary_rpc_method_handler(echo),
            "Flaky": grpcpy.unary_unary_rpc_method_handler(flaky),
            "Relay": grpcpy.unary_unary_rpc_method_handler(relay),
            "Chat": grpcpy.stream_stream_rpc_method_handler(chat),
            "Plain": grpcpy.unary_unary_rpc_method_handler(self.echo),
            "Zip": grpcpy.unary_unary_rpc_method_handler(zip_)})

    def echo(self, request, context):
        self.current.append(trace.get_current_span().get_span_context())
        if request == b"fail":
            context.abort(grpcpy.StatusCode.NOT_FOUND, "no such thing")
        return request

    def flaky(self, request, context):
        if self._first_attempt(context):
            context.abort(grpcpy.StatusCode.UNAVAILABLE, "try again")
        return request

    def relay(self, request, context):
        with grpcpy.insecure_channel(self.far_target, options=self.client_options) as channel:
            return channel.unary_unary(FAR)(request, timeout=TIMEOUT)

    def zip(self, request, context):
        context.set_compression(grpcpy.Compression.Gzip)
        return request

    def chat(self, requests, context):
        for request in requests:
            yield request

    async def aio_echo(self, request, context):
        self.current.append(trace.get_current_span().get_span_context())
        if request == b"fail":
            await context.abort(grpcpy.StatusCode.NOT_FOUND, "no such thing")
        return request

    async def aio_flaky(self, request, context):
        if self._first_attempt(context):
            await context.abort(grpcpy.StatusCode.UNAVAILABLE, "try again")
        return request

    async def aio_relay(self, request, context):
        async with grpcpy.aio.insecure_channel(self.far_target, options=self.client_options) as channel:
            return await channel.unary_unary(FAR)(request, timeout=TIMEOUT)

    async def aio_zip(self, request, context):
        context.set_compression(grpcpy.Compression.Gzip)
        return request

    async def aio_chat(self, requests, context):
        async for request in requests:
            yield request


def far_where(request, context):
    """grpcio's handler: the trace context it received, as "traceparent|baggage"."""
    metadata = dict(context.invocation_metadata())
    return ("%s|%s" % (metadata.get("traceparent", ""), metadata.get("baggage", ""))).encode()


@pytest.fixture(scope="module")
def far():
    """A grpcio server (no tracing of its own) answering FAR."""
    server = grpc.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "trace.Far", {"Where": grpc.unary_unary_rpc_method_handler(far_where)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield "127.0.0.1:%d" % port
    server.stop(None)


@pytest.fixture(scope="module")
def loop():
    return LoopThread("tracing-tests")


@pytest.fixture
def serve(far, loop):
    """serve(facade, tracing) starts a grpcpy server of that facade traced by
    `tracing` (and so are its handlers' channels; None: only by the hooks
    registered globally) and returns (target, Service)."""
    stops = []

    def start(facade, tracing):
        options = hooks(tracing) if tracing is not None else []
        service = Service(far, options)
        if facade == "sync":
            pool = futures.ThreadPoolExecutor(4)
            server = grpcpy.server(pool, options=options)
            server.add_generic_rpc_handlers((service.handlers(aio=False),))
            port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            stops.append(lambda: (server.stop(None), pool.shutdown(wait=False)))
        else:
            async def begin():
                server = grpcpy.aio.server(options=options)
                server.add_generic_rpc_handlers((service.handlers(aio=True),))
                port = server.add_insecure_port("127.0.0.1:0")
                await server.start()
                return server, port
            server, port = loop.run(begin())
            stops.append(lambda: loop.run(server.stop(None)))
        return "127.0.0.1:%d" % port, service

    yield start
    for stop in stops:
        stop()


# -- the clients ------------------------------------------------------------------------------

class Caller:
    """Makes calls as an application of one facade would, each inside an
    application span "app" (so the call's span has a parent to check)."""

    def __init__(self, facade, otel, loop):
        self.facade = facade
        self.tracer = otel.tracer
        self.loop = loop

    def call(self, target, method, request, options=(), metadata=None, compression=None):
        """One call; (status code name, response or details). A list
        `request` makes a bidi call and the response is the list back."""
        if self.facade == "sync":
            return self._sync(target, method, request, list(options), metadata, compression)
        return self.loop.run(self._aio(target, method, request, list(options), metadata, compression))

    def _sync(self, target, method, request, options, metadata, compression):
        with self.tracer.start_as_current_span("app"), \
                grpcpy.insecure_channel(target, options=options, compression=compression) as channel:
            try:
                if isinstance(request, list):
                    return "OK", list(channel.stream_stream(method)(iter(request), timeout=TIMEOUT,
                                                                    metadata=metadata))
                return "OK", channel.unary_unary(method)(request, timeout=TIMEOUT, metadata=metadata)
            except grpcpy.RpcError as err:
                return err.code().name, err.details()

    async def _aio(self, target, method, request, options, metadata, compression):
        with self.tracer.start_as_current_span("app"):
            async with grpcpy.aio.insecure_channel(target, options=options, compression=compression) as channel:
                try:
                    if isinstance(request, list):
                        call = channel.stream_stream(method)(iter(request), timeout=TIMEOUT, metadata=metadata)
                        return "OK", [response async for response in call]
                    return "OK", await channel.unary_unary(method)(request, timeout=TIMEOUT, metadata=metadata)
                except grpcpy.RpcError as err:
                    return err.code().name, err.details()


@pytest.fixture(params=FACADES)
def facade(request):
    return request.param


@pytest.fixture
def caller(facade, otel, loop):
    return Caller(facade, otel, loop)


@pytest.fixture
def unused_port():
    with socket.socket() as sock:       # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# -- one call ---------------------------------------------------------------------------------

def test_a_call_is_a_call_span_an_attempt_span_and_a_server_span(otel, serve, caller, facade):
    tracing = otel.tracing()
    target, service = serve(facade, tracing)
    assert caller.call(target, ECHO, b"hi", hooks(tracing)) == ("OK", b"hi")
    spans = otel.spans("app", "Sent.trace.Demo.Echo", "Attempt.trace.Demo.Echo", "Recv.trace.Demo.Echo")
    [app], [sent], [attempt], [recv] = (spans[name] for name in (
        "app", "Sent.trace.Demo.Echo", "Attempt.trace.Demo.Echo", "Recv.trace.Demo.Echo"))

    assert (sent.kind, attempt.kind, recv.kind) == (SpanKind.CLIENT, SpanKind.INTERNAL, SpanKind.SERVER)
    assert child_of(sent, app) and child_of(attempt, sent) and child_of(recv, attempt)
    assert recv.parent.is_remote and not attempt.parent.is_remote
    assert dict(attempt.attributes) == {"previous-rpc-attempts": 0, "transparent-retry": False}
    for span in (sent, attempt, recv):
        assert span.status.status_code == SpanStatus.OK
        assert list(span.events) == []      # message events are off by default
    # the handler ran with the server span as its current span
    assert service.current == [recv.get_span_context()]


def test_a_failing_call_is_an_error_described_by_its_code_and_details(otel, serve, caller, facade):
    tracing = otel.tracing()
    target, _ = serve(facade, tracing)
    assert caller.call(target, ECHO, b"fail", hooks(tracing)) == ("NOT_FOUND", "no such thing")
    spans = otel.spans("app", "Sent.trace.Demo.Echo", "Attempt.trace.Demo.Echo", "Recv.trace.Demo.Echo")
    for name in ("Sent.trace.Demo.Echo", "Attempt.trace.Demo.Echo", "Recv.trace.Demo.Echo"):
        [span] = spans[name]
        assert (span.status.status_code, span.status.description) == (SpanStatus.ERROR, "NOT_FOUND, no such thing")
    assert spans["app"][0].status.status_code == SpanStatus.UNSET


def test_a_call_that_reaches_no_server_still_has_its_call_and_attempt_spans(otel, caller, unused_port):
    tracing = otel.tracing()
    code, _ = caller.call("127.0.0.1:%d" % unused_port, ECHO, b"hi", hooks(tracing))
    assert code == "UNAVAILABLE"
    spans = otel.spans("app", "Sent.trace.Demo.Echo", "Attempt.trace.Demo.Echo")
    [sent], [attempt] = spans["Sent.trace.Demo.Echo"], spans["Attempt.trace.Demo.Echo"]
    assert child_of(attempt, sent)
    for span in (sent, attempt):
        assert span.status.status_code == SpanStatus.ERROR
        assert span.status.description.startswith("UNAVAILABLE")


def test_each_attempt_of_a_retried_call_has_its_span(otel, serve, caller, facade):
    tracing = otel.tracing()
    target, _ = serve(facade, tracing)
    options = hooks(tracing) + [("grpc.service_config", retry_config())]
    assert caller.call(target, FLAKY, b"again", options, metadata=(("x-key", "k1"),)) == ("OK", b"again")
    spans = otel.spans("app", "Sent.trace.Demo.Flaky", "Attempt.trace.Demo.Flaky", "Attempt.trace.Demo.Flaky",
                       "Recv.trace.Demo.Flaky", "Recv.trace.Demo.Flaky")
    [sent] = spans["Sent.trace.Demo.Flaky"]
    first, second = sorted(spans["Attempt.trace.Demo.Flaky"], key=lambda s: s.start_time)
    assert child_of(first, sent) and child_of(second, sent)
    assert dict(first.attributes) == {"previous-rpc-attempts": 0, "transparent-retry": False}
    assert dict(second.attributes) == {"previous-rpc-attempts": 1, "transparent-retry": False}
    assert (first.status.status_code, first.status.description) == (SpanStatus.ERROR, "UNAVAILABLE, try again")
    assert second.status.status_code == SpanStatus.OK
    assert sent.status.status_code == SpanStatus.OK
    # each server call continues the attempt that made it
    failed, served = sorted(spans["Recv.trace.Demo.Flaky"], key=lambda s: s.start_time)
    assert child_of(failed, first) and child_of(served, second)
    assert failed.status.status_code == SpanStatus.ERROR and served.status.status_code == SpanStatus.OK


def test_a_transparent_retry_is_an_attempt_marked_transparent(otel, caller):
    # an HTTP/2 server (the h2 package) that answers the first request with
    # GOAWAY(last-stream-id 0): never processed, the channel sends it again
    # by itself on a new connection
    server = RefusingServer("goaway")
    try:
        assert caller.call(server.target, REFUSED, b"once", hooks(otel.tracing())) == ("OK", b"ok:once")
    finally:
        server.close()
    spans = otel.spans("app", "Sent.retry.Flaky.Unary", "Attempt.retry.Flaky.Unary", "Attempt.retry.Flaky.Unary")
    refused, retried = sorted(spans["Attempt.retry.Flaky.Unary"], key=lambda s: s.start_time)
    assert dict(refused.attributes) == {"previous-rpc-attempts": 0, "transparent-retry": False}
    # A72: a transparent retry is not counted in previous-rpc-attempts
    assert dict(retried.attributes) == {"previous-rpc-attempts": 0, "transparent-retry": True}
    assert refused.status.status_code == SpanStatus.ERROR and refused.status.description.startswith("UNAVAILABLE")
    assert retried.status.status_code == SpanStatus.OK


def test_each_hedge_of_a_hedged_call_has_its_attempt_span(otel, caller):
    # grpcio's server of the retry suite holds the first attempt of a call
    # until the client cancels it; the hedge sent 50 ms later is answered
    server = RunningServer("grpcio")
    config = ('{"methodConfig": [{"name": [{"service": "retry.Flaky"}], "hedgingPolicy": '
              '{"maxAttempts": 2, "hedgingDelay": "0.05s", "nonFatalStatusCodes": ["UNAVAILABLE"]}}]}')
    try:
        options = hooks(otel.tracing()) + [("grpc.service_config", config)]
        result = caller.call(server.target, REFUSED, b"hedged", options,
                             metadata=(("x-key", "hedged-" + caller.facade), ("x-script", script(hold=1))))
    finally:
        server.stop()
    assert result == ("OK", b"ok:hedged")
    spans = otel.spans("app", "Sent.retry.Flaky.Unary", "Attempt.retry.Flaky.Unary", "Attempt.retry.Flaky.Unary")
    [sent] = spans["Sent.retry.Flaky.Unary"]
    held, answered = sorted(spans["Attempt.retry.Flaky.Unary"], key=lambda s: s.start_time)
    assert child_of(held, sent) and child_of(answered, sent)
    assert dict(held.attributes) == {"previous-rpc-attempts": 0, "transparent-retry": False}
    assert dict(answered.attributes) == {"previous-rpc-attempts": 1, "transparent-retry": False}
    assert (held.status.status_code, held.status.description.split(",")[0]) == (SpanStatus.ERROR, "CANCELLED")
    assert answered.status.status_code == sent.status.status_code == SpanStatus.OK


# -- message events ---------------------------------------------------------------------------

def events(span):
    return [(event.name, dict(event.attributes)) for event in span.events]


def test_message_events_number_each_direction_from_zero(otel, serve, caller, facade):
    tracing = otel.tracing(message_events=True)
    target, _ = serve(facade, tracing)
    messages = [b"a", b"bb", b"ccc"]
    assert caller.call(target, CHAT, messages, hooks(tracing)) == ("OK", messages)
    spans = otel.spans("app", "Sent.trace.Demo.Chat", "Attempt.trace.Demo.Chat", "Recv.trace.Demo.Chat")
    [sent], [attempt], [recv] = (spans[name] for name in (
        "Sent.trace.Demo.Chat", "Attempt.trace.Demo.Chat", "Recv.trace.Demo.Chat"))

    def of(name, span):
        return [attributes for event, attributes in events(span) if event == name]

    expected = [{"sequence-number": i, "message-size": len(m)} for i, m in enumerate(messages)]
    assert of("Outbound message", attempt) == expected
    assert of("Inbound message", attempt) == expected
    assert of("Inbound message", recv) == expected
    assert of("Outbound message", recv) == expected
    assert len(attempt.events) == len(recv.events) == 6
    assert events(sent) == []               # messages belong to the attempt


def test_message_events_give_the_compressed_size_of_a_compressed_message(otel, serve, caller, facade):
    tracing = otel.tracing(message_events=True)
    target, _ = serve(facade, tracing)
    request = b"z" * 4000
    # compressed both ways: the client's channel and the server's handler ask for gzip
    assert caller.call(target, ZIP, request, hooks(tracing), compression=grpcpy.Compression.Gzip) == ("OK", request)
    spans = otel.spans("app", "Sent.trace.Demo.Zip", "Attempt.trace.Demo.Zip", "Recv.trace.Demo.Zip")
    for name in ("Attempt.trace.Demo.Zip", "Recv.trace.Demo.Zip"):
        [span] = spans[name]
        assert [event for event, _ in events(span)] == (
            ["Outbound message", "Inbound message"] if name.startswith("Attempt") else
            ["Inbound message", "Outbound message"])
        for event, attributes in events(span):
            assert attributes["sequence-number"] == 0 and attributes["message-size"] == 4000
            assert 0 < attributes["message-size-compressed"] < 4000, (name, event)


# -- traces across peers ---------------------------------------------------------------------------

def test_one_trace_from_a_grpcpy_client_through_a_grpcpy_server_to_a_grpcio_server(otel, serve, caller, facade):
    tracing = otel.tracing()
    target, _ = serve(facade, tracing)
    code, answer = caller.call(target, RELAY, b"", hooks(tracing))
    assert code == "OK"
    spans = otel.spans("app", "Sent.trace.Demo.Relay", "Attempt.trace.Demo.Relay", "Recv.trace.Demo.Relay",
                       "Sent.trace.Far.Where", "Attempt.trace.Far.Where")
    [app] = spans["app"]
    [recv] = spans["Recv.trace.Demo.Relay"]
    [onward], [onward_attempt] = spans["Sent.trace.Far.Where"], spans["Attempt.trace.Far.Where"]
    # the relay handler's call is a child of the grpcpy server's span
    assert child_of(recv, spans["Attempt.trace.Demo.Relay"][0])
    assert child_of(onward, recv) and child_of(onward_attempt, onward)
    assert len({span.context.trace_id for group in spans.values() for span in group}) == 1
    # what the grpcio server received: the same trace, the onward attempt as parent
    traceparent = answer.decode().split("|")[0]
    assert traceparent == "00-%s-%s-%02x" % (trace_id(app), span_id(onward_attempt),
                                               onward_attempt.context.trace_flags)


@pytest.mark.parametrize("facade", ["sync", "aio"])
def test_a_plain_function_handler_runs_in_the_server_span(otel, serve, facade):
    tracing = otel.tracing()
    target, service = serve(facade, tracing)
    with grpcpy.insecure_channel(target) as channel:
        assert channel.unary_unary(PLAIN)(b"hi", timeout=TIMEOUT) == b"hi"
    [recv] = otel.spans("Recv.trace.Demo.Plain")["Recv.trace.Demo.Plain"]
    assert service.current == [recv.get_span_context()]


def test_a_grpcio_clients_traceparent_is_the_grpcpy_server_spans_parent(otel, serve, facade):
    tracing = otel.tracing()
    target, service = serve(facade, tracing)
    metadata = {}
    with otel.tracer.start_as_current_span("grpcio-app") as app:
        TraceContextTextMapPropagator().inject(metadata)
    with grpc.insecure_channel(target) as channel:
        assert channel.unary_unary(ECHO)(b"hi", timeout=TIMEOUT, metadata=tuple(metadata.items())) == b"hi"
    spans = otel.spans("grpcio-app", "Recv.trace.Demo.Echo")
    [recv] = spans["Recv.trace.Demo.Echo"]
    assert child_of(recv, app) and recv.parent.is_remote
    assert service.current == [recv.get_span_context()]


def test_a_call_without_trace_context_starts_a_trace_on_the_server(otel, serve, facade):
    tracing = otel.tracing()
    target, _ = serve(facade, tracing)
    with grpc.insecure_channel(target) as channel:
        channel.unary_unary(ECHO)(b"hi", timeout=TIMEOUT, metadata=(("traceparent", "not a trace context"),))
    [recv] = otel.spans("Recv.trace.Demo.Echo")["Recv.trace.Demo.Echo"]
    assert recv.parent is None and recv.status.status_code == SpanStatus.OK


@pytest.mark.parametrize("propagator, sends_traceparent", [
    (CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]), True),
    (W3CBaggagePropagator(), False)], ids=["trace-context-and-baggage", "baggage-only"])
def test_the_given_propagator_is_the_one_used(otel, serve, caller, facade, propagator, sends_traceparent):
    tracing = otel.tracing(propagator=propagator)
    target, _ = serve(facade, tracing)
    token = context.attach(baggage.set_baggage("tenant", "blue"))
    try:
        code, answer = caller.call(target, RELAY, b"", hooks(tracing))
    finally:
        context.detach(token)
    assert code == "OK"
    # the baggage went from the client's context to the handler's call
    traceparent, carried = answer.decode().split("|")
    assert (traceparent.startswith("00-"), carried) == (sends_traceparent, "tenant=blue")


# -- installing -------------------------------------------------------------------------------

def test_registered_globally_it_traces_what_is_made_while_registered(otel, serve, caller, facade):
    with otel.tracing() as tracing:
        target, _ = serve(facade, None)
        assert caller.call(target, ECHO, b"in") == ("OK", b"in")
    otel.spans("app", "Sent.trace.Demo.Echo", "Attempt.trace.Demo.Echo", "Recv.trace.Demo.Echo")
    otel.exporter.clear()
    # channels made afterwards are not traced (the server made before still is)
    assert caller.call(target, ECHO, b"out") == ("OK", b"out")
    spans = otel.spans("app", "Recv.trace.Demo.Echo")
    assert spans["Recv.trace.Demo.Echo"][0].parent is None


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="tracer_provider"):
        OpenTelemetryTracing(tracer_provider="x")
    with pytest.raises(TypeError, match="propagator"):
        OpenTelemetryTracing(propagator=object())
    with pytest.raises(TypeError):
        OpenTelemetryTracing(TracerProvider())     # keyword-only
