"""grpcpy.orca: backends reporting their load to clients (ORCA; gRFC A51,
A64), which weighted_round_robin turns into weights (gRFC A58).

Server side::

    recorder = grpcpy.orca.ServerMetricsRecorder()
    server = grpcpy.server(pool, interceptors=[grpcpy.orca.ServerInterceptor(recorder)])
    grpcpy.orca.add_orca_service(server, recorder)     # out-of-band reports
    recorder.set_cpu_utilization(0.4); recorder.set_qps(120)

    def Handler(request, context):                     # per-call reports
        grpcpy.orca.call_recorder(context).set_request_cost("rows", 12)

Per-call reports travel in the call's ``endpoint-load-metrics-bin`` trailer
(a serialized xds.data.orca.v3.OrcaLoadReport); ``parse_load_report`` reads
one on the client.  Out-of-band ones stream from
xds.service.orca.v3.OpenRcaService/StreamCoreMetrics.
"""
from grpcpy._protos.orca_load_report_pb import OrcaLoadReport  # noqa: F401
from grpcpy._protos.orca_service_pb import OrcaLoadReportRequest  # noqa: F401
from grpcpy.orca._interceptor import AioServerInterceptor, ServerInterceptor, call_recorder  # noqa: F401
from grpcpy.orca._recorder import (TRAILER_KEY, CallMetricsRecorder, ServerMetricsRecorder,  # noqa: F401
                                   parse_load_report)
from grpcpy.orca._service import (DEFAULT_MIN_REPORT_INTERVAL, METHOD, SERVICE_NAME,  # noqa: F401
                                  add_orca_service)

__all__ = ["ServerMetricsRecorder", "CallMetricsRecorder", "ServerInterceptor", "AioServerInterceptor",
           "call_recorder", "add_orca_service", "parse_load_report", "OrcaLoadReport",
           "OrcaLoadReportRequest", "TRAILER_KEY", "SERVICE_NAME", "METHOD", "DEFAULT_MIN_REPORT_INTERVAL"]
