"""The sync health servicer (grpc_health.v1.health's API).

Watch follows the non-blocking protocol of grpcio's sync server: the server
passes a send_response_callback, Watch registers it and returns at once, so
an open Watch holds no worker thread; the call ends (and the watcher is
forgotten, through the context's callback) when the client cancels, its
deadline passes or the server stops. Without the protocol (a server that
does not offer it, or experimental_non_blocking=False) Watch returns a
blocking iterator instead, which holds a thread for as long as it is open.
"""
import threading

from grpcpy.health import _common
from grpcpy.health import aio  # noqa: F401  (grpc_health.v1.health.aio)
from grpcpy.health import health_pb2 as _pb
from grpcpy.health import health_pb2_grpc as _pb_grpc
from grpcpy.health._state import OVERALL_HEALTH, HealthState  # noqa: F401

SERVICE_NAME = _pb_grpc.SERVICE_NAME


class HealthServicer(_pb_grpc.HealthServicer):
    """grpc.health.v1.Health: Check, List and Watch over the statuses given
    to set(). The overall health ("") starts SERVING.

    experimental_non_blocking (default True) lets Watch use the server's
    non-blocking protocol; experimental_thread_pool is accepted for
    grpcio-health-checking's signature and not used (a non-blocking Watch
    returns at once and needs no pool of its own)."""

    def __init__(self, experimental_non_blocking=True, experimental_thread_pool=None):
        self._state = HealthState()
        if not experimental_non_blocking:
            # per instance: the flag is read from the method the server is given
            def Watch(request, context, send_response_callback=None):
                return HealthServicer.Watch(self, request, context)
            Watch.experimental_non_blocking = False
            self.Watch = Watch

    def Check(self, request, context):
        return _common.check(self._state, request, context)

    def List(self, request, context):
        return _common.list_statuses(self._state, request, context)

    def Watch(self, request, context, send_response_callback=None):
        return watch(self._state, request, context, send_response_callback)

    Watch.experimental_non_blocking = True

    def set(self, service, status):
        """Set the status of a service (a HealthCheckResponse status
        value); open Watches of it are sent the change."""
        self._state.set(service, status)

    def enter_graceful_shutdown(self):
        """Every service NOT_SERVING, for good: later set() calls are
        ignored (the server is going away)."""
        self._state.enter_graceful_shutdown()


def watch(state, request, context, send_response_callback=None):
    """Watch over a HealthState for a sync server: non-blocking with a
    send_response_callback, a blocking iterator without one."""
    service = request.service
    if send_response_callback is None:
        blocking = _BlockingWatch()
        watcher = blocking.put

        def end():
            state.unwatch(service, watcher)
            blocking.close()
    else:
        blocking = None

        def watcher(status):
            send_response_callback(_pb.HealthCheckResponse(status=status))

        def end():
            state.unwatch(service, watcher)
            send_response_callback(None)
    state.watch(service, watcher)
    if not context.add_callback(end):
        end()       # the call has ended already
    return blocking


def _methods(state):
    """Check, List and Watch over an asyncio servicer's state, for a sync
    server."""
    def Check(request, context):
        return _common.check(state, request, context)

    def List(request, context):
        return _common.list_statuses(state, request, context)

    def Watch(request, context, send_response_callback=None):
        return watch(state, request, context, send_response_callback)

    Watch.experimental_non_blocking = True
    return Check, List, Watch


class _BlockingWatch:
    """Watch's response iterator without the non-blocking protocol: the
    newest status not yet sent (older ones are dropped; a watcher wants the
    current state), until the call ends."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._status = None
        self._open = True

    def put(self, status):
        with self._cond:
            self._status = status
            self._cond.notify()

    def close(self):
        with self._cond:
            self._open = False
            self._cond.notify()

    def __iter__(self):
        return self

    def __next__(self):
        with self._cond:
            while self._status is None and self._open:
                self._cond.wait()
            if not self._open:
                raise StopIteration
            status, self._status = self._status, None
        return _pb.HealthCheckResponse(status=status)
