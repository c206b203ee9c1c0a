"""The grpc.health.v1 messages (grpc_health.v1.health_pb2's names):
HealthCheckRequest, HealthCheckResponse (with SERVING, NOT_SERVING ...),
HealthListRequest, HealthListResponse.

They come from grpcpy's private descriptor pool (see grpcpy._protos), so this
module loads in the same process as grpcio-health-checking's health_pb2; the
messages of both are the same on the wire, but not the same Python classes.
"""
from grpcpy._protos.health_pb import (  # noqa: F401
    DESCRIPTOR, HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse)
