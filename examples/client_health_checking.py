"""Client-side health checking (gRFC A17): with ``healthCheckConfig`` in the
service config, a round_robin channel watches grpc.health.v1.Health on every
backend and sends calls only to the SERVING ones.  A backend that turns
NOT_SERVING is drained without dropping its connection, and gets calls again
when it is back; a backend without the health service is used unchecked.

    python examples/client_health_checking.py
"""
import collections
import json
from concurrent import futures

import grpcpy
from grpcpy import health
from grpcpy.health import health_pb2

SERVICE = "demo.Echo"


def backend(name):
    def echo(request, context):
        context.set_trailing_metadata((("served-by", name),))
        return request
    server = grpcpy.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        SERVICE, {"Echo": grpcpy.unary_unary_rpc_method_handler(echo)}),))
    servicer = health.HealthServicer()
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, servicer, port


def main():
    backends = {name: backend(name) for name in ("one", "two", "three")}
    target = "ipv4:" + ",".join("127.0.0.1:%d" % port for _, _, port in backends.values())
    config = json.dumps({"loadBalancingConfig": [{"round_robin": {}}],
                         "healthCheckConfig": {"serviceName": SERVICE}})
    with grpcpy.insecure_channel(target, options=[("grpc.service_config", config)]) as channel:
        echo = channel.unary_unary("/demo.Echo/Echo")

        def spread(n=9):
            names = collections.Counter()
            for _ in range(n):
                _, call = echo.with_call(b"hi", timeout=5, wait_for_ready=True)
                names[dict(call.trailing_metadata())["served-by"]] += 1
            return sorted(names)

        while spread() != ["one", "three", "two"]:      # until all three are watched and SERVING
            pass
        print("all serving:", spread())
        backends["two"][1].set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
        while "two" in spread(3):
            pass
        print("two not serving:", spread())
        backends["two"][1].set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
        while spread() != ["one", "three", "two"]:
            pass
        print("two back:", spread())
    for server, _, _ in backends.values():
        server.stop(None)


if __name__ == "__main__":
    main()
