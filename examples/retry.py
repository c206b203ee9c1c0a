"""Retries by service config: a flaky server and a client that rides it out.

The server fails the first two attempts of every call with UNAVAILABLE. It
tells the attempts of a call apart by the `grpc-previous-rpc-attempts`
header the client adds to each retry (absent on the first attempt), and it
says which attempt answered in a trailer. The client's channel carries a
retryPolicy in `grpc.service_config` (the same JSON grpcio reads): up to 4
attempts on UNAVAILABLE, with jittered exponential backoff between them.
Its calls succeed on the third attempt; the application sees one call. A
channel without the policy sees the first failure.

    python examples/retry.py
"""
import json
from concurrent import futures

import grpcpy

RETRY = json.dumps({
    "methodConfig": [{
        "name": [{"service": "demo.Flaky"}],      # every method of the service
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})


def flaky(request, context):
    attempt = int(dict(context.invocation_metadata()).get("grpc-previous-rpc-attempts", 0)) + 1
    context.set_trailing_metadata((("attempt", str(attempt)),))
    if attempt <= 2:
        context.abort(grpcpy.StatusCode.UNAVAILABLE, "attempt %d: try again" % attempt)
    return b"ok:" + request


def call(channel, request):
    try:
        response, state = channel.unary_unary("/demo.Flaky/Echo").with_call(request, timeout=10)
        outcome = response.decode()
    except grpcpy.RpcError as failed:
        state, outcome = failed, failed.code().name
    return "%s, answered by attempt %s" % (outcome, dict(state.trailing_metadata())["attempt"])


def main():
    server = grpcpy.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Flaky", {"Echo": grpcpy.unary_unary_rpc_method_handler(flaky)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    target = "127.0.0.1:%d" % port
    try:
        with grpcpy.insecure_channel(target, options=[("grpc.service_config", RETRY)]) as channel:
            print("with a retry policy:", call(channel, b"hello"))
            print("with a retry policy:", call(channel, b"again"))
        with grpcpy.insecure_channel(target) as channel:
            print("without one:", call(channel, b"hello"))
    finally:
        server.stop(None)


if __name__ == "__main__":
    main()
