"""ring_hash: the ring, its config, and the policy driven through a
ChannelPlane with a fake clock (no sockets)."""
import collections
import json
import random

import pytest

from grpcpy._channel.lb.ring_hash import RingHash, RingHashConfig, build_ring, endpoint_key, xxh64
from grpcpy._channel.plane import CONNECTING, IDLE, READY, TRANSIENT_FAILURE, ChannelPlane
from grpcpy._channel.target import Address

NO_JITTER = lambda: 0.5  # noqa: E731

Info = collections.namedtuple("Info", "method metadata")


def addr(i):
    return Address("inet", "10.0.0.%d" % i, 50051)


def info(key, header="session"):
    return Info("/pkg.Svc/M", ((header, key),) if key is not None else None)


# ---------------------------------------------------------------- hashing and the ring

def test_xxh64_is_the_reference_function():
    # XXH64 with seed 0: published values
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64("a") == xxh64(b"a") == 0xD24EC4F1A98C6E5B


def test_endpoint_key_is_host_port_as_grpc_hashes_it():
    assert endpoint_key(Address("inet", "10.0.0.1", 80)) == "10.0.0.1:80"
    assert endpoint_key(Address("inet6", "::1", 80)) == "[::1]:80"
    assert endpoint_key(Address("unix", path="/tmp/s")) == "unix:/tmp/s"


def test_ring_size_and_shares_follow_the_weights():
    hashes, items = build_ring([("a", 1, "A"), ("b", 1, "B"), ("c", 1, "C")], 1024, 4096)
    assert len(hashes) == 1026      # each of three gets ceil(1024 / 3) points
    assert collections.Counter(items) == {"A": 342, "B": 342, "C": 342}
    assert hashes == sorted(hashes)
    # weights 3:3:4 on a small ring: exactly those numbers of points
    _, items = build_ring([("a", 3, "A"), ("b", 3, "B"), ("c", 4, "C")], 10, 100)
    assert collections.Counter(items) == {"A": 3, "B": 3, "C": 4}
    # the ring never grows past the maximum
    hashes, _ = build_ring([("a", 1, "A"), ("b", 1000, "B")], 1024, 2000)
    assert len(hashes) == 2000


def test_points_of_an_endpoint_do_not_depend_on_the_others():
    h1, i1 = build_ring([("a", 1, "A"), ("b", 1, "B")], 8, 8)
    h2, i2 = build_ring([("a", 1, "A"), ("b", 1, "B"), ("c", 1, "C"), ("d", 1, "D")], 16, 16)
    assert {h for h, i in zip(h1, i1) if i == "A"} == {h for h, i in zip(h2, i2) if i == "A"}
    assert {h for h, i in zip(h1, i1) if i == "A"} == {xxh64("a_%d" % n) for n in range(4)}


def test_config_parsing():
    assert RingHashConfig.parse({}) == RingHashConfig(1024, 4096, None)
    assert RingHashConfig.parse(None) == RingHashConfig()
    c = RingHashConfig.parse({"minRingSize": 10, "maxRingSize": "20", "requestHashHeader": "X-User"})
    assert (c.min_ring_size, c.max_ring_size, c.request_hash_header) == (10, 20, "x-user")
    assert RingHashConfig.parse({"maxRingSize": 8 * 1024 * 1024}).max_ring_size == 8 * 1024 * 1024
    for raw, words in [({"minRingSize": 5000}, "larger than maxRingSize"),
                       ({"maxRingSize": 8 * 1024 * 1024 + 1}, "larger than"),
                       ({"minRingSize": -1}, "positive"),
                       ({"minRingSize": 1.5}, "positive"),
                       ({"requestHashHeader": "x-key-bin"}, "binary"),
                       ({"requestHashHeader": "bad header"}, "not a valid header"),
                       ({"requestHashHeader": ":path"}, "not a valid header"),
                       ({"requestHashHeader": 5}, "string"),
                       ([], "object")]:
        with pytest.raises(ValueError, match=words):
            RingHashConfig.parse(raw)


# ---------------------------------------------------------------- the policy in a plane

def ring_plane(n, header="session", min_ring=1024):
    target = "ipv4:" + ",".join("10.0.0.%d:50051" % i for i in range(1, n + 1))
    config = {"loadBalancingConfig": [{"ring_hash": {"requestHashHeader": header, "minRingSize": min_ring}}]}
    p = ChannelPlane(target, [("grpc.service_config", json.dumps(config))], random=NO_JITTER)
    policy = p._policy
    assert policy.name == "ring_hash" and policy.config.request_hash_header == header
    return p, policy


def connects(p):
    return [a for a in p.take_actions() if a[0] == "connect"]


def all_ready(p, policy, now=0.0):
    """Connect every subchannel (as picks for every key would)."""
    p.request_connection(now)
    for sub in policy.subchannels:
        if sub.state == IDLE:
            p.connect(sub, now)
    for _, sub_id, _, _ in connects(p):
        p.connect_succeeded(now, sub_id)
    assert all(s.state == READY for s in policy.subchannels)
    return {s.sub_id: s.address for s in policy.subchannels}


def test_lazy_connection_and_keys_that_want_other_backends():
    p, policy = ring_plane(3)
    assert connects(p) == [] and p.state == IDLE        # nothing before a call
    p.request_connection(0.0)
    [(_, first, first_addr, _)] = connects(p)          # one connection, not three
    assert p.state == CONNECTING
    p.connect_succeeded(0.1, first)
    assert p.state == READY
    keys = ["user-%d" % k for k in range(200)]
    got = {k: policy.pick(info(k)) for k in keys}
    mine = {k for k in keys if got[k] == first}
    assert mine and set(got.values()) == {first, None}
    # the other keys' backends are wanted: the next input that brings the
    # time (a waiting call's exit_idle) connects each of them once
    p.request_connection(0.2)
    attempts = connects(p)
    assert sorted(str(a[2]) for a in attempts) == sorted(str(s.address) for s in policy.subchannels
                                                         if s.address != first_addr)
    assert all(policy.pick(info(k)) is None for k in keys if k not in mine)  # CONNECTING: they wait
    p.request_connection(0.25)
    assert connects(p) == []                            # no second attempt
    for _, sub_id, _, _ in attempts:
        p.connect_succeeded(0.3, sub_id)
    again = {k: policy.pick(info(k)) for k in keys}
    assert {again[k] for k in mine} == {first}
    assert {again[k] for k in keys if k not in mine} == {a[1] for a in attempts}


def test_keys_stay_and_a_leaving_backend_moves_only_its_own_keys():
    p, policy = ring_plane(4)
    ids = all_ready(p, policy)
    keys = ["key-%d" % k for k in range(2000)]
    before = {k: ids[policy.pick(info(k))] for k in keys}
    assert before == {k: ids[policy.pick(info(k))] for k in keys}      # stable
    spread = collections.Counter(before.values())
    assert len(spread) == 4 and min(spread.values()) > 2000 / 4 * 0.6
    # 10.0.0.3 leaves (a resolver update): its keys move, no other key does
    gone = addr(3)
    policy.update_addresses(1.0, [addr(1), addr(2), addr(4)])
    assert [a for a in p.take_actions() if a[0] == "close"]             # its connection closes
    ids = {s.sub_id: s.address for s in policy.subchannels}
    after = {k: ids[policy.pick(info(k))] for k in keys}
    moved = {k for k in keys if after[k] != before[k]}
    assert moved >= {k for k in keys if before[k] == gone}
    # the others stay, but for the few the remaining backends' extra points
    # take (the ring keeps its size, so each gets more points, as in gRPC)
    assert len(moved - {k for k in keys if before[k] == gone}) / len(keys) < 0.15
    assert len(moved) / len(keys) < 0.25 + 0.15
    # and it comes back: its keys return to it
    policy.update_addresses(2.0, [addr(1), addr(2), addr(3), addr(4)])
    for _, sub_id, _, _ in connects(p):
        pass
    back = policy.subchannels[2]
    assert back.state == IDLE
    theirs = [k for k in keys if before[k] == gone]
    assert policy.pick(info(theirs[0])) is None         # wanted
    p.request_connection(2.1)
    [(_, sub_id, address, _)] = connects(p)
    assert address == gone
    p.connect_succeeded(2.2, sub_id)
    ids[sub_id] = gone
    assert {k: ids[policy.pick(info(k))] for k in keys} == before     # the same ring again


def test_a_failed_backend_is_skipped_and_retried():
    p, policy = ring_plane(3)
    all_ready(p, policy)
    keys = ["k%d" % i for i in range(300)]
    home = {k: policy.pick(info(k)) for k in keys}
    victim = policy.subchannels[0]
    victim_id = victim.sub_id
    p.connection_lost(1.0, victim_id)                  # READY lost: IDLE, not failed
    assert victim.state == IDLE and p.state == READY
    assert connects(p) == []                           # lazy: no reconnect until a call wants it
    mine = [k for k in keys if home[k] == victim_id]
    assert policy.pick(info(mine[0])) is None
    p.request_connection(1.1)
    [(_, attempt, _, _)] = connects(p)
    p.connect_failed(1.2, attempt, "refused")
    assert victim.state == TRANSIENT_FAILURE
    # its keys go to the next backend on the ring meanwhile, the others stay
    for k in keys:
        got = policy.pick(info(k))
        assert got != victim_id and got is not None
        if home[k] != victim_id:
            assert got == home[k]
    # after its backoff it is retried by itself; it still counts as failed while connecting
    p.timer(2.2)
    [(_, retry, address, _)] = connects(p)
    assert address == victim.address
    assert all(policy.pick(info(k)) not in (None, victim_id) for k in mine)
    p.connect_succeeded(2.3, retry)
    assert {policy.pick(info(k)) for k in mine} == {retry}


def test_aggregate_state_rules():
    p, policy = ring_plane(3)
    p.request_connection(0.0)
    [(_, a, _, _)] = connects(p)
    p.connect_failed(0.1, a, "refused")
    # one failed of three: CONNECTING, and the policy moves on by itself (A42)
    assert p.state == CONNECTING
    [(_, b, _, _)] = connects(p)
    p.connect_failed(0.2, b, "no route")
    # two failed: TRANSIENT_FAILURE, naming both addresses and why
    assert p.state == TRANSIENT_FAILURE
    assert "refused" in p.last_error and "no route" in p.last_error
    assert p.last_error.count("ipv4:10.0.0.") == 2
    [(_, c, _, _)] = connects(p)                     # still trying the third
    p.connect_succeeded(0.3, c)
    assert p.state == READY
    # every pick goes to the one READY backend
    assert {policy.pick(info("k%d" % i)) for i in range(50)} == {c}


def test_single_backend_failure_is_transient_failure():
    p, policy = ring_plane(1)
    p.request_connection(0.0)
    [(_, a, _, _)] = connects(p)
    p.connect_failed(0.1, a, "refused")
    assert p.state == TRANSIENT_FAILURE


def test_calls_without_the_header_get_any_ready_backend():
    p, policy = ring_plane(3)
    ids = all_ready(p, policy)
    p._random = random.Random(7).random       # the channel's randomness, for the random hashes
    picks = collections.Counter(policy.pick(info(None)) for _ in range(300))
    assert set(picks) == set(ids) and min(picks.values()) > 50
    # a header other than the configured one is no key either
    assert len({policy.pick(info("same", header="other")) for _ in range(60)}) > 1
    # the configured one is
    assert len({policy.pick(info("same")) for _ in range(60)}) == 1


def test_random_pick_with_nothing_ready_wants_one_connection():
    p, policy = ring_plane(3)
    p._random = random.Random(7).random
    policy.idle = False
    assert policy.pick(info(None)) is None
    assert policy.pick(info(None)) is None
    policy.timer(0.5)
    assert len(connects(p)) == 1


def test_enter_idle_drops_everything_and_the_next_call_reconnects_lazily():
    p, policy = ring_plane(3)
    all_ready(p, policy)
    p.enter_idle(5.0)
    assert len([a for a in p.take_actions() if a[0] == "close"]) == 3
    assert p.state == IDLE
    p.request_connection(6.0)
    assert len(connects(p)) == 1


def test_multiple_header_values_are_joined():
    p, policy = ring_plane(4)
    all_ready(p, policy)
    joined = policy.pick(Info("/m", (("session", "a,b"),)))
    assert policy.pick(Info("/m", (("session", "a"), ("x", "y"), ("session", "b")))) == joined


def test_weights_and_hash_keys_from_address_attributes():
    p, policy = ring_plane(3)
    policy.update_addresses(0.0, [addr(1).with_attributes(weight=3), addr(2), addr(3)])
    shares = collections.Counter(sub.address for sub in policy._ring)
    assert shares[addr(1)] == 3 * shares[addr(2)] == 3 * shares[addr(3)]
    ids = all_ready(p, policy)
    owners = collections.Counter(ids[policy.pick(info("k%d" % i))] for i in range(3000))
    assert 0.5 < owners[addr(1)] / 3000 < 0.7
    # a hash_key puts the address where that key hashes, whatever its IP:
    # a backend that comes back under a new address keeps its keys (A76)
    named = [addr(i).with_attributes(hash_key="node-%d" % i) for i in (1, 2, 3)]
    policy.update_addresses(1.0, named)
    ids = all_ready(p, policy, 1.0)
    before = {k: ids[policy.pick(info(k))].attributes["hash_key"] for k in ("a", "b", "c", "d", "e", "f")}
    moved = [named[0], named[1], Address("inet", "10.0.0.9", 50051, attributes={"hash_key": "node-3"})]
    policy.update_addresses(2.0, moved)
    ids = all_ready(p, policy, 2.0)
    after = {k: ids[policy.pick(info(k))].attributes["hash_key"] for k in before}
    assert after == before


def test_new_weights_keep_the_connections():
    p, policy = ring_plane(2)
    all_ready(p, policy)
    p.take_actions()
    policy.update_addresses(1.0, [addr(1).with_attributes(weight=5), addr(2)])
    assert p.take_actions() == []                   # the same subchannels, connected
    assert policy.subchannels[0].address.attributes["weight"] == 5
    assert collections.Counter(s.address for s in policy._ring)[addr(1)] == 5 * collections.Counter(
        s.address for s in policy._ring)[addr(2)]


def test_a_bad_config_rejects_the_service_config_and_a_new_one_rebuilds_the_ring():
    from grpcpy._channel.service_config import ServiceConfigError, parse_service_config
    with pytest.raises(ServiceConfigError, match="loadBalancingConfig.*binary"):
        parse_service_config(json.dumps({"loadBalancingConfig": [{"ring_hash": {"requestHashHeader": "k-bin"}}]}))
    p, policy = ring_plane(2, min_ring=1024)
    assert len(policy._ring) == 1024
    policy.update_config(1.0, policy.parse_config({"minRingSize": 64, "maxRingSize": 64}))
    assert len(policy._ring) == 64 and policy.config.request_hash_header is None
    # the name gRPC registers it under works too
    config = {"loadBalancingConfig": [{"ring_hash_experimental": {}}]}
    q = ChannelPlane("ipv4:10.0.0.1:1", [("grpc.service_config", json.dumps(config))])
    assert isinstance(q._policy, type(policy))



def test_taking_over_from_round_robin_keeps_its_connections():
    config = {"loadBalancingConfig": [{"round_robin": {}}]}
    p = ChannelPlane("ipv4:10.0.0.1:50051,10.0.0.2:50051,10.0.0.3:50051",
                     [("grpc.service_config", json.dumps(config))], random=NO_JITTER)
    p.request_connection(0.0)
    (_, a, _, _), (_, b, _, _), (_, c, _, _) = connects(p)
    p.connect_succeeded(0.1, a)
    p.connect_succeeded(0.1, b)
    p.connect_failed(0.1, c, "refused")
    # a new service config names ring_hash: it takes over round_robin's subchannels
    rr = p._policy
    new = RingHash(p, RingHash.parse_config({"requestHashHeader": "session"}))
    p._policy = new
    new.take_over(1.0, rr.subchannels, active=True)
    rr.subchannels = []
    assert [x for x in p.take_actions() if x[0] == "close"] == []     # the connections live on
    assert len(new._down) == 1 and new.is_ready()
    assert {new.pick(info("k%d" % i)) for i in range(100)} == {a, b}  # the failed one skipped


# ---------------------------------------------------------------- real backends
#
# Four backends on 127.0.0.1-4 (grpcio servers and one grpcpy server) that
# name themselves in a trailer, behind a resolver the test feeds; addresses
# carry hash keys, so the ring is the same whatever ports the servers got.

import asyncio  # noqa: E402
import concurrent.futures  # noqa: E402
import itertools  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import grpc  # noqa: E402

import grpcpy  # noqa: E402
import grpcpy.aio  # noqa: E402
from grpcpy import resolver as public_resolver  # noqa: E402
from grpcpy._channel import resolver as resolver_registry  # noqa: E402

ECHO = "/t.S/Echo"


def _echo(name):
    def handler(request, context):
        context.set_trailing_metadata((("served-by", name),))
        return request
    return handler


def _start(name, host, kind):
    pool = concurrent.futures.ThreadPoolExecutor(4)
    lib = grpc if kind == "grpcio" else grpcpy
    server = lib.server(pool)
    server.add_generic_rpc_handlers((lib.method_handlers_generic_handler(
        "t.S", {"Echo": lib.unary_unary_rpc_method_handler(_echo(name))}),))
    server.port = server.add_insecure_port("%s:0" % host)
    server.start()
    server.pool = pool
    return server


@pytest.fixture(scope="module")
def backends():
    servers = [_start("b1", "127.0.0.1", "grpcio"), _start("b2", "127.0.0.2", "grpcpy"),
               _start("b3", "127.0.0.3", "grpcio"), _start("b4", "127.0.0.4", "grpcio")]
    yield servers
    for server in servers:
        server.stop(None)
        server.pool.shutdown(wait=False)


def _addresses(backends, which):
    return [public_resolver.Address.ip("127.0.0.%d" % i, backends[i - 1].port, hash_key="b%d" % i)
            for i in which]


_schemes = itertools.count()


@pytest.fixture
def fed(backends):
    """A scheme whose resolver the test feeds: (scheme, its listeners, the backends)."""
    scheme = "ringhash-test-%d" % next(_schemes)
    listeners = []

    class Fed(public_resolver.Resolver):
        def start(self, listener):
            listeners.append(listener)
            listener.update(_addresses(backends, (1, 2, 3, 4)))

    public_resolver.register_resolver(scheme, Fed)
    yield scheme, listeners, backends
    resolver_registry._FACTORIES.pop(scheme, None)


def _eventually(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


RING_CONFIG = json.dumps({"loadBalancingConfig": [{"ring_hash": {"requestHashHeader": "session"}}]})


class Client:
    """A channel of either facade and a blocking call that says who served it."""

    def __init__(self, facade, target):
        self.facade = facade
        options = [("grpc.service_config", RING_CONFIG)]
        if facade == "sync":
            self.channel = grpcpy.insecure_channel(target, options)
        else:
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
            self.thread.start()
            self.channel = self._run(self._make(target, options))
        self.echo = self.channel.unary_unary(ECHO)

    async def _make(self, target, options):
        return grpcpy.aio.insecure_channel(target, options)

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def served_by(self, key):
        metadata = (("session", key),) if key is not None else None
        if self.facade == "sync":
            _, call = self.echo.with_call(b"hi", timeout=10, metadata=metadata, wait_for_ready=True)
            return dict(call.trailing_metadata())["served-by"]

        async def one():
            call = self.echo(b"hi", timeout=10, metadata=metadata, wait_for_ready=True)
            await call
            return dict(await call.trailing_metadata())["served-by"]
        return self._run(one())

    def close(self):
        if self.facade == "sync":
            self.channel.close()
        else:
            self._run(self.channel.close())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@pytest.mark.parametrize("facade", ["sync", "aio"])
def test_backends_a_key_stays_on_one_backend_and_a_leaving_one_moves_few_keys(fed, facade):
    scheme, listeners, servers = fed
    client = Client(facade, "%s:///svc" % scheme)
    keys = ["user-%d" % i for i in range(60)]
    try:
        first = {k: client.served_by(k) for k in keys}
        assert len(set(first.values())) == 4            # the keys spread over every backend
        assert {k: client.served_by(k) for k in keys} == first      # and stay where they are
        # b3 leaves (the resolver says so): its keys move, the others stay, but
        # for the few the remaining backends' extra ring points take
        listener, = listeners
        listener.update(_addresses(servers, (1, 2, 4)))     # (applied on the channel's thread, soon)
        on_b3 = [k for k in keys if first[k] == "b3"]
        assert _eventually(lambda: client.served_by(on_b3[0]) != "b3")
        after = {k: client.served_by(k) for k in keys}
        assert "b3" not in after.values()
        stayed = [k for k in keys if first[k] != "b3"]
        moved = [k for k in stayed if after[k] != first[k]]
        assert len(moved) <= len(keys) * 0.15
        # it comes back: every key is where it was
        listener.update(_addresses(servers, (1, 2, 3, 4)))
        assert _eventually(lambda: client.served_by(on_b3[0]) == "b3")
        assert {k: client.served_by(k) for k in keys} == first
    finally:
        client.close()
