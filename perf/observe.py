"""Observability the benchmarks can switch on (facade_bench.py --stats,
bench.py's *-otel and *-prom rows): channel and server options that install
grpcpy.stats hooks.

  declines    hooks that are asked about every call and want none
  calls       hooks that want every call (not its attempts) and do nothing
              at its end
  noop        hooks that want every call and attempt and do nothing: what
              the call layer's wiring itself costs
  otel        grpcpy.observability.OpenTelemetryPlugin with the SDK's
              MeterProvider and an in-memory reader (nothing exported)
  prometheus  grpcpy.prometheus' metrics in a private registry
"""


def stats_options(kind):
    """The options that install `kind`'s hooks ([] for None)."""
    if not kind:
        return []
    from grpcpy import stats
    return [(stats.OPTION, _HOOKS[kind]())]


def _noop():
    from grpcpy import stats

    class Attempt(stats.AttemptStats):
        pass

    class Call(stats.ClientCallStats):
        def attempt(self, number, transparent, previous, metadata):
            return Attempt()

    class Hook(stats.Hook):
        def client_call(self, info):
            return Call()

        def server_call(self, info):
            return stats.ServerCallStats()
    return Hook()


def _otel():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from grpcpy.observability import OpenTelemetryPlugin
    plugin = OpenTelemetryPlugin(meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]))
    return plugin.hook


def _prometheus():
    import prometheus_client
    import grpcpy.prometheus
    return grpcpy.prometheus.Metrics(registry=prometheus_client.CollectorRegistry()).hook


def _calls():
    from grpcpy import stats

    class Call(stats.ClientCallStats, stats.ServerCallStats):
        def end(self, code, details, trailing, totals):
            pass
    shared = Call()

    class Hook(stats.Hook):
        def client_call(self, info):
            return shared

        def server_call(self, info):
            return shared
    return Hook()


def _declines():
    from grpcpy import stats

    class Hook(stats.Hook):
        pass
    return Hook()


_HOOKS = {"calls": _calls, "declines": _declines, "noop": _noop, "otel": _otel, "prometheus": _prometheus}
