"""Outlier detection (gRFC A50): a client stops sending calls to a backend
that fails too many of them, then tries it again.

Three servers listen on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (all loopback on
Linux); the one on .2 fails every other call. The client's channel spreads
its calls with round_robin, wrapped in `outlier_detection` through
`loadBalancingConfig`: every 0.1 s it looks at each backend's calls of the
last interval, and a backend failing more than 40 % of at least 4 calls is
ejected (round_robin sees it as down) for `baseEjectionTime` (0.5 s, longer
each time it is ejected again), after which it gets calls again.

    python examples/outlier_detection.py
"""
import json
import time
from concurrent import futures

import grpcpy

CONFIG = json.dumps({"loadBalancingConfig": [{"outlier_detection": {
    "interval": "0.1s",
    "baseEjectionTime": "0.5s",
    "maxEjectionPercent": 50,           # never more than half the backends out
    "failurePercentageEjection": {"threshold": 40, "minimumHosts": 3, "requestVolume": 4},
    "childPolicy": [{"round_robin": {}}],
}}]})


def backend(host, name, flaky):
    served = [0]

    def echo(request, context):
        served[0] += 1
        if flaky and served[0] % 2 == 0:
            context.abort(grpcpy.StatusCode.INTERNAL, "%s: every other call fails" % name)
        return name.encode()

    server = grpcpy.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Echo", {"Echo": grpcpy.unary_unary_rpc_method_handler(echo)}),))
    port = server.add_insecure_port("%s:0" % host)
    server.start()
    return server, "%s:%d" % (host, port)


def main():
    servers, addresses = zip(*(backend("127.0.0.%d" % i, name, name == "b")
                               for i, name in ((1, "a"), (2, "b"), (3, "c"))))
    try:
        with grpcpy.insecure_channel("ipv4:" + ",".join(addresses),
                                     options=[("grpc.service_config", CONFIG)]) as channel:
            echo = channel.unary_unary("/demo.Echo/Echo")

            def call():
                """The backend that answered, or '!' for a failed call."""
                try:
                    return echo(b"", timeout=5, wait_for_ready=True).decode()
                except grpcpy.RpcError:
                    return "!"

            served = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not {"a", "b", "c", "!"} <= set(served):
                served.append(call())
            print("first calls served by:", " ".join(sorted(set(served) - {"!"})), "- some failed:", "!" in served)
            # b's failures get it ejected within an interval or two: calls stop reaching it
            while time.monotonic() < deadline and not (len(served) >= 30 and set(served[-30:]) <= {"a", "c"}):
                served.append(call())
            print("after the ejection, 30 calls served by:", " ".join(sorted(set(served[-30:]))))
            # when its ejection time is over, b gets calls again
            while time.monotonic() < deadline and served[-1] not in ("b", "!"):
                served.append(call())
            print("after the ejection time, b is called again:", served[-1] in ("b", "!"))
    finally:
        for server in servers:
            server.stop(None)


if __name__ == "__main__":
    main()
