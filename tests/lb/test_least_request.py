"""least_request: config, and picks driven through a ChannelPlane with a
fake clock (outstanding calls counted through the picks' done)."""
import collections
import json
import random

import pytest

from grpcpy._channel.lb.least_request import LeastRequestConfig
from grpcpy._channel.plane import READY, TRANSIENT_FAILURE, ChannelPlane
from grpcpy._channel.target import Address

OK = 0


def addr(i):
    return Address("inet", "10.0.0.%d" % i, 50051)


def lr_plane(n, choices=2, seed=3):
    target = "ipv4:" + ",".join("10.0.0.%d:50051" % i for i in range(1, n + 1))
    config = {"loadBalancingConfig": [{"least_request": {"choiceCount": choices}}]}
    p = ChannelPlane(target, [("grpc.service_config", json.dumps(config))], random=lambda: 0.5)
    policy = p._policy
    assert policy.name == "least_request" and policy.config.choice_count == choices
    p.request_connection(0.0)
    for _, sub_id, _, _ in [a for a in p.take_actions() if a[0] == "connect"]:
        p.connect_succeeded(0.1, sub_id)
    assert p.state == READY
    p._random = random.Random(seed).random
    return p, policy


def test_config():
    assert LeastRequestConfig.parse({}).choice_count == 2
    assert LeastRequestConfig.parse({"choiceCount": 7}).choice_count == 7
    assert LeastRequestConfig.parse({"choiceCount": 50}).choice_count == 10      # capped, as gRPC
    for raw in ({"choiceCount": 1}, {"choiceCount": "3"}, {"choiceCount": True}, []):
        with pytest.raises(ValueError):
            LeastRequestConfig.parse(raw)


def test_picks_count_outstanding_calls_and_done_counts_down():
    p, policy = lr_plane(3)
    picks = [p.pick() for _ in range(30)]
    assert all(type(pk) is tuple for pk in picks)
    subs = {s.sub_id: s for s in policy.subchannels}
    total = sum(policy.outstanding(s) for s in subs.values())
    assert total == 30
    # with two choices the load stays even: no backend far above the others
    loads = [policy.outstanding(s) for s in subs.values()]
    assert max(loads) - min(loads) <= 6
    for _, done in picks:
        done(1.0, OK, ())
    assert all(policy.outstanding(s) == 0 for s in subs.values())
    # a pick the driver did not use is reported with code None: counted down as well
    sub_id, done = p.pick()
    done(1.0, None, None)
    assert policy.outstanding(subs[sub_id]) == 0


def test_new_calls_avoid_the_backend_holding_slow_calls():
    p, policy = lr_plane(3, choices=3)
    slow = policy.subchannels[0]
    held = []
    while policy.outstanding(slow) < 10:       # calls that stay open on the slow backend
        sub_id, done = p.pick()
        if sub_id == slow.sub_id:
            held.append(done)
        else:
            done(1.0, OK, ())                  # the others answer at once
    fresh = collections.Counter()
    for _ in range(300):
        sub_id, done = p.pick()
        fresh[sub_id] += 1
        done(2.0, OK, ())
    # a draw of three misses the slow backend only when all three land on it
    assert fresh[slow.sub_id] < 300 * 0.05
    for done in held:
        done(3.0, OK, ())
    spread = collections.Counter(p.pick()[0] for _ in range(300))
    assert spread[slow.sub_id] > 40            # back in the rotation once its calls end


def test_only_ready_subchannels_are_picked_and_failure_is_reported():
    p, policy = lr_plane(2)
    a, b = policy.subchannels
    p.connection_lost(1.0, a.sub_id)
    reconnect = [x for x in p.take_actions() if x[0] == "connect"]
    assert {p.pick()[0] for _ in range(20)} == {b.sub_id}
    p.connect_failed(1.1, reconnect[0][1], "refused")
    p.connection_lost(1.2, b.sub_id)
    [(_, again, _, _)] = [x for x in p.take_actions() if x[0] == "connect"]
    p.connect_failed(1.3, again, "refused")
    assert p.state == TRANSIENT_FAILURE and p.pick() is None


def test_weights_draw_in_proportion_and_load_per_weight():
    p, policy = lr_plane(2)
    policy.update_addresses(1.0, [addr(1).with_attributes(weight=3), addr(2)])
    heavy, light = policy.subchannels
    counts = collections.Counter()
    for _ in range(400):
        sub_id, done = p.pick()
        counts[sub_id] += 1
        done(1.0, OK, ())
    assert 0.65 < counts[heavy.sub_id] / 400 < 0.85
    # outstanding calls per unit of weight: holding calls, the heavy one takes about 3 of 4
    for _ in range(400):
        p.pick()
    assert 2.0 < policy.outstanding(heavy) / policy.outstanding(light) < 4.5


def test_a_leaving_backend_takes_its_counter_along():
    p, policy = lr_plane(2)
    a, b = policy.subchannels
    picks = [p.pick() for _ in range(10)]
    policy.update_addresses(1.0, [addr(2)])
    for _, done in picks:
        done(2.0, OK, ())                   # late reports of the gone one are harmless
    assert policy.outstanding(b) == 0
    policy.update_addresses(2.0, [addr(1), addr(2)])
    assert policy.outstanding(policy.subchannels[0]) == 0


# ---------------------------------------------------------------- real backends

import asyncio  # noqa: E402
import concurrent.futures  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import grpc  # noqa: E402

import grpcpy  # noqa: E402
import grpcpy.aio  # noqa: E402

ECHO = "/t.S/Echo"


class Backend:
    """A server that names itself in a trailer; the slow one holds every
    b"hold" call until released."""

    def __init__(self, name, host, kind, slow=False):
        self.name = name
        self.slow = slow
        self.held = 0
        self.release = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(16)
        lib = grpc if kind == "grpcio" else grpcpy
        self.server = lib.server(self.pool)
        self.server.add_generic_rpc_handlers((lib.method_handlers_generic_handler(
            "t.S", {"Echo": lib.unary_unary_rpc_method_handler(self.handle)}),))
        self.port = self.server.add_insecure_port("%s:0" % host)
        self.host = host
        self.server.start()

    def handle(self, request, context):
        if self.slow and request == b"hold":
            self.held += 1
            self.release.wait(20)
        context.set_trailing_metadata((("served-by", self.name),))
        return request

    def stop(self):
        self.release.set()
        self.server.stop(None)
        self.pool.shutdown(wait=False)


def _poll(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        time.sleep(0.005)
    return predicate()


@pytest.mark.parametrize("facade", ["sync", "aio"])
def test_backends_new_calls_go_away_from_a_backend_holding_slow_calls(facade):
    backends = [Backend("slow", "127.0.0.1", "grpcio", slow=True), Backend("b2", "127.0.0.2", "grpcpy"),
                Backend("b3", "127.0.0.3", "grpcio")]
    slow = backends[0]
    target = "ipv4:" + ",".join("%s:%d" % (b.host, b.port) for b in backends)
    # three choices of three backends: a new call reaches the busy one only
    # when all three draws land on it (1 in 27)
    options = [("grpc.service_config", json.dumps({"loadBalancingConfig": [
        {"least_request": {"choiceCount": 3}}]}))]
    loop = thread = None
    if facade == "sync":
        channel = grpcpy.insecure_channel(target, options)
        echo = channel.unary_unary(ECHO)

        def start(request):
            return echo.future(request, timeout=20, wait_for_ready=True)

        def served_by(request):
            _, call = echo.with_call(request, timeout=20, wait_for_ready=True)
            return dict(call.trailing_metadata())["served-by"]
    else:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

        async def make():
            return grpcpy.aio.insecure_channel(target, options)
        channel = asyncio.run_coroutine_threadsafe(make(), loop).result(10)
        echo = channel.unary_unary(ECHO)

        async def one(request):
            call = echo(request, timeout=20, wait_for_ready=True)
            await call
            return dict(await call.trailing_metadata())["served-by"]

        def start(request):
            return asyncio.run_coroutine_threadsafe(one(request), loop)

        def served_by(request):
            return start(request).result(20)
    try:
        # calls that the slow backend holds: until it holds three
        held = []
        while slow.held < 3 and len(held) < 300:
            held.append(start(b"hold"))
            _poll(lambda: slow.held + sum(f.done() for f in held) >= len(held))
        assert slow.held == 3
        served = collections.Counter(served_by(b"hi") for _ in range(60))
        assert served["slow"] <= 10 and served["b2"] > 15 and served["b3"] > 15
        # released, the slow backend's calls end and it is back in the spread
        slow.release.set()
        for f in held:
            f.result(20)
        served = collections.Counter(served_by(b"hi") for _ in range(60))
        assert served["slow"] > 8
    finally:
        if facade == "sync":
            channel.close()
        else:
            asyncio.run_coroutine_threadsafe(channel.close(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()
        for backend in backends:
            backend.stop()
