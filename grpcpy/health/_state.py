"""The statuses of a health service and who watches them: the one place the
health logic lives; the sync and asyncio servicers are thin views of it.

Watchers are callables taking a status number. They are called with the
state's lock held, so that every watcher sees the changes in the order they
were made; a watcher must therefore not block (the sync servicer's watcher
queues a message on its call without waiting, the asyncio one sets a value
and wakes its coroutine). Lock order:
this lock, then whatever a watcher takes (a connection's lock): nothing
takes them the other way round, which is why set() cannot deadlock against
a Watch that is being cancelled.
"""
import logging
import threading

from grpcpy._protos import health_pb

_LOGGER = logging.getLogger("grpcpy.health")

SERVING = health_pb.HealthCheckResponse.SERVING
NOT_SERVING = health_pb.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb.HealthCheckResponse.SERVICE_UNKNOWN
OVERALL_HEALTH = ""


class HealthState:
    def __init__(self):
        # reentrant: a watcher's send may, rarely, run code that sets a status
        self._lock = threading.RLock()
        self._statuses = {OVERALL_HEALTH: SERVING}
        self._watchers = {}          # service -> set of watchers
        self._shutting_down = False

    def get(self, service):
        """The service's status, or None when it was never set."""
        return self._statuses.get(service)

    def snapshot(self):
        with self._lock:
            return dict(self._statuses)

    def set(self, service, status):
        """Set a status and tell the service's watchers if it changed.
        Ignored after enter_graceful_shutdown()."""
        with self._lock:
            if not self._shutting_down:
                self._set_locked(service, status)

    def _set_locked(self, service, status):
        if self._statuses.get(service) == status:
            # every watcher of it has been sent this status already
            return
        self._statuses[service] = status
        for watcher in tuple(self._watchers.get(service, ())):
            _notify(watcher, status)

    def enter_graceful_shutdown(self):
        """Every service NOT_SERVING, for good (later set() calls are
        ignored)."""
        with self._lock:
            if self._shutting_down:
                return
            self._shutting_down = True
            for service in list(self._statuses):
                self._set_locked(service, NOT_SERVING)

    def watch(self, service, watcher):
        """Add a watcher; it is called at once with the current status
        (SERVICE_UNKNOWN for a service never set), then on every change."""
        with self._lock:
            self._watchers.setdefault(service, set()).add(watcher)
            _notify(watcher, self._statuses.get(service, SERVICE_UNKNOWN))

    def unwatch(self, service, watcher):
        with self._lock:
            watchers = self._watchers.get(service)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[service]

    def watcher_count(self):
        with self._lock:
            return sum(len(w) for w in self._watchers.values())


def _notify(watcher, status):
    try:
        watcher(status)
    except Exception:   # one broken watcher must not stop the others
        _LOGGER.exception("health watcher failed")
