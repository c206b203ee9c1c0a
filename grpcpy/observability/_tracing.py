"""OpenTelemetry tracing of grpcpy calls, in the shape gRFC A72 gives it.

OpenTelemetry is the tracing API the gRPC implementations share (A72), so
the spans grpcpy makes join the traces of grpcio, grpc-go or grpc-java peers
and of the application's own instrumentation; opentelemetry-api records
them and the application's SDK exports them.

What is traced (A72; the span kinds are grpc-go's, as A72 names none):

  client  "Sent.<service>.<method>"    CLIENT, a child of the context that is
          current when the call is made, one per call;
          "Attempt.<service>.<method>" INTERNAL, a child of the call's span,
          one per attempt (retries, hedges and transparent retries each make
          one), with the attributes ``previous-rpc-attempts`` (the
          grpc-previous-rpc-attempts the attempt sends: transparent retries
          are not counted) and ``transparent-retry``; the attempt span's
          context travels in that attempt's request metadata through the
          text-map propagator (W3C ``traceparent``/``tracestate`` by
          default);
  server  "Recv.<service>.<method>"    SERVER, whose parent is the context the
          propagator finds in the request metadata; it is the current
          context while the handler runs, so the calls the handler makes
          continue the trace.

A span ends with status OK for an OK call and ERROR otherwise, described as
"<CODE>, <details>" ("UNAVAILABLE, connection refused"), as A72 says; A72
defines no attribute for the code.

With ``message_events=True`` every message adds an event to its attempt's
(client) or call's (server) span: "Outbound message" / "Inbound message"
with ``sequence-number`` (from 0, per direction and span),
``message-size`` (the serialized message) and, for a compressed message,
``message-size-compressed`` (its size as sent). Without it the call layer
does not report messages at all (Hook.messages), so tracing costs three
spans' worth of work per call and nothing per message.
"""
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.trace import SpanKind, Status
from opentelemetry.trace import StatusCode as SpanStatusCode

from grpcpy import stats
from grpcpy._types import StatusCode
from grpcpy._version import __version__
from grpcpy.observability._install import InstallableHook

__all__ = ["OpenTelemetryTracing"]

SCOPE = "grpcpy"        # the instrumentation scope of grpcpy's spans


class OpenTelemetryTracing(InstallableHook):
    """Traces every call of the channels and servers it is installed on.

    tracer_provider  where spans go (an opentelemetry TracerProvider); None:
                     the global one (opentelemetry.trace.set_tracer_provider),
                     as OpenTelemetry instrumentations do
    propagator       the TextMapPropagator that writes and reads the trace
                     context in metadata; None: the global one
                     (opentelemetry.propagate, W3C trace context and baggage
                     unless the application set another)
    message_events   True: an event per message (see the module's doc)

    Install it like grpcio-observability's OpenTelemetryPlugin: with
    ``register_global()`` / ``deregister_global()`` or ``with tracing:``,
    for the channels and servers made while it is registered; or on one
    channel or server with the option ``("grpcpy.stats_hooks", tracing)``.

    Spans end on the thread that moved the call along (an I/O thread, the
    event loop), so the provider's span processors run there: give it a
    BatchSpanProcessor (exports in its own thread), as OpenTelemetry
    advises, rather than a SimpleSpanProcessor with a slow exporter.
    """

    def __init__(self, *, tracer_provider=None, propagator=None, message_events=False):
        if tracer_provider is not None and not callable(getattr(tracer_provider, "get_tracer", None)):
            raise TypeError("tracer_provider: an opentelemetry TracerProvider is expected, got %r"
                            % (tracer_provider,))
        if propagator is not None and not isinstance(propagator, TextMapPropagator):
            raise TypeError("propagator: an opentelemetry TextMapPropagator is expected, got %r" % (propagator,))
        self._tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        self._propagator = propagator
        self.messages = bool(message_events)
        self._attempt_class = _MessageAttempt if self.messages else _Attempt
        self._server_class = _MessageServerCall if self.messages else _ServerCall

    def _textmap(self):
        """The propagator in use: the given one, else the global one as it
        is now (so an application may set it after making this object)."""
        return self._propagator or propagate.get_global_textmap()

    def client_call(self, info):
        parent = otel_context.get_current()
        name = _span_name(info.method)
        span = self._tracer.start_span("Sent." + name, context=parent, kind=SpanKind.CLIENT)
        return _ClientCall(self, name, span, trace.set_span_in_context(span, parent))

    def server_call(self, info):
        # an empty context as the base: the I/O thread's or event loop's
        # current context has nothing to do with this call
        parent = self._textmap().extract(info.metadata or (), context=otel_context.Context(),
                                           getter=_METADATA)
        span = self._tracer.start_span("Recv." + _span_name(info.method), context=parent, kind=SpanKind.SERVER)
        return self._server_class(span, trace.set_span_in_context(span, parent))


def _span_name(method):
    """"/pkg.Service/Method" -> "pkg.Service.Method" (A72's names)."""
    return method.lstrip("/").replace("/", ".")


def _end(span, code, details):
    """A72's status: OK, or ERROR described "<CODE>, <details>"."""
    if code is StatusCode.OK:
        span.set_status(Status(SpanStatusCode.OK))
    else:
        span.set_status(Status(SpanStatusCode.ERROR, "%s, %s" % (code.name, details) if details else code.name))
    span.end()


class _MetadataGetter(Getter):
    """Reads a propagator's keys from metadata: a sequence of (key, value)
    pairs, keys lower-case as gRPC sends them."""

    def get(self, carrier, key):
        values = [value if isinstance(value, str) else value.decode("latin-1")
                  for name, value in carrier if name == key]
        return values or None

    def keys(self, carrier):
        return [name for name, _ in carrier]


_METADATA = _MetadataGetter()


class _ClientCall(stats.ClientCallStats):
    __slots__ = ("_tracing", "_name", "_span", "_context")

    def __init__(self, tracing, name, span, context):
        self._tracing = tracing
        self._name = name
        self._span = span
        self._context = context         # the application's context with the call's span

    def attempt(self, number, transparent, previous, metadata):
        tracing = self._tracing
        span = tracing._tracer.start_span("Attempt." + self._name, context=self._context,
                                          attributes={"previous-rpc-attempts": previous,
                                                      "transparent-retry": bool(transparent)})
        carrier = {}
        tracing._textmap().inject(carrier, context=trace.set_span_in_context(span, self._context))
        return tracing._attempt_class(span, tuple(carrier.items()))

    def end(self, code, details, trailing, totals):
        _end(self._span, code, details)


class _Attempt(stats.AttemptStats):
    __slots__ = ("_span", "metadata")

    def __init__(self, span, metadata):
        self._span = span
        self.metadata = metadata

    def end(self, code, details, trailing, totals):
        _end(self._span, code, details)


class _ServerCall(stats.ServerCallStats):
    __slots__ = ("_span", "_context")

    def __init__(self, span, context):
        self._span = span
        self._context = context

    def handler_enter(self):
        return otel_context.attach(self._context)

    def handler_exit(self, token):
        otel_context.detach(token)

    def end(self, code, details, trailing, totals):
        _end(self._span, code, details)


class _MessageEvents:
    """A72's message events on self._span, numbered from 0 per direction."""

    __slots__ = ()

    def _event(self, name, sequence, size, wire_size):
        attributes = {"sequence-number": sequence, "message-size": size}
        if wire_size != size:
            attributes["message-size-compressed"] = wire_size
        self._span.add_event(name, attributes)

    def message_out(self, size, wire_size):
        self._event("Outbound message", self._sent, size, wire_size)
        self._sent += 1

    def message_in(self, size, wire_size):
        self._event("Inbound message", self._received, size, wire_size)
        self._received += 1


class _MessageAttempt(_MessageEvents, _Attempt):
    __slots__ = ("_sent", "_received")

    def __init__(self, span, metadata):
        _Attempt.__init__(self, span, metadata)
        self._sent = self._received = 0


class _MessageServerCall(_MessageEvents, _ServerCall):
    __slots__ = ("_sent", "_received")

    def __init__(self, span, context):
        _ServerCall.__init__(self, span, context)
        self._sent = self._received = 0
