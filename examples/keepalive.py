"""Keepalive and connection management, with grpcio's option names.

The server keeps its connections young (grpc.max_connection_age_ms: a
graceful GOAWAY, calls in flight may finish within the grace) and lets
clients ping every 100 ms even with no call open. The client pings a
connection that was silent for 200 ms and gives it 1 s to answer: a
connection that stops answering (a peer gone behind a NAT, no FIN, no RST)
fails its calls UNAVAILABLE within keepalive_time + keepalive_timeout, and the
channel reconnects.

    python examples/keepalive.py
"""
from concurrent import futures
import time

import grpcpy

SERVER_OPTIONS = [
    ("grpc.max_connection_age_ms", 500),            # then GOAWAY, and ...
    ("grpc.max_connection_age_grace_ms", 5000),     # ... calls in flight get 5 s to finish
    ("grpc.keepalive_permit_without_calls", 1),     # the ping policy: pings with no call are fine,
    ("grpc.http2.min_ping_interval_without_data_ms", 100),   # up to one per 100 ms
]
CLIENT_OPTIONS = [
    ("grpc.keepalive_time_ms", 200),
    ("grpc.keepalive_timeout_ms", 1000),
    ("grpc.keepalive_permit_without_calls", 1),
]

peers = set()


def slow(request, context):
    peers.add(context.peer())
    time.sleep(float(request))
    return b"done after " + request + b" s"


def main():
    server = grpcpy.server(futures.ThreadPoolExecutor(4), options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Slow", {"Wait": grpcpy.unary_unary_rpc_method_handler(slow)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpcpy.insecure_channel("127.0.0.1:%d" % port, options=CLIENT_OPTIONS) as channel:
            wait = channel.unary_unary("/demo.Slow/Wait")
            # outlives the connection's age: the server's GOAWAY lets it finish
            print("call across the server's max_connection_age:", wait(b"1.0", timeout=10).decode())
            # the connection is gone; the channel opens another one
            print("next call:", wait(b"0", timeout=10).decode())
            print("connections the server saw:", len(peers))
    finally:
        server.stop(None)


if __name__ == "__main__":
    main()
