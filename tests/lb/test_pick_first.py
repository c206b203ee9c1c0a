"""pick_first and round_robin in the sans-IO plane, by a fake clock: Happy
Eyeballs (gRFC A61), shuffleAddressList and sticky TRANSIENT_FAILURE (A62),
errors naming every address, re-resolution."""
import json
import math

import pytest

from grpcpy._channel.lb.pick_first import PickFirst, interleave_families, shuffled
from grpcpy._channel.plane import CONNECTING, READY, TRANSIENT_FAILURE, ChannelPlane
from grpcpy._channel.resolver import Resolver, _FACTORIES
from grpcpy._channel.service_config import ServiceConfigError, parse_service_config
from grpcpy._channel.target import Address

V4 = [Address.ip("10.0.0.%d" % i, 50051) for i in (1, 2, 3, 4)]
V6 = [Address.ip("2001:db8::%d" % i, 50051) for i in (1, 2, 3)]


class Pushing(Resolver):
    def start(self, listener):
        pass


@pytest.fixture(autouse=True)
def push_scheme():
    _FACTORIES["test-pf"] = Pushing
    yield
    _FACTORIES.pop("test-pf", None)


def plane(addresses, lb=None, random=lambda: 0.5):
    """A plane on a pushing resolver given ``addresses``; ``lb`` a
    loadBalancingConfig entry."""
    options = {}
    if lb is not None:
        options["grpc.service_config"] = json.dumps({"loadBalancingConfig": [lb]})
    p = ChannelPlane("test-pf:///svc", options, random=random)
    p.request_connection(0.0)
    assert p.take_actions()[0][0] == "start_resolver"
    p.pushed(0.0, addresses)
    return p


def connects(p):
    return [(a[1], a[2]) for a in p.take_actions() if a[0] == "connect"]


def test_families_interleave_starting_with_the_first():
    v6a, v6b, v6c = V6
    v4a, v4b = V4[:2]
    assert interleave_families([v6a, v6b, v6c, v4a, v4b]) == [v6a, v4a, v6b, v4b, v6c]
    assert interleave_families([v4a, v4b, v6a]) == [v4a, v6a, v4b]
    assert interleave_families([v4a, v6a, v6b, v4b]) == [v4a, v6a, v4b, v6b]
    assert interleave_families([v4b, v4a]) == [v4b, v4a]


def test_attempts_are_staggered_and_the_first_to_connect_wins():
    p = plane([V6[0], V6[1], V4[0]])
    [(s1, a1)] = connects(p)
    assert a1 == V6[0] and p.next_timer() == 0.25
    p.timer(0.2)
    assert connects(p) == []
    p.timer(0.25)                          # the first is slow: the next family's address, too
    [(s2, a2)] = connects(p)
    assert a2 == V4[0] and p.next_timer() == 0.5
    p.timer(0.5)
    [(s3, a3)] = connects(p)
    assert a3 == V6[1]
    assert p.next_timer() == 20.0          # the last: no attempt delay, only the connect deadline
    p.connect_succeeded(0.6, s2)
    assert p.state == READY and p.pick(None) == s2
    assert sorted(a for a in p.take_actions()) == [("close", s1), ("close", s3)]
    assert p.next_timer() == math.inf
    p.connect_succeeded(0.7, s1)           # a loser that connects anyway is closed
    assert p.take_actions() == [("close", s1)] and p.pick(None) == s2


def test_a_failed_attempt_starts_the_next_at_once():
    p = plane(V4[:3])
    [(s1, _)] = connects(p)
    p.connect_failed(0.1, s1, "Connection refused")
    [(s2, a2)] = connects(p)
    assert a2 == V4[1] and p.next_timer() == pytest.approx(0.35)
    assert p.state == CONNECTING
    p.timer(0.35)
    [(s3, a3)] = connects(p)
    assert a3 == V4[2]
    p.connect_failed(0.4, s2, "No route to host")     # an earlier attempt: nothing new
    assert connects(p) == [] and p.state == CONNECTING
    p.connect_succeeded(0.5, s3)
    assert p.state == READY and p.pick(None) == s3


def test_after_the_first_pass_every_address_retries_on_its_own_backoff_and_tf_sticks():
    p = plane(V4[:2])
    [(s1, _)] = connects(p)
    p.connect_failed(0.1, s1, "Connection refused")
    [(s2, _)] = connects(p)
    p.connect_failed(0.2, s2, "connect timed out")
    assert p.state == TRANSIENT_FAILURE
    assert p.last_error == ("failed to connect to all addresses: ipv4:10.0.0.1:50051: Connection refused; "
                            "ipv4:10.0.0.2:50051: connect timed out")
    assert p.next_timer() == 1.0           # the first address's backoff
    p.timer(1.0)
    [(s3, a3)] = connects(p)
    assert a3 == V4[0]
    p.timer(1.1)                           # the second's backoff: it reconnects too, not in turn
    [(s4, a4)] = connects(p)
    assert a4 == V4[1]
    assert p.state == TRANSIENT_FAILURE    # sticky while both connect
    p.connect_failed(1.2, s3, "Connection refused")
    assert p.state == TRANSIENT_FAILURE
    p.connect_succeeded(1.3, s4)
    assert p.state == READY and p.pick(None) == s4 and p.last_error is None


def test_a_new_address_list_in_transient_failure_stays_there_until_a_connection():
    p = plane(V4[:1])
    [(s1, _)] = connects(p)
    p.connect_failed(0.1, s1, "Connection refused")
    assert p.state == TRANSIENT_FAILURE
    p.pushed(0.5, V4[1:3])
    [(s2, a2)] = connects(p)
    assert a2 == V4[1] and p.state == TRANSIENT_FAILURE
    p.connect_succeeded(0.6, s2)
    assert p.state == READY


def test_the_failure_message_is_bounded():
    many = [Address.ip("10.1.0.%d" % i, 1) for i in range(1, 21)]
    p = plane(many)
    for _ in many:
        [(sid, _)] = connects(p)
        p.connect_failed(0.0, sid, "Connection refused " + "x" * 200)
    assert p.state == TRANSIENT_FAILURE
    assert p.last_error.startswith("failed to connect to all addresses: ipv4:10.1.0.1:1: Connection refused")
    assert p.last_error.endswith("...; and 12 more")
    assert len(p.last_error) < 1100


def test_shuffle_address_list():
    assert PickFirst.parse_config({}) == {"shuffleAddressList": False}
    with pytest.raises(ServiceConfigError) as info:
        parse_service_config('{"loadBalancingConfig": [{"pick_first": {"shuffleAddressList": "yes"}}]}')
    assert "loadBalancingConfig" in str(info.value)
    # without it the order is the resolver's
    p = plane(V4[:3], lb={"pick_first": {}}, random=lambda: 0.0)
    assert [a for _, a in connects(p)] == [V4[0]]
    # with it, shuffled by the channel's randomness, on every update
    box = [0.0]
    p = plane(V4[:3], lb={"pick_first": {"shuffleAddressList": True}}, random=lambda: box[0])
    order = shuffled(V4[:3], lambda: 0.0)
    assert order == [V4[1], V4[2], V4[0]]
    assert [a for _, a in connects(p)] == [order[0]]
    assert [s.address for s in p._policy.subchannels] == order
    box[0] = 0.999                          # j == i: this update keeps the order it is given
    p.pushed(1.0, V4[:3])
    assert [s.address for s in p._policy.subchannels] == V4[:3]


def test_shuffled_is_a_permutation():
    import random
    r = random.Random(7)
    for n in range(6):
        items = list(range(n))
        assert sorted(shuffled(items, r.random)) == items


def test_round_robin_asks_for_re_resolution_when_a_backend_goes():
    p = ChannelPlane("localhost:50051", {"grpc.lb_policy_name": "round_robin",
                                         "grpc.dns_min_time_between_resolutions_ms": 1000},
                     random=lambda: 0.5)
    p.request_connection(0.0)
    assert p.take_actions() == [("resolve", "localhost", 50051)]
    p.resolved(0.0, V4[:2])
    (s1, _), (s2, _) = connects(p)
    p.connect_succeeded(0.1, s1)
    p.connect_succeeded(0.1, s2)
    p.connection_lost(0.5, s1)              # too soon after the lookup: scheduled
    actions = p.take_actions()
    assert [a[0] for a in actions] == ["connect"] and p.next_timer() == 1.0
    assert p.state == READY and {p.pick(None) for _ in range(3)} == {s2}
    p.timer(1.0)
    assert p.take_actions() == [("resolve", "localhost", 50051)]
    p.resolved(1.0, V4[1:3])                # the backend moved
    [(s3, a3)] = connects(p)
    assert a3 == V4[2]


def test_round_robin_transient_failure_is_sticky_while_reconnecting():
    p = plane(V4[:2], lb={"round_robin": {}})
    (s1, _), (s2, _) = connects(p)
    p.connect_failed(0.1, s1, "Connection refused")
    assert p.state == CONNECTING
    p.connect_failed(0.1, s2, "Connection refused")
    assert p.state == TRANSIENT_FAILURE
    assert p.last_error.count("Connection refused") == 2
    p.timer(1.1)
    assert len(connects(p)) == 2
    assert p.state == TRANSIENT_FAILURE     # CONNECTING subchannels do not end it
    p.connect_failed(1.2, p._policy.subchannels[0].sub_id, "Connection refused")
    assert p.state == TRANSIENT_FAILURE
    p.connect_succeeded(1.3, p._policy.subchannels[1].sub_id)
    assert p.state == READY
