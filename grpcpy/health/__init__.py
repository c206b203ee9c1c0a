"""grpcpy.health: the gRPC health checking service (grpc.health.v1.Health:
Check, List, Watch), with grpcio-health-checking's API so code moves by
changing the import:

    from grpcpy.health import health, health_pb2, health_pb2_grpc
    servicer = health.HealthServicer()           # or grpcpy.health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    servicer.set("my.Service", health_pb2.HealthCheckResponse.SERVING)

grpcpy.health.aio.HealthServicer is the asyncio servicer (coroutine set());
either servicer goes on a sync or an asyncio grpcpy server. The server option
("grpcpy.health.drain_on_stop", 1) makes stop(grace) flip every service to
NOT_SERVING first, so load balancers drain the server before it closes.
"""
from grpcpy.health import aio, health, health_pb2, health_pb2_grpc  # noqa: F401
from grpcpy.health.health import OVERALL_HEALTH, SERVICE_NAME, HealthServicer  # noqa: F401
from grpcpy.health.health_pb2_grpc import DRAIN_ON_STOP, HealthStub, add_HealthServicer_to_server  # noqa: F401

__all__ = ["HealthServicer", "HealthStub", "add_HealthServicer_to_server", "health_pb2", "health_pb2_grpc",
           "health", "aio", "SERVICE_NAME", "OVERALL_HEALTH", "DRAIN_ON_STOP"]
