"""Check and List over a HealthState, shared by the sync and asyncio
servicers (the asyncio ones await nothing: both answer from memory)."""
from grpcpy import _types
from grpcpy.health import health_pb2 as _pb


def check(state, request, context):
    """The status of one service; NOT_FOUND (no details, as grpcio's
    servicers answer) for a service never set."""
    status = state.get(request.service)
    if status is None:
        context.set_code(_types.StatusCode.NOT_FOUND)
        return _pb.HealthCheckResponse()
    return _pb.HealthCheckResponse(status=status)


def list_statuses(state, request, context):
    response = _pb.HealthListResponse()
    statuses = response.statuses
    for service, status in state.snapshot().items():
        statuses[service].status = status
    return response
