"""OpenTelemetry metrics of gRPC calls, as gRFC A66 defines them (and the
retry metrics of gRFC A96), recorded through grpcpy.stats.

``OpenTelemetryPlugin`` has the constructor and methods of
grpcio-observability's ``grpc_observability.OpenTelemetryPlugin``, so
switching is one import. It is itself a grpcpy.stats.Hook: ``register_global``
installs it on every channel and server made afterwards, and the option
``("grpcpy.stats_hooks", plugin)`` on one channel or server.

Only the OpenTelemetry API is used (the application's SDK MeterProvider does
the aggregating and exporting), as A66 asks. With no MeterProvider the
plugin records nothing: it does not fall back on OpenTelemetry's global one
(A66 again).

What a call costs: everything is recorded when an attempt or a call ends,
from the totals grpcpy.stats hands over (no per-message event). The
attributes of a (method, target) pair and of each status are dicts built
once and kept, as are the objects the hook returns: a call allocates
nothing here. A unary client call makes 1 counter add and 4 histogram
records (each further attempt: 1 add and 3 records), a server call 1 add
and 3 records; those SDK calls are the cost: with opentelemetry-sdk 1.45
each takes about 8-10 microseconds of CPU (it copies, checks and hashes the
attributes every time), so some 45 for a unary client call and 30 for a
server call, about as much again as the call itself costs grpcpy.
"""
import threading

import grpcpy
from grpcpy import stats
from grpcpy._channel.target import parse_target
from grpcpy.observability._install import InstallableHook

__all__ = ["OpenTelemetryPlugin", "LATENCY_BUCKETS", "SIZE_BUCKETS", "RETRY_METRICS"]

# gRFC A66, "Units" and "Metrics Schema": the buckets of the default views.
LATENCY_BUCKETS = (0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002, 0.003, 0.004, 0.005,
                   0.006, 0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13,
                   0.16, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1, 2, 5, 10, 20, 50, 100)
SIZE_BUCKETS = (0, 1024, 2048, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864, 268435456,
                1073741824, 4294967296)
# gRFC A96's recommended buckets for the per-call retry counts.
_RETRY_BUCKETS = (1, 2, 3, 4, 5)
_TRANSPARENT_BUCKETS = (1, 2, 3, 4, 5, 10)

# A96's metrics are experimental, so off unless named in enable_metrics.
RETRY_METRICS = ("grpc.client.call.retries", "grpc.client.call.transparent_retries",
                 "grpc.client.call.hedges", "grpc.client.call.retry_delay")

METHOD, TARGET, STATUS = "grpc.method", "grpc.target", "grpc.status"
OTHER = "other"


def canonical_target(target):
    """The target as A66 records it: with its scheme ("dns:///" added when
    the application gave none, as grpc-core canonicalizes it); a target
    that does not parse is kept as given."""
    if not target:
        return ""
    try:
        parsed = parse_target(target)
    except (ValueError, TypeError):
        return target
    if parsed.scheme == "dns" and target[:4].lower() != "dns:":
        return "dns:///" + target
    return target


class _Attrs:
    """The attributes of one (method[, target]) pair: the dict without the
    status, and one dict per status, each made once. Also the object the
    hook hands out for its calls and attempts (they hold no per-call
    state), see _ClientCall, _Attempt, _ServerCall."""

    __slots__ = ("plugin", "base", "_by_code")

    def __init__(self, plugin, base):
        self.plugin = plugin
        self.base = base
        self._by_code = {}

    def with_status(self, code):
        # (keyed by the code's name: a str hashes in C, StatusCode in Python)
        attrs = self._by_code.get(code._name_)
        if attrs is None:
            attrs = dict(self.base)
            attrs[STATUS] = code._name_
            self._by_code[code._name_] = attrs
        return attrs

    def record_end(self, instruments, code, totals):
        """An attempt's or a server call's end: its duration, bytes sent and
        bytes received, by `instruments` (those three histograms)."""
        attrs = self.with_status(code)
        duration, sent, received = instruments
        duration.record(totals.duration, attrs)
        sent.record(totals.sent_bytes, attrs)
        received.record(totals.received_bytes, attrs)


class _Attempt(_Attrs, stats.AttemptStats):
    __slots__ = ()

    def end(self, code, details, trailing, totals):
        self.record_end(self.plugin._instruments.attempt_end, code, totals)


class _ClientCall(_Attrs, stats.ClientCallStats):
    __slots__ = ("attempt_stats",)

    def __init__(self, plugin, base):
        _Attrs.__init__(self, plugin, base)
        self.attempt_stats = _Attempt(plugin, base)

    def attempt(self, number, transparent, previous, metadata):
        self.plugin._instruments.attempt_started.add(1, self.base)
        return self.attempt_stats

    def end(self, code, details, trailing, totals):
        m = self.plugin._instruments
        m.call_duration.record(totals.duration, self.with_status(code))
        if m.any_retry_metric:
            self._record_retries(m, totals)

    def _record_retries(self, m, totals):
        """gRFC A96: a count of 0 is not recorded. The delay is recorded
        for calls that had retries or hedges (grpc-core does the same: a
        call with transparent retries only has none)."""
        base = self.base
        if totals.retries and m.retries is not None:
            m.retries.record(totals.retries, base)
        if totals.transparent_retries and m.transparent_retries is not None:
            m.transparent_retries.record(totals.transparent_retries, base)
        if totals.hedges and m.hedges is not None:
            m.hedges.record(totals.hedges, base)
        if (totals.retries or totals.hedges) and m.retry_delay is not None:
            m.retry_delay.record(totals.retry_delay, base)


class _ServerCall(_Attrs, stats.ServerCallStats):
    __slots__ = ()

    def end(self, code, details, trailing, totals):
        self.record_end(self.plugin._instruments.server_end, code, totals)


class _Instruments:
    """The plugin's instruments, made once from its meter (A66: the meter
    is named after the library, with its version)."""

    def __init__(self, meter_provider, enable_metrics):
        meter = meter_provider.get_meter("grpcpy", grpcpy.__version__)

        def histogram(name, unit, description, buckets):
            try:
                return meter.create_histogram(name, unit=unit, description=description,
                                              explicit_bucket_boundaries_advisory=buckets)
            except TypeError:   # opentelemetry-api before 1.23 takes no advice: a View sets buckets
                return meter.create_histogram(name, unit=unit, description=description)

        self.attempt_started = meter.create_counter(
            "grpc.client.attempt.started", unit="{attempt}",
            description="Number of client call attempts started")
        self.attempt_end = (  # duration, sent, received (_Attrs.record_end)
            histogram("grpc.client.attempt.duration", "s",
                      "End-to-end time taken to complete a client call attempt", LATENCY_BUCKETS),
            histogram("grpc.client.attempt.sent_total_compressed_message_size", "By",
                      "Compressed message bytes sent per client call attempt", SIZE_BUCKETS),
            histogram("grpc.client.attempt.rcvd_total_compressed_message_size", "By",
                      "Compressed message bytes received per call attempt", SIZE_BUCKETS))
        self.call_duration = histogram(
            "grpc.client.call.duration", "s",
            "End-to-end time taken to complete a call from client's perspective", LATENCY_BUCKETS)
        self.server_started = meter.create_counter(
            "grpc.server.call.started", unit="{call}", description="Number of server calls started")
        self.server_end = (
            histogram("grpc.server.call.duration", "s",
                      "End-to-end time taken to complete a call from server transport's perspective",
                      LATENCY_BUCKETS),
            histogram("grpc.server.call.sent_total_compressed_message_size", "By",
                      "Compressed message bytes sent per server call", SIZE_BUCKETS),
            histogram("grpc.server.call.rcvd_total_compressed_message_size", "By",
                      "Compressed message bytes received per server call", SIZE_BUCKETS))

        def optional(name, unit, description, buckets):
            return histogram(name, unit, description, buckets) if name in enable_metrics else None

        self.retries = optional("grpc.client.call.retries", "{retry}",
                                "Number of retries during the client call", _RETRY_BUCKETS)
        self.transparent_retries = optional(
            "grpc.client.call.transparent_retries", "{transparent_retry}",
            "Number of transparent retries during the client call", _TRANSPARENT_BUCKETS)
        self.hedges = optional("grpc.client.call.hedges", "{hedge}",
                               "Number of hedges during the client call", _RETRY_BUCKETS)
        self.retry_delay = optional(
            "grpc.client.call.retry_delay", "s",
            "Total time of delay while there is no active attempt during the client call", LATENCY_BUCKETS)
        self.any_retry_metric = bool(enable_metrics)


_CACHE_SIZE = 4096


def _bounded(cache):
    """`cache`, emptied first when it is full: an application that makes
    channels to ever new addresses, or lets every generic method name
    through its filter, must not grow the plugin without end."""
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    return cache


# register_global's check and registration in one step
_registering = threading.Lock()


class OpenTelemetryPlugin(InstallableHook):
    """OpenTelemetry metrics for the calls of channels and servers (gRFC
    A66; A96's retry metrics on request).

    meter_provider            the MeterProvider to record with; None:
                              nothing is recorded
    target_attribute_filter   called once per channel target (in its
                              canonical form, "dns:///host:port"): False
                              records the target as "other"
    generic_method_attribute_filter
                              called with the method name ("pkg.Service/
                              Method") of a call whose method is not
                              registered (a client stub without
                              _registered_method; on a server, a method of
                              a generic handler or of none): True records
                              the name, otherwise "other" (the default), so
                              unknown names cannot blow up the metrics'
                              cardinality
    plugin_options            grpcio-observability's plugin options (its
                              CSM labels): accepted for compatibility, they
                              add nothing here
    enable_metrics            names from RETRY_METRICS to record (A96's
                              metrics are experimental: off by default)

    Filters should be quick and give the same answer for the same name:
    their answers are kept. Several plugins can be installed at once (each
    with its own MeterProvider).

    Where grpcio-observability differs, A66 is followed: the target is
    recorded canonical (it records it as given), grpc.client.call.duration
    is recorded (it leaves it out), and histograms advise A66's buckets (it
    leaves the SDK's defaults). Registering one plugin twice is an error;
    other plugins may be registered beside it (grpcio-observability allows
    one at a time).
    """

    messages = False
    RETRY_METRICS = RETRY_METRICS

    def __init__(self, *, plugin_options=None, meter_provider=None, target_attribute_filter=None,
                 generic_method_attribute_filter=None, enable_metrics=()):
        for name in ("target_attribute_filter", "generic_method_attribute_filter"):
            value = locals()[name]
            if value is not None and not callable(value):
                raise TypeError("%s must be callable, got %r" % (name, value))
        if isinstance(enable_metrics, str):
            enable_metrics = (enable_metrics,)
        unknown = sorted(set(enable_metrics) - set(RETRY_METRICS))
        if unknown:
            raise ValueError("enable_metrics: unknown metric(s) %s (known: %s)"
                             % (", ".join(unknown), ", ".join(RETRY_METRICS)))
        self.plugin_options = list(plugin_options or ())
        self.meter_provider = meter_provider
        self.target_attribute_filter = target_attribute_filter or (lambda target: True)
        self.generic_method_attribute_filter = generic_method_attribute_filter or (lambda method: False)
        self._instruments = None
        if meter_provider is not None:
            self._instruments = _Instruments(meter_provider, frozenset(enable_metrics))
        self._targets = {}          # target as given -> its attribute value
        self._clients = {}          # (method attribute, target attribute) -> _ClientCall
        self._servers = {}          # method attribute -> _ServerCall

    # -- grpcio-observability's API --------------------------------------------

    def register_global(self):
        """Install on every channel and server made from now on. Raises
        RuntimeError if this plugin is registered already."""
        with _registering:
            if self in stats.global_hooks():
                raise RuntimeError("this OpenTelemetryPlugin is registered already")
            stats.register_global(self)
        return self

    def deregister_global(self):
        """Stop installing on new channels and servers (those made before
        keep recording until they close). Raises RuntimeError if this
        plugin is not registered."""
        with _registering:
            if self not in stats.global_hooks():
                raise RuntimeError("this OpenTelemetryPlugin is not registered")
            stats.deregister_global(self)

    # -- the stats hook ----------------------------------------------------------

    def _method(self, info):
        method = info.method[1:] if info.method[:1] == "/" else info.method
        if info.registered or self.generic_method_attribute_filter(method):
            return method
        return OTHER

    def _target(self, target):
        value = self._targets.get(target)
        if value is None:
            canonical = canonical_target(target)
            value = canonical if self.target_attribute_filter(canonical) else OTHER
            _bounded(self._targets)[target] = value
        return value

    def client_call(self, info):
        if self._instruments is None:
            return None
        key = (self._method(info), self._target(info.target))
        call = self._clients.get(key)
        if call is None:
            call = _bounded(self._clients).setdefault(key, _ClientCall(self, {METHOD: key[0], TARGET: key[1]}))
        return call

    def server_call(self, info):
        if self._instruments is None:
            return None
        method = self._method(info)
        call = self._servers.get(method)
        if call is None:
            call = _bounded(self._servers).setdefault(method, _ServerCall(self, {METHOD: method}))
        self._instruments.server_started.add(1, call.base)
        return call
