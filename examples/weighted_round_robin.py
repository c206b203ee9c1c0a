"""Weighted round robin from backend load reports (ORCA).

Three backends, on 127.0.0.2, .3 and .4, serve the same qps but report CPU
utilisation 0.2, 0.4 and 0.8 (a real server would measure it and keep its
recorder up to date). grpcpy.orca.ServerInterceptor sends each call's
report in its trailers; the client's weighted_round_robin policy turns the
reports into weights (qps / utilisation) and spreads calls 4 : 2 : 1.

A short blackoutPeriod and weightUpdatePeriod make the weights apply at
once for the demo; the defaults (10 s, 1 s) suit a real service.

    python examples/weighted_round_robin.py
"""
import collections
import json
import time
from concurrent import futures

import grpcpy
from grpcpy import orca

LOADS = {"127.0.0.2": 0.2, "127.0.0.3": 0.4, "127.0.0.4": 0.8}

SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"weighted_round_robin": {
    "blackoutPeriod": "0s", "weightUpdatePeriod": "0.1s"}}]})


def start_backend(host, cpu):
    recorder = orca.ServerMetricsRecorder()
    recorder.set_cpu_utilization(cpu)
    recorder.set_qps(100)
    server = grpcpy.server(futures.ThreadPoolExecutor(4), interceptors=[orca.ServerInterceptor(recorder)])

    def who(request, context):
        return host.encode()
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Backend", {"Who": grpcpy.unary_unary_rpc_method_handler(who)}),))
    port = server.add_insecure_port("%s:0" % host)
    server.start()
    return server, "%s:%d" % (host, port)


def main():
    started = [start_backend(host, cpu) for host, cpu in LOADS.items()]
    target = "ipv4:" + ",".join(address for _, address in started)
    with grpcpy.insecure_channel(target, options=[("grpc.service_config", SERVICE_CONFIG)]) as channel:
        who = channel.unary_unary("/demo.Backend/Who")
        # a moment of plain rotation while the first reports come in
        warm_until = time.monotonic() + 0.5
        while time.monotonic() < warm_until:
            who(b"", timeout=10)
        counts = collections.Counter(who(b"", timeout=10).decode() for _ in range(1400))
    for host, cpu in LOADS.items():
        print("%s (cpu %.1f): %d%% of the calls" % (host, cpu, round(100 * counts[host] / 1400)))
    for server, _ in started:
        server.stop(None)


if __name__ == "__main__":
    main()
