"""Prometheus metrics of calls, named as go-grpc-prometheus names them.

Dashboards and alerts written for go-grpc-prometheus (and its Python port,
py-grpc-prometheus) read these series unchanged:

    grpc_server_started_total        RPCs started on the server
    grpc_server_handled_total        RPCs ended on the server (label grpc_code)
    grpc_server_msg_received_total   messages the server received
    grpc_server_msg_sent_total       messages the server sent
    grpc_server_handling_seconds     histogram of server call durations
    grpc_client_...                  the same five, seen from a channel

with the labels grpc_type ("unary", "client_stream", "server_stream",
"bidi_stream"), grpc_service ("pkg.Service"), grpc_method ("Method") and,
on the handled counters, grpc_code (the status code as Go spells it: "OK",
"NotFound", "Canceled", ...; py-grpc-prometheus writes "NOT_FOUND" and
"UNARY" where go-grpc-prometheus, and grpcpy, write "NotFound" and "unary").
The histograms have go-grpc-prometheus' default buckets (Prometheus'
DefBuckets); go-grpc-prometheus' optional per-message receive/send time
histograms are not offered (a hook sees a message arrive, not how long the
application waited for it).

Label values stay bounded whatever clients send: a server call to a method
the server has no handler for is counted under grpc_service="other",
grpc_method="other" (as gRFC A66 does), so random method names cannot
create series; and at most `max_methods` methods per side are named (a
server whose generic handler accepts any name counts the calls to further
methods as "other" too). On a channel the method names are the
application's own.

Messages are counted without an event per message: a running call's are
read from the core's counters when /metrics is scraped (CallInfo.figures(),
so long streams show live), a finished call's come with its totals. The
work per call is one short locked update of its method's series when it
starts and one when it ends, the series found in one dict lookup; the
figures become metric families only when scraped (a collector), as
updating prometheus_client's own Counter and Histogram objects would cost
several times more per call.

prometheus-client is used because it is Prometheus' own Python client: its
registry, exposition format and HTTP server are what scrapers expect, and
applications usually have their own metrics in its default registry
already. It is the optional extra ``grpcpy[prometheus]``.

    metrics = grpcpy.prometheus.Metrics()      # in prometheus_client.REGISTRY
    metrics.register_global()                  # or options=[("grpcpy.stats_hooks", metrics)]
    grpcpy.prometheus.start_http_server(9090)  # /metrics
"""
import bisect
import itertools
import threading

try:
    import prometheus_client
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
    from prometheus_client.utils import floatToGoString
except ImportError as e:
    raise ImportError("grpcpy.prometheus needs prometheus-client: pip install grpcpy[prometheus] (%s)" % e) from e

from grpcpy import stats
from grpcpy._types import StatusCode
from grpcpy.observability._install import InstallableHook

__all__ = ["Metrics", "DEFAULT_BUCKETS", "start_http_server", "MetricsServer"]

# go-grpc-prometheus' default buckets: Prometheus' DefBuckets (the Go
# client's), which differ from prometheus_client's own defaults
DEFAULT_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
OTHER = "other"          # the service and method labels of unregistered server methods
UNKNOWN = "unknown"      # a part missing from a malformed name, a type a server could not tell

_LABELS = ("grpc_type", "grpc_service", "grpc_method")


def _go_name(code):
    """NOT_FOUND -> NotFound, as Go's codes.Code.String() says it."""
    if code.name == "OK":
        return "OK"
    if code.name == "CANCELLED":
        return "Canceled"
    return "".join(word.capitalize() for word in code.name.split("_"))


CODE_LABELS = {code: _go_name(code) for code in StatusCode}
# by the code's name (a str key hashes in C; StatusCode's own hash is Python)
_GO_NAMES = {code._name_: label for code, label in CODE_LABELS.items()}


def split_method(method):
    """("pkg.Service", "Method") of "/pkg.Service/Method"; ("unknown",
    "unknown") for a name not of that shape (as go-grpc-prometheus does)."""
    if method.startswith("/"):
        service, slash, name = method[1:].partition("/")
        if slash and service and name:
            return service, name
    return UNKNOWN, UNKNOWN


class _Series:
    """The figures of one (type, service, method) of one side: a
    grpcpy.stats.Tally series. A running call is kept in `live`: its
    messages are read from the core's counters when scraped (live counts
    for long streams, no event per message); its final figures are added
    here when it ends. One short locked update when a call starts and one
    when it ends; the lock keeps counts exact across threads."""

    def __init__(self, labels, bounds):
        self.labels = labels
        self._bounds = bounds
        self._lock = threading.Lock()
        self.started_calls = self.received = self.sent = 0
        self.handled = {}                               # grpc_code label -> calls
        self.buckets = [0] * (len(bounds) + 1)          # per bucket, not cumulative; the last is +Inf
        self.seconds = 0.0
        self.live = {}                                  # running call -> [sent, received] a scrape saw

    def started(self, call):
        with self._lock:
            self.started_calls += 1
            self.live[call] = [0, 0]

    def ended(self, call, code, duration):
        bucket = bisect.bisect_left(self._bounds, duration)     # the first bound >= duration ("le")
        code = _GO_NAMES[code._name_]
        sent, _, received, _ = call.figures()
        with self._lock:
            seen = self.live.pop(call, None)
            if seen is not None:
                # (never less than a scrape saw of it while it ran: a
                # counter does not go back, even when a retry started the
                # count again)
                if seen[0] > sent:
                    sent = seen[0]
                if seen[1] > received:
                    received = seen[1]
            self.received += received
            self.sent += sent
            self.handled[code] = self.handled.get(code, 0) + 1
            self.buckets[bucket] += 1
            self.seconds += duration

    def snapshot(self):
        with self._lock:
            live = list(self.live.items())
        received = sent = 0
        for call, seen in live:
            now_sent, _, now_received, _ = call.figures()
            if now_sent > seen[0]:
                seen[0] = now_sent
            if now_received > seen[1]:
                seen[1] = now_received
            sent += seen[0]
            received += seen[1]
        with self._lock:
            return (self.started_calls, self.received + received, self.sent + sent, dict(self.handled),
                    list(self.buckets), self.seconds)


class _Side:
    """One side's series by method, exposed as its five metric families
    (a prometheus_client collector: the figures are read at scrape time)."""

    def __init__(self, side, bounds):
        self.series = {}
        self.bounds = bounds
        self._prefix = "grpc_%s_" % side
        self._where = "on the server" if side == "server" else "by the client"
        self._le = [floatToGoString(bound) for bound in bounds] + ["+Inf"]

    def collect(self, series=None):
        where, prefix = self._where, self._prefix
        started = CounterMetricFamily(prefix + "started", "RPCs started %s." % where, labels=_LABELS)
        handled = CounterMetricFamily(prefix + "handled", "RPCs ended %s, whatever their status." % where,
                                      labels=_LABELS + ("grpc_code",))
        received = CounterMetricFamily(prefix + "msg_received", "Messages received %s." % where, labels=_LABELS)
        sent = CounterMetricFamily(prefix + "msg_sent", "Messages sent %s." % where, labels=_LABELS)
        seconds = HistogramMetricFamily(prefix + "handling_seconds",
                                        "Seconds from the start of RPCs %s to their status." % where,
                                        labels=_LABELS)
        for one in list(self.series.values()) if series is None else series:
            n_started, n_received, n_sent, by_code, buckets, total = one.snapshot()
            labels = one.labels
            started.add_metric(labels, n_started)
            received.add_metric(labels, n_received)
            sent.add_metric(labels, n_sent)
            for code, n in by_code.items():
                handled.add_metric(labels + (code,), n)
            seconds.add_metric(labels, list(zip(self._le, itertools.accumulate(buckets))), total)
        return [started, handled, received, sent, seconds]

    def describe(self):
        """The families without samples: what the registry checks names with."""
        return self.collect(series=())


class _Nothing:
    """The series of a side this Metrics leaves out."""

    def started(self, call):
        pass

    def ended(self, call, code, duration):
        pass


_NOTHING = _Nothing()


class Metrics(InstallableHook, stats.Tally):
    """go-grpc-prometheus' server and client metrics of the channels and
    servers this hook is installed on, in `registry` (prometheus_client's
    default registry when None). `server` / `client` False leaves that
    side's metrics out. `max_methods`: the most methods per side labelled
    by name; calls to others count as "other". One Metrics per registry:
    a second would register the same metric names again, which
    prometheus_client refuses.

    Install it with register_global() (every channel and server made
    afterwards; deregister_global() stops that), as a context manager
    (the same, for the `with` block), or on one channel or server with the
    option ``("grpcpy.stats_hooks", metrics)``."""

    def __init__(self, registry=None, buckets=DEFAULT_BUCKETS, server=True, client=True, max_methods=1000):
        if registry is None:
            registry = prometheus_client.REGISTRY
        try:
            bounds = tuple(sorted({float(bound) for bound in buckets} - {float("inf")}))
        except (TypeError, ValueError):
            raise ValueError("buckets: a sequence of numbers is expected, got %r" % (buckets,)) from None
        if not isinstance(max_methods, int) or max_methods < 0:
            raise ValueError("max_methods: a number of methods (0 or more) is expected, got %r" % (max_methods,))
        self._server = _Side("server", bounds) if server else None
        self._client = _Side("client", bounds) if client else None
        self.max_methods = max_methods
        for side in (self._server, self._client):
            if side is not None:
                registry.register(side)

    def series(self, info):
        """(grpcpy.stats.Tally) The series of a method's calls, asked once per
        channel or server and method: on a server a method is named when
        the server has a handler for it."""
        if info.server:
            side = self._server
            return _NOTHING if side is None else self._series(side, info, info.registered or info.kind is not None)
        side = self._client
        return _NOTHING if side is None else self._series(side, info, True)

    def _series(self, side, info, named):
        """The series of a call's method (`named` False: of "other"); made on
        its first call, then found in one dict lookup."""
        key = (info.kind, info.method if named else None)
        series = side.series.get(key)
        if series is None:
            if named and len(side.series) >= self.max_methods:
                return self._series(side, info, False)
            service, method = split_method(info.method) if named else (OTHER, OTHER)
            # setdefault: of two threads making the same series, both get the one kept
            series = side.series.setdefault(key, _Series((info.kind or UNKNOWN, service, method), side.bounds))
        return series


class MetricsServer:
    """The HTTP server start_http_server started: `port` is the port it
    listens on (the one picked when 0 was asked); close() stops it."""

    def __init__(self, httpd, thread):
        self._httpd = httpd
        self._thread = thread
        self.port = httpd.server_port

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def start_http_server(port, addr="0.0.0.0", registry=None):
    """Serve `registry` (prometheus_client's default when None) on
    http://addr:port/metrics from a daemon thread: prometheus_client's own
    exposition server. Port 0 picks a free port (MetricsServer.port)."""
    if registry is None:
        registry = prometheus_client.REGISTRY
    httpd, thread = prometheus_client.start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(httpd, thread)
