"""Health checking: a server with grpcpy.health, and a client that Checks
and Watches it while the server flips a service's status and then drains on
stop.

The server option ("grpcpy.health.drain_on_stop", 1) makes stop(grace) set
every service NOT_SERVING before anything closes: a client watching (a load
balancer, or a channel doing client-side health checking) hears it and moves
its traffic away while the calls in flight finish within the grace.
Open Watches hold no server thread.

    python examples/health.py
"""
from concurrent import futures

import grpcpy
from grpcpy import health
from grpcpy.health import health_pb2

NAMES = health_pb2.HealthCheckResponse.ServingStatus.Name


def main():
    server = grpcpy.server(futures.ThreadPoolExecutor(4), options=[(health.DRAIN_ON_STOP, 1)])
    servicer = health.HealthServicer()
    health.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    with grpcpy.insecure_channel("127.0.0.1:%d" % port) as channel:
        stub = health.HealthStub(channel)
        # what grpc_health_probe does: one Check with a deadline
        print("check '':", NAMES(stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status))
        try:
            stub.Check(health_pb2.HealthCheckRequest(service="demo.Echo"), timeout=5)
        except grpcpy.RpcError as exc:
            print("check 'demo.Echo':", exc.code().name)

        watch = stub.Watch(health_pb2.HealthCheckRequest(service="demo.Echo"))
        changes = iter(watch)
        print("watch:", NAMES(next(changes).status))
        servicer.set("demo.Echo", health_pb2.HealthCheckResponse.SERVING)
        print("watch:", NAMES(next(changes).status))
        servicer.set("demo.Echo", health_pb2.HealthCheckResponse.NOT_SERVING)
        print("watch:", NAMES(next(changes).status))
        servicer.set("demo.Echo", health_pb2.HealthCheckResponse.SERVING)
        print("watch:", NAMES(next(changes).status))
        listing = stub.List(health_pb2.HealthListRequest(), timeout=5)
        print("list:", {name: NAMES(value.status) for name, value in sorted(listing.statuses.items())})

        stopped = server.stop(grace=10)
        print("stopping; watch:", NAMES(next(changes).status))
        watch.cancel()       # the client has moved away: nothing is left in flight
        stopped.wait()
        print("server stopped")


if __name__ == "__main__":
    main()
