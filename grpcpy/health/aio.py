"""The asyncio health servicer (grpc_health.v1.health.aio's API): the same
statuses and rules as the sync one (grpcpy.health._state), with coroutine
methods. Each Watch is a coroutine that waits for changes and writes them;
it ends when its call does (client cancel, deadline, server stop)."""
import asyncio
import threading

from grpcpy.health import _common
from grpcpy.health import health_pb2 as _pb
from grpcpy.health import health_pb2_grpc as _pb_grpc
from grpcpy.health._state import HealthState


class HealthServicer(_pb_grpc.HealthServicer):
    """grpc.health.v1.Health for grpcpy.aio servers; set() and
    enter_graceful_shutdown() are coroutines, as in grpcio-health-checking."""

    def __init__(self):
        self._state = HealthState()

    async def Check(self, request, context):
        return _common.check(self._state, request, context)

    async def List(self, request, context):
        return _common.list_statuses(self._state, request, context)

    async def Watch(self, request, context):
        await watch(self._state, request, context)

    async def set(self, service, status):
        self._state.set(service, status)

    async def enter_graceful_shutdown(self):
        self._state.enter_graceful_shutdown()


async def watch(state, request, context):
    """Write the service's status, then each change, until cancelled. A
    change made while a write waits for the client is folded into the next
    one (the newest status wins), so a slow client costs one message."""
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    changed = asyncio.Event()
    latest = [None]

    def watcher(status):
        # called with the state's lock held, from any thread: must not block
        latest[0] = status
        if threading.get_ident() == loop_thread:
            changed.set()
        else:
            try:
                loop.call_soon_threadsafe(changed.set)
            except RuntimeError:    # the loop is closed: so is this Watch
                pass

    service = request.service
    state.watch(service, watcher)
    sent = None
    try:
        while True:
            await changed.wait()
            changed.clear()
            status = latest[0]
            if status != sent:
                sent = status
                await context.write(_pb.HealthCheckResponse(status=status))
    finally:
        state.unwatch(service, watcher)


def _methods(state):
    """Check, List and Watch coroutines over a sync servicer's state, for
    an asyncio server."""
    async def Check(request, context):
        return _common.check(state, request, context)

    async def List(request, context):
        return _common.list_statuses(state, request, context)

    async def Watch(request, context):
        await watch(state, request, context)

    return Check, List, Watch
