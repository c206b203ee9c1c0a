"""Descriptors of xds/service/orca/v3/orca.proto (grpcpy's own copy; see grpcpy/_protos).
Regenerate with: python -m grpcpy._protos.regen"""
from grpcpy._protos import build as _build

DESCRIPTOR = _build(
    b'\n\x1exds/service/orca/v3/orca.proto\x12\x13xds.service.orca.v3\x1a\x1egoogle/protobuf/duration.proto\x1a\'xds/data/orca/v3/orca_load_report.proto"\x89\x01\n\x15OrcaLoadReportRequest\x12B\n\x0freport_interval\x18\x01 \x01(\x0b2\x19.google.protobuf.DurationR\x0ereportInterval\x12,\n\x12request_cost_names\x18\x02 \x03(\tR\x10requestCostNames2u\n\x0eOpenRcaService\x12c\n\x11StreamCoreMetrics\x12*.xds.service.orca.v3.OrcaLoadReportRequest\x1a .xds.data.orca.v3.OrcaLoadReport0\x01b\x06proto3',
    __name__, globals())
