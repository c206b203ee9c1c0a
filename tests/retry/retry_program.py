"""A client program written for grpcio, run unchanged on grpcio and, under
`python -m grpcpy.run`, on grpcpy (tests/retry/test_same_program.py).

    python retry_program.py HOST:PORT KEY-PREFIX

It makes a few calls to the flaky service of tests/retry/service.py under a
retry policy and prints, as JSON, each call's final status, response and the
attempt that answered (the server's x-attempt trailer)."""
import json
import sys

import grpc

POLICY = {
    "methodConfig": [{
        "name": [{"service": "retry.Flaky"}],
        "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "0.2s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
    }],
}

CALLS = [
    # name, channel options beyond the policy, method, script, request(s)
    ("fails twice", {}, "Unary", "fail=2", b"a"),
    ("always fails", {}, "Unary", "fail=all", b"b"),
    ("not retryable", {}, "Unary", "fail=1,code=INTERNAL", b"c"),
    ("headers sent", {}, "Unary", "fail=1,headers=1", b"d"),
    ("stream replayed", {}, "Collect", "fail=1", [b"e1", b"e2", b"e3"]),
    ("retries off", {"grpc.enable_retries": 0}, "Unary", "fail=1", b"f"),
]


def main(target, prefix):
    report = {}
    for name, extra, method, script, request in CALLS:
        options = [("grpc.service_config", json.dumps(POLICY))] + list(extra.items())
        with grpc.insecure_channel(target, options=options) as channel:
            metadata = (("x-key", prefix + name), ("x-script", script))
            if method == "Collect":
                call = channel.stream_unary("/retry.Flaky/Collect").with_call
                request = iter(request)
            else:
                call = channel.unary_unary("/retry.Flaky/Unary").with_call
            try:
                response, state = call(request, metadata=metadata, timeout=10)
            except grpc.RpcError as failed:
                response, state = None, failed
            trailing = dict(state.trailing_metadata() or ())
            report[name] = {"code": state.code().name,
                            "response": None if response is None else response.decode(),
                            "answered by attempt": trailing.get("x-attempt")}
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
