"""Health servers and clients the tests run against each other: grpcpy's
servicers on grpcpy's sync and asyncio servers, and grpcio-health-checking
on a grpcio server (the reference)."""
import asyncio
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health as grpcio_health
from grpc_health.v1 import health_pb2 as grpcio_pb
from grpc_health.v1 import health_pb2_grpc as grpcio_pb_grpc

import grpcpy
import grpcpy.aio
import grpcpy.health
from grpcpy.health import health_pb2 as pb

SERVING = pb.HealthCheckResponse.SERVING
NOT_SERVING = pb.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = pb.HealthCheckResponse.SERVICE_UNKNOWN
RPC_ERRORS = (grpc.RpcError, grpcpy.RpcError)

SERVERS = ["grpcpy-sync", "grpcpy-sync-aio-servicer", "grpcpy-aio", "grpcpy-aio-sync-servicer", "grpcio"]
GRPCPY_SERVERS = [s for s in SERVERS if s.startswith("grpcpy")]
CLIENTS = ["grpcpy", "grpcio"]


def wait_until(predicate, timeout=10.0):
    """Poll until predicate() is true (a bound against hangs, not a timing
    assertion); returns its last value."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        time.sleep(0.005)


class LoopThread:
    """An asyncio loop in a thread, for a grpcpy.aio server under tests
    written with blocking clients."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Served:
    """A running health server: set statuses, count watchers, stop."""

    def __init__(self, kind, options=(), workers=4):
        self.kind = kind
        self.options = list(options)
        self._loop = None
        if kind == "grpcio":
            self.servicer = grpcio_health.HealthServicer()
            self.server = grpc.server(futures.ThreadPoolExecutor(workers), options=self.options)
            grpcio_pb_grpc.add_HealthServicer_to_server(self.servicer, self.server)
            self.port = self.server.add_insecure_port("127.0.0.1:0")
            self.server.start()
        elif kind in ("grpcpy-sync", "grpcpy-sync-aio-servicer"):
            if kind == "grpcpy-sync":
                self.servicer = grpcpy.health.HealthServicer()
            else:
                self.servicer = grpcpy.health.aio.HealthServicer()
                self._loop = LoopThread()       # for its coroutine set()
            self.server = grpcpy.server(futures.ThreadPoolExecutor(workers), options=self.options)
            grpcpy.health.add_HealthServicer_to_server(self.servicer, self.server)
            self.port = self.server.add_insecure_port("127.0.0.1:0")
            self.server.start()
        else:
            self._loop = LoopThread()
            if kind == "grpcpy-aio":
                self.servicer = grpcpy.health.aio.HealthServicer()
            else:
                self.servicer = grpcpy.health.HealthServicer()
            self.port = self._loop.run(self._start_aio())

    async def _start_aio(self):
        self.server = grpcpy.aio.server(options=self.options)
        grpcpy.health.add_HealthServicer_to_server(self.servicer, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return port

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    def set(self, service, status):
        result = self.servicer.set(service, status)
        if self.kind in ("grpcpy-aio", "grpcpy-sync-aio-servicer"):
            self._loop.run(result)

    def enter_graceful_shutdown(self):
        result = self.servicer.enter_graceful_shutdown()
        if self.kind in ("grpcpy-aio", "grpcpy-sync-aio-servicer"):
            self._loop.run(result)

    def watchers(self):
        if self.kind == "grpcio":
            with self.servicer._lock:
                return sum(len(s) for s in self.servicer._send_response_callbacks.values())
        return self.servicer._state.watcher_count()

    def active_calls(self):
        return len(self.server._active)

    def stop(self, grace=None):
        if not self.kind.startswith("grpcpy-aio"):
            self.server.stop(grace).wait(30)
            return
        self._loop.run(self.server.stop(grace))

    def close(self):
        self.stop(None)
        if self._loop is not None:
            self._loop.close()


class Client:
    """A channel and a health stub of one implementation; the messages are
    that implementation's own classes."""

    def __init__(self, kind, target):
        self.kind = kind
        if kind == "grpcio":
            self.channel = grpc.insecure_channel(target)
            self.stub = grpcio_pb_grpc.HealthStub(self.channel)
            self.pb = grpcio_pb
        else:
            self.channel = grpcpy.insecure_channel(target)
            self.stub = grpcpy.health.HealthStub(self.channel)
            self.pb = pb

    def check(self, service="", timeout=10):
        return self.stub.Check(self.pb.HealthCheckRequest(service=service), timeout=timeout).status

    def watch(self, service="", timeout=None):
        return self.stub.Watch(self.pb.HealthCheckRequest(service=service), timeout=timeout)

    def list(self, timeout=10):
        response = self.stub.List(self.pb.HealthListRequest(), timeout=timeout)
        return {name: value.status for name, value in response.statuses.items()}

    def close(self):
        self.channel.close()
