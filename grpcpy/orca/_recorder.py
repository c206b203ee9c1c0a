"""What a backend reports about its load (ORCA, gRFC A51): a recorder of
metrics, the OrcaLoadReport it turns into, and the trailer that carries one
per call."""
import math
import threading

from grpcpy._protos.orca_load_report_pb import OrcaLoadReport

TRAILER_KEY = "endpoint-load-metrics-bin"

# scalar metrics: the recorder's name -> the report's field
_SCALARS = (("cpu_utilization", "cpu_utilization"), ("memory_utilization", "mem_utilization"),
            ("application_utilization", "application_utilization"), ("qps", "rps_fractional"),
            ("eps", "eps"))
# the report's maps: the recorder's name -> the report's field
_MAPS = (("named_utilization", "utilization"), ("request_cost", "request_cost"),
         ("named_metric", "named_metrics"))


def _check(what, value, upper=None):
    value = float(value)
    if math.isnan(value) or value < 0 or (upper is not None and value > upper):
        raise ValueError("%s must be %s, not %r" % (
            what, ">= 0" if upper is None else "within [0, %s]" % upper, value))
    return value


class ServerMetricsRecorder:
    """Metrics a server reports, set from any thread.

    Utilizations are fractions of what the server has (1.0 = all of it; CPU
    and application utilization may exceed 1.0 past a soft limit), qps and eps
    are its queries and errors per second.  Unset metrics are left out of the
    report.  ``snapshot()`` is the OrcaLoadReport of what is set now.

    One recorder serves the out-of-band service (grpcpy.orca.add_orca_service)
    and fills in the per-call reports of grpcpy.orca.ServerInterceptor;
    ``call_recorder(context)`` is one of these for a single call.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._scalars = {}
        self._maps = {name: {} for name, _ in _MAPS}

    def _set(self, name, value):
        with self._lock:
            self._scalars[name] = value

    def _delete(self, name):
        with self._lock:
            self._scalars.pop(name, None)

    def set_cpu_utilization(self, value):
        self._set("cpu_utilization", _check("cpu utilization", value))

    def set_memory_utilization(self, value):
        self._set("memory_utilization", _check("memory utilization", value, 1.0))

    def set_application_utilization(self, value):
        """The utilization weighted_round_robin prefers to the CPU's (say the
        larger of CPU and memory for a server bound by both)."""
        self._set("application_utilization", _check("application utilization", value))

    def set_qps(self, value):
        self._set("qps", _check("qps", value))

    def set_eps(self, value):
        self._set("eps", _check("eps", value))

    def delete_cpu_utilization(self):
        self._delete("cpu_utilization")

    def delete_memory_utilization(self):
        self._delete("memory_utilization")

    def delete_application_utilization(self):
        self._delete("application_utilization")

    def delete_qps(self):
        self._delete("qps")

    def delete_eps(self):
        self._delete("eps")

    def set_named_utilization(self, name, value):
        """One entry of the report's utilization map (a fraction in [0, 1])."""
        value = _check("utilization %r" % (name,), value, 1.0)
        with self._lock:
            self._maps["named_utilization"][str(name)] = value

    def delete_named_utilization(self, name):
        with self._lock:
            self._maps["named_utilization"].pop(name, None)

    def set_named_metric(self, name, value):
        """An application's own metric (any number)."""
        value = float(value)
        with self._lock:
            self._maps["named_metric"][str(name)] = value

    def delete_named_metric(self, name):
        with self._lock:
            self._maps["named_metric"].pop(name, None)

    def set_request_cost(self, name, value):
        """What a call cost (bytes stored, rows read ...), for per-call reports."""
        value = float(value)
        with self._lock:
            self._maps["request_cost"][str(name)] = value

    def _values(self):
        with self._lock:
            return dict(self._scalars), {name: dict(m) for name, m in self._maps.items()}

    def snapshot(self):
        """The OrcaLoadReport of the metrics set now."""
        return _report(*self._values())


class CallMetricsRecorder(ServerMetricsRecorder):
    """The metrics of one call (``call_recorder(context)``): sent in the
    call's trailers, merged over the server recorder's, which fill in what
    the call does not set."""


def _report(scalars, maps):
    fields = {field: scalars[name] for name, field in _SCALARS if name in scalars}
    for name, field in _MAPS:
        if maps[name]:
            fields[field] = maps[name]
    return OrcaLoadReport(**fields)


def merged_report(call, server):
    """The per-call report: the call's metrics over the server's."""
    scalars, maps = call._values()
    if server is not None:
        server_scalars, server_maps = server._values()
        scalars = {**server_scalars, **scalars}
        maps = {name: {**server_maps[name], **maps[name]} for name in maps}
    return _report(scalars, maps)


def parse_load_report(trailing_metadata):
    """The OrcaLoadReport a backend sent in a call's trailers
    (``endpoint-load-metrics-bin``), or None when there is none or it does
    not parse."""
    if not trailing_metadata:
        return None
    for key, value in trailing_metadata:
        if key == TRAILER_KEY:
            if isinstance(value, str):      # not binary: not a report
                return None
            try:
                return OrcaLoadReport.FromString(bytes(value))
            except Exception:   # the bytes are the peer's: a bad report is no report
                return None
    return None
