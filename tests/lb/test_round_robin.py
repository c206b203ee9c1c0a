"""round_robin over three real backends on 127.0.0.1-3 (grpcio and grpcpy
servers side by side), under both client facades: calls spread evenly, and
a backend stopped while calls run loses no more calls than were in flight
on it (none with a retry policy)."""
import collections
import concurrent.futures
import json
import time

import grpc
import pytest

import grpcpy

from .clients import WORKERS, AioClient, SyncClient

# (grpcio's sync server ends a call it is running when stopped with
# CANCELLED: for this idempotent method, retried like UNAVAILABLE)
RETRY_UNAVAILABLE = json.dumps({"methodConfig": [{
    "name": [{"service": "rr.Backend"}],
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"]}}]})


def _backend(kind, host, name):
    """A server answering Who with its name."""
    mod = grpc if kind == "grpcio" else grpcpy
    pool = concurrent.futures.ThreadPoolExecutor(WORKERS + 2)
    srv = mod.server(pool)
    srv.add_generic_rpc_handlers((mod.method_handlers_generic_handler("rr.Backend", {
        "Who": mod.unary_unary_rpc_method_handler(lambda request, context: (time.sleep(0.002), name)[1])}),))
    port = srv.add_insecure_port("%s:0" % host)
    srv.start()
    srv.pool, srv.port, srv.address = pool, port, "%s:%d" % (host, port)
    return srv


@pytest.fixture
def backends():
    servers = [_backend("grpcio", "127.0.0.1", b"a"), _backend("grpcpy", "127.0.0.2", b"b"),
               _backend("grpcio", "127.0.0.3", b"c")]
    yield servers
    for srv in servers:
        srv.stop(None).wait(5)
        srv.pool.shutdown(wait=False)


def _options(retries):
    options = [("grpc.lb_policy_name", "round_robin")]
    if retries:
        options.append(("grpc.service_config", RETRY_UNAVAILABLE))
    return options


def _target(servers):
    return "ipv4:" + ",".join(s.address for s in servers)


@pytest.fixture(params=["grpcpy", "grpcpy.aio"])
def client_cls(request):
    return SyncClient if request.param == "grpcpy" else AioClient


def _all_ready(client, names):
    """Calls until every backend has answered one (round_robin connects to
    all of them; picks go to the READY ones)."""
    seen = set()
    for _ in range(200):
        seen.add(client.call())
        if seen >= names:
            return
    raise AssertionError("not every backend answered: %s" % seen)


def test_calls_spread_evenly_over_three_backends(backends, client_cls):
    client = client_cls(_target(backends), _options(False))
    try:
        _all_ready(client, {b"a", b"b", b"c"})
        counts = collections.Counter(client.run(300))
    finally:
        client.close()
    assert set(counts) == {b"a", b"b", b"c"}, counts
    assert all(90 <= n <= 110 for n in counts.values()), counts


@pytest.mark.parametrize("retries", [False, True], ids=["plain", "retry-policy"])
def test_a_backend_stopped_mid_run_loses_at_most_its_calls_in_flight(backends, client_cls, retries):
    """Fail-fast calls; the stopped backend is the grpcpy server without a
    retry policy, a grpcio one with."""
    client = client_cls(_target(backends), _options(retries))
    victim = 0 if retries else 1
    names = [b"a", b"b", b"c"]
    others = [n for i, n in enumerate(names) if i != victim]

    def before_each(i):
        if i == 100:
            backends[victim].stop(None).wait(5)

    try:
        _all_ready(client, set(names))
        results = client.run(400, before_each)
    finally:
        client.close()
    counts = collections.Counter(results)
    failures = {k: n for k, n in counts.items() if k not in names}
    lost = sum(failures.values())
    # the calls in flight when it stopped: at most one per worker (the stop
    # runs between two calls of one worker, so at most WORKERS - 1), and
    # none with a policy that retries them
    assert lost <= (0 if retries else WORKERS - 1), counts
    assert set(failures) <= {"UNAVAILABLE", "CANCELLED"}, counts
    # after the stop the other two share the load; the stopped one had its
    # share of the first hundred and no more
    assert counts[names[victim]] <= 40, counts
    assert all(counts[n] > 150 for n in others), counts
    assert sum(counts[n] for n in names) == 400 - lost
