"""The traffic of the metrics tests, for grpcio and grpcpy alike.

It imports neither grpcio nor grpcpy: the caller hands in the module (grpc,
grpcpy, grpc.aio or grpcpy.aio), so the same service and traffic run on
every implementation, and grpcio_reference.py runs them in an interpreter
that has grpcio-observability (and no grpcpy).

Service "metrics.Test", registered with add_registered_method_handlers (a
registered method, reported by name):
    Unary   echo; the request b"nf" is answered NOT_FOUND
    Stream  server streaming: the request is a comma list of sizes, one
            response message of each size
    Flaky   echo, but the first attempt of each call (told apart by
            metadata x-key) fails UNAVAILABLE
"metrics.Generic/Echo" is served by a generic handler (add_generic_rpc_handlers):
not a registered method, so the server reports it as "other" (as grpcio
does); the client's stub says it is known, so the client reports its name.
"Missing" is called and served by nobody (UNIMPLEMENTED, reported "other").

TRAFFIC lists the calls and what each attempt sends and gets, from which
the tests work out every figure they expect.
"""
import collections
import json
import threading

SERVICE = "metrics.Test"
UNARY, STREAM, FLAKY, MISSING = ("%s/%s" % (SERVICE, name) for name in ("Unary", "Stream", "Flaky", "Missing"))
GENERIC = "metrics.Generic/Echo"

SERVICE_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": SERVICE, "method": "Flaky"}],
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
                    "backoffMultiplier": 1.0, "retryableStatusCodes": ["UNAVAILABLE"]}}]})

N_OK, M_NOT_FOUND = 3, 2
PAYLOAD = b"x" * 100
SIZES = (10, 2000, 5000)
STREAM_REQUEST = ",".join(map(str, SIZES)).encode()

# gRFC A66 (grpc/proposal A66-otel-stats.md, "Metrics Schema"): "Buckets for
# histograms in default views should be as follows"
A66_LATENCY = [0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006,
               0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13, 0.16, 0.2,
               0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1, 2, 5, 10, 20, 50, 100]
A66_SIZE = [0, 1024, 2048, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864, 268435456,
            1073741824, 4294967296]
# gRFC A96 (A96-retry-otel-stats.md): "Recommended histogram bucket
# boundaries are [1,2,3,4,5]" (retries, hedges), "[1,2,3,4,5,10]"
# (transparent retries); retry_delay uses A66's latency buckets.
A96_RETRIES = [1, 2, 3, 4, 5]
A96_TRANSPARENT = [1, 2, 3, 4, 5, 10]

# Attempt = one attempt's outcome: (method, status name, bytes sent, bytes received)
Attempt = collections.namedtuple("Attempt", "method status sent received")


def traffic():
    """The calls (each a list of its attempts, client's view) in order."""
    calls = [[Attempt(UNARY, "OK", len(PAYLOAD), len(PAYLOAD))] for _ in range(N_OK)]
    calls += [[Attempt(UNARY, "NOT_FOUND", 2, 0)] for _ in range(M_NOT_FOUND)]
    calls.append([Attempt(STREAM, "OK", len(STREAM_REQUEST), sum(SIZES))])
    calls.append([Attempt(FLAKY, "UNAVAILABLE", 1, 0), Attempt(FLAKY, "OK", 1, 1)])
    calls.append([Attempt(GENERIC, "OK", 1, 1)])
    calls.append([Attempt(MISSING, "UNIMPLEMENTED", 0, 0)])
    return calls


class Service:
    """The handlers; one instance per server (Flaky's attempt counts)."""

    def __init__(self, grpc):
        self._grpc = grpc
        self._lock = threading.Lock()
        self._seen = collections.Counter()

    def unary(self, request, context):
        if request == b"nf":
            context.abort(self._grpc.StatusCode.NOT_FOUND, "not here")
        return request

    def stream(self, request, context):
        for size in request.decode().split(","):
            yield b"s" * int(size)

    def flaky(self, request, context):
        key = dict(context.invocation_metadata()).get("x-key")
        with self._lock:
            self._seen[key] += 1
            first = self._seen[key] == 1
        if first:
            context.abort(self._grpc.StatusCode.UNAVAILABLE, "try again")
        return request

    def add_to(self, server):
        grpc = self._grpc
        server.add_registered_method_handlers(SERVICE, {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "Stream": grpc.unary_stream_rpc_method_handler(self.stream),
            "Flaky": grpc.unary_unary_rpc_method_handler(self.flaky),
        })
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            GENERIC.split("/")[0], {"Echo": grpc.unary_unary_rpc_method_handler(self.echo)}),))

    def echo(self, request, context):
        return request


class AioService(Service):
    """The same handlers as coroutines, for grpc.aio / grpcpy.aio servers."""

    async def echo(self, request, context):
        return request

    async def unary(self, request, context):
        if request == b"nf":
            await context.abort(self._grpc.StatusCode.NOT_FOUND, "not here")
        return request

    async def stream(self, request, context):
        for size in request.decode().split(","):
            yield b"s" * int(size)

    async def flaky(self, request, context):
        key = dict(context.invocation_metadata()).get("x-key")
        with self._lock:
            self._seen[key] += 1
            first = self._seen[key] == 1
        if first:
            await context.abort(self._grpc.StatusCode.UNAVAILABLE, "try again")
        return request


def channel_options():
    return [("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 1)]


def _expect_error(rpc_error, code, call):
    try:
        call()
    except rpc_error as error:
        assert error.code() == code, error
    else:
        raise AssertionError("the call did not fail")


def run_sync(grpc, channel, key="k"):
    """TRAFFIC on a sync channel (grpc or grpcpy); `key` tells this run's
    Flaky call apart on a server shared by several runs."""
    unary = channel.unary_unary("/" + UNARY, _registered_method=True)
    for _ in range(N_OK):
        assert unary(PAYLOAD, timeout=30) == PAYLOAD
    for _ in range(M_NOT_FOUND):
        _expect_error(grpc.RpcError, grpc.StatusCode.NOT_FOUND, lambda: unary(b"nf", timeout=30))
    got = list(channel.unary_stream("/" + STREAM, _registered_method=True)(STREAM_REQUEST, timeout=30))
    assert [len(message) for message in got] == list(SIZES)
    flaky = channel.unary_unary("/" + FLAKY, _registered_method=True)
    assert flaky(b"r", timeout=30, metadata=(("x-key", key),)) == b"r"
    assert channel.unary_unary("/" + GENERIC, _registered_method=True)(b"g", timeout=30) == b"g"
    _expect_error(grpc.RpcError, grpc.StatusCode.UNIMPLEMENTED,
                  lambda: channel.unary_unary("/" + MISSING)(b"", timeout=30))


async def run_aio(aio, status_code, channel, key="k"):
    """TRAFFIC on an asyncio channel (grpc.aio or grpcpy.aio)."""
    unary = channel.unary_unary("/" + UNARY, _registered_method=True)
    for _ in range(N_OK):
        assert await unary(PAYLOAD, timeout=30) == PAYLOAD
    for _ in range(M_NOT_FOUND):
        try:
            await unary(b"nf", timeout=30)
        except aio.AioRpcError as error:
            assert error.code() == status_code.NOT_FOUND
        else:
            raise AssertionError("the call did not fail")
    got = [message async for message in
           channel.unary_stream("/" + STREAM, _registered_method=True)(STREAM_REQUEST, timeout=30)]
    assert [len(message) for message in got] == list(SIZES)
    flaky = channel.unary_unary("/" + FLAKY, _registered_method=True)
    assert await flaky(b"r", timeout=30, metadata=(("x-key", key),)) == b"r"
    assert await channel.unary_unary("/" + GENERIC, _registered_method=True)(b"g", timeout=30) == b"g"
    try:
        await channel.unary_unary("/" + MISSING)(b"", timeout=30)
    except aio.AioRpcError as error:
        assert error.code() == status_code.UNIMPLEMENTED
    else:
        raise AssertionError("the call did not fail")


def points(reader):
    """The reader's data points as plain dicts (what the tests compare):
    name, unit, attributes, and value (counters) or count, sum, bounds and
    bucket counts (histograms)."""
    out = []
    data = reader.get_metrics_data()
    for resource in (data.resource_metrics if data else ()):
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    item = {"scope": scope.scope.name, "name": metric.name, "unit": metric.unit,
                            "attributes": dict(point.attributes)}
                    if hasattr(point, "bucket_counts"):
                        item.update(count=point.count, sum=point.sum, bounds=list(point.explicit_bounds),
                                    buckets=list(point.bucket_counts))
                    else:
                        item["value"] = point.value
                    out.append(item)
    return out
