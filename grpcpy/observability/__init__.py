"""Observability built on grpcpy.stats: OpenTelemetry metrics (gRFC A66,
A96) and tracing (A72), and a log line per call.

The OpenTelemetry parts need the optional extra (``pip install
grpcpy[otel]``); they are imported on first use, so ``import
grpcpy.observability`` costs nothing without it.
"""
import importlib

_WHERE = {
    "OpenTelemetryPlugin": "grpcpy.observability._metrics",
    "OpenTelemetryTracing": "grpcpy.observability._tracing",
    "CallLogger": "grpcpy.observability._logging",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError("module 'grpcpy.observability' has no attribute %r" % (name,))
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
