"""The sans-IO channel plane driven by a fake clock and scripted facade answers."""
import math

import pytest

from grpcpy._types import ChannelConnectivity
from grpcpy._channel.backoff import Backoff
from grpcpy._channel.plane import CONNECTING, IDLE, READY, SHUTDOWN, TRANSIENT_FAILURE, ChannelPlane
from grpcpy._channel.target import Address, parse_target

NO_JITTER = lambda: 0.5  # noqa: E731  (2 * 0.5 - 1 == 0)

A1 = Address("inet", "10.0.0.1", 50051)
A2 = Address("inet", "10.0.0.2", 50051)


# ---------------------------------------------------------------- targets

V4 = lambda h, p: Address("inet", h, p)   # noqa: E731
V6 = lambda h, p: Address("inet6", h, p)  # noqa: E731


@pytest.mark.parametrize("text, scheme, authority, host, port, addresses", [
    ("localhost:50051", "dns", "localhost:50051", "localhost", 50051, None),
    ("localhost", "dns", "localhost", "localhost", 443, None),
    ("example.com:8080", "dns", "example.com:8080", "example.com", 8080, None),
    ("[::1]:50051", "dns", "[::1]:50051", "::1", 50051, None),
    ("[::1]", "dns", "[::1]", "::1", 443, None),
    ("127.0.0.1:9", "dns", "127.0.0.1:9", "127.0.0.1", 9, None),
    ("dns:///localhost:50051", "dns", "localhost:50051", "localhost", 50051, None),
    ("dns:localhost:50051", "dns", "localhost:50051", "localhost", 50051, None),
    ("DNS:///h", "dns", "h", "h", 443, None),
    ("dns://8.8.8.8:53/foo.bar:1", "dns", "foo.bar:1", "foo.bar", 1, None),
    ("passthrough:///host:5", "passthrough", "host:5", "host", 5, None),
    ("ipv4:1.2.3.4:80,5.6.7.8", "ipv4", "1.2.3.4:80", None, None,
     [V4("1.2.3.4", 80), V4("5.6.7.8", 443)]),
    ("ipv4:127.0.0.1", "ipv4", "127.0.0.1", None, None, [V4("127.0.0.1", 443)]),
    ("ipv6:[::1]:80,[::2]", "ipv6", "[::1]:80", None, None, [V6("::1", 80), V6("::2", 443)]),
    ("ipv6:::1", "ipv6", "::1", None, None, [V6("::1", 443)]),
    ("unix:relative/path", "unix", "localhost", None, None, [Address("unix", path="relative/path")]),
    ("unix:/abs/path", "unix", "localhost", None, None, [Address("unix", path="/abs/path")]),
    ("unix:///abs/path", "unix", "localhost", None, None, [Address("unix", path="/abs/path")]),
    ("unix-abstract:name", "unix-abstract", "localhost", None, None, [Address("unix", path="\0name")]),
])
def test_parse_target_valid(text, scheme, authority, host, port, addresses):
    t = parse_target(text)
    assert (t.scheme, t.authority, t.host, t.port, t.addresses) == (scheme, authority, host, port, addresses)
    assert t.target == text


def test_parse_target_default_port_and_dns_server():
    assert parse_target("h", default_port=80).port == 80
    assert parse_target("ipv4:1.1.1.1", default_port=80).addresses == [V4("1.1.1.1", 80)]
    assert parse_target("dns://8.8.8.8:53/x:1").dns_server == "8.8.8.8:53"
    assert parse_target("dns:///x:1").dns_server is None


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("host:99999", "out of range"),
    ("host:0", "out of range"),
    ("host:http", "bad port"),
    ("host:-1", "bad port"),
    (":50051", "no host"),
    ("dns:///", "no host"),
    ("dns://h:1", "three slashes"),
    ("[::1", "missing ']'"),
    ("[::1]x", "after ']'"),
    ("[zz::1]:80", "bad IPv6"),
    ("ipv4:1.2.3", "bad IPv4"),
    ("ipv4:1.2.3.4:80,", "empty address"),
    ("ipv4:[::1]:80", "bad IPv4"),
    ("ipv4:1.2.3.4:x", "bad port"),
    ("ipv6:[::g]:80", "bad IPv6"),
    ("ipv6:1.2.3.4", "bad IPv6"),
    ("unix:", "no path"),
    ("unix://host/path", "no authority"),
    ("unix-abstract:", "no path"),
    ("foo://bar", "unknown scheme"),
    ("http://example.com", "unknown scheme"),
    ("host name:1", "whitespace"),
    ("a/b:1", "bad host name"),
])
def test_parse_target_invalid(text, words):
    with pytest.raises(ValueError) as info:
        parse_target(text)
    assert words in str(info.value)
    assert repr(text) in str(info.value)


def test_address_formatting():
    assert str(Address("inet", "1.2.3.4", 80)) == "ipv4:1.2.3.4:80"
    assert str(Address("inet6", "::1", 80)) == "ipv6:[::1]:80"
    assert str(Address("unix", path="/tmp/s")) == "unix:/tmp/s"
    assert str(Address("unix", path="\0name")) == "unix-abstract:name"
    assert str(Address("inet", "backend", 5)) == "backend:5"  # passthrough name
    assert Address.ip("::1", "7") == Address("inet6", "::1", 7)
    assert Address.ip("1.2.3.4", 7) == Address("inet", "1.2.3.4", 7)
    with pytest.raises(Exception):
        Address("inet", "1.2.3.4", 80).port = 81  # immutable
    assert len({Address("inet", "1.2.3.4", 80), Address("inet", "1.2.3.4", 80)}) == 1


# ---------------------------------------------------------------- backoff

def test_backoff_sequence_without_jitter():
    b = Backoff(min_connect_timeout=0.0, random=NO_JITTER)
    now, deadlines = 0.0, []
    for _ in range(14):
        deadline = b.start(now)
        deadlines.append(round(deadline - now, 6))
        now = b.failed(now)  # fail at once; the next attempt starts at the deadline
        assert now == deadline
    assert deadlines[:5] == [1.0, 1.6, 2.56, 4.096, 6.5536]
    assert deadlines[-3:] == [120.0, 120.0, 120.0]
    assert all(later >= earlier for earlier, later in zip(deadlines, deadlines[1:]))


def test_backoff_min_connect_timeout_applies_to_connect_deadline():
    b = Backoff(random=NO_JITTER)
    assert b.start(100.0) == 120.0          # max(101, 100 + 20)
    assert b.failed(100.5) == 101.0         # but the next attempt may start at 101
    assert b.start(101.0) == 121.0
    assert b.current_deadline == pytest.approx(102.6)
    # a slow failure (past the deadline) allows an immediate retry
    assert b.failed(121.0) == 121.0


def test_backoff_jitter_bounds():
    low = Backoff(min_connect_timeout=0, random=lambda: 0.0)
    high = Backoff(min_connect_timeout=0, random=lambda: 1.0)
    for b in (low, high):
        b.start(0.0)
        b.failed(0.0)
    assert low.start(10.0) == pytest.approx(10.0 + 1.6 * 0.8)
    assert high.start(10.0) == pytest.approx(10.0 + 1.6 * 1.2)
    # first attempt has no jitter
    assert Backoff(min_connect_timeout=0, random=lambda: 0.0).start(0.0) == 1.0


def test_backoff_reset():
    b = Backoff(min_connect_timeout=0, random=NO_JITTER)
    for now in (0.0, 1.0, 2.6):
        b.start(now)
        b.failed(now)
    b.reset()
    assert b.start(50.0) == 51.0


def test_backoff_from_options():
    b = Backoff.from_options({"grpc.initial_reconnect_backoff_ms": 200,
                              "grpc.max_reconnect_backoff_ms": 500,
                              "grpc.min_reconnect_backoff_ms": 1000}, random=NO_JITTER)
    assert (b.initial, b.maximum, b.min_connect_timeout) == (0.2, 0.5, 1.0)
    assert (b.multiplier, b.jitter) == (1.6, 0.2)
    d = Backoff.from_options([])
    assert (d.initial, d.multiplier, d.jitter, d.maximum, d.min_connect_timeout) == (1.0, 1.6, 0.2, 120.0, 20.0)
    # grpcio-style list of pairs, and grpcio's 100 ms floor
    f = Backoff.from_options([("grpc.initial_reconnect_backoff_ms", 1)])
    assert f.initial == 0.1
    fixed = Backoff.from_options({"grpc.testing.fixed_reconnect_backoff_ms": 300})
    fixed.start(0.0)
    fixed.failed(0.0)
    assert fixed.start(0.3) == pytest.approx(0.6)
    assert fixed.current_backoff == 0.3


# ---------------------------------------------------------------- the plane

def plane_for(target="ipv4:10.0.0.1:50051,10.0.0.2:50051", options=None):
    p = ChannelPlane(parse_target(target), options, random=NO_JITTER)
    seen = []
    p.set_listener(lambda old, new: seen.append((old, new)))
    p.seen = seen
    return p


def connects(actions):
    return [a for a in actions if a[0] == "connect"]


def only_connect(p):
    actions = p.take_actions()
    [action] = actions
    assert action[0] == "connect"
    return action


def test_states_map_to_channel_connectivity_by_order():
    assert [s.name for s in ChannelConnectivity] == ["IDLE", "CONNECTING", "READY",
                                                    "TRANSIENT_FAILURE", "SHUTDOWN"]
    assert [IDLE, CONNECTING, READY, TRANSIENT_FAILURE, SHUTDOWN] == [0, 1, 2, 3, 4]


def test_idle_connecting_ready():
    p = plane_for()
    assert p.state == IDLE and p.take_actions() == [] and p.next_timer() == math.inf
    assert p.pick() is None
    p.request_connection(0.0)
    assert p.state == CONNECTING
    _, sid, addr, deadline = only_connect(p)
    assert addr == A1 and deadline == 20.0     # max(0 + 1, 0 + 20)
    assert p.next_timer() == 0.25              # the next address's attempt, if this one is slow
    p.request_connection(0.1)                  # already connecting: nothing new
    assert p.take_actions() == []
    p.connect_succeeded(0.2, sid)
    assert p.state == READY and p.pick() == sid and p.last_error is None
    assert p.take_actions() == []
    assert p.next_timer() == math.inf
    assert p.take_state_changes() == [(IDLE, CONNECTING), (CONNECTING, READY)]
    assert p.seen == [(IDLE, CONNECTING), (CONNECTING, READY)]
    assert p.take_state_changes() == []


def test_pick_first_order_and_fall_through():
    p = plane_for()
    p.request_connection(0.0)
    _, s1, addr1, _ = only_connect(p)
    assert addr1 == A1
    p.connect_failed(0.1, s1, "Connection refused")
    assert p.state == CONNECTING               # one address left to try
    _, s2, addr2, _ = only_connect(p)          # one connect at a time, in order
    assert addr2 == A2 and s2 != s1
    p.connect_succeeded(0.2, s2)
    assert p.state == READY and p.pick() == s2
    # the first address's backoff timer is cancelled: it was reset when the second won
    assert p.next_timer() == math.inf
    p.timer(5.0)
    assert p.take_actions() == [] and p.state == READY


def test_all_fail_transient_failure_then_retry_after_backoff():
    p = plane_for()
    p.request_connection(0.0)
    _, s1, _, _ = only_connect(p)
    p.connect_failed(0.1, s1, "Connection refused")
    _, s2, _, _ = only_connect(p)
    p.connect_failed(0.2, s2, "No route to host")
    assert p.state == TRANSIENT_FAILURE
    assert p.last_error == ("failed to connect to all addresses: ipv4:10.0.0.1:50051: Connection refused; "
                            "ipv4:10.0.0.2:50051: No route to host")
    assert p.pick() is None
    assert p.take_actions() == []
    assert p.next_timer() == 1.0               # each address's backoff: started at 0 + 1 s
    p.timer(0.999)
    assert p.take_actions() == []              # not before the backoff
    p.request_connection(0.5)                  # asking does not skip the backoff
    assert p.take_actions() == []
    p.timer(1.0)
    _, s3, addr3, deadline3 = only_connect(p)
    assert addr3 == A1 and deadline3 == 21.0
    assert p.state == TRANSIENT_FAILURE        # sticky while retrying
    p.connect_failed(1.1, s3, "Connection refused")
    assert p.take_actions() == []              # the second address is still backing off
    assert p.next_timer() == pytest.approx(1.1)  # its attempt started at 0.1
    p.timer(1.1)
    _, s4, addr4, _ = only_connect(p)
    assert addr4 == A2
    p.connect_failed(1.2, s4, "refused")
    assert p.next_timer() == pytest.approx(2.6)  # the first address: 1.0 + 1.6
    p.timer(2.6)
    _, s5, addr5, _ = only_connect(p)
    assert addr5 == A1
    p.connect_succeeded(2.7, s5)
    assert p.state == READY and p.last_error is None
    assert p.take_state_changes() == [(IDLE, CONNECTING), (CONNECTING, TRANSIENT_FAILURE),
                                      (TRANSIENT_FAILURE, READY)]


def test_success_resets_backoff():
    p = plane_for("ipv4:10.0.0.1:50051")
    p.request_connection(0.0)
    s = only_connect(p)[1]
    p.connect_failed(0.0, s, "refused")
    p.timer(1.0)
    s = only_connect(p)[1]
    p.connect_failed(1.0, s, "refused")
    assert p.next_timer() == pytest.approx(2.6)   # grown to 1.6
    p.timer(2.6)
    s = only_connect(p)[1]
    p.connect_succeeded(2.7, s)
    p.connection_lost(10.0, s)
    p.request_connection(10.0)
    s = only_connect(p)[1]
    p.connect_failed(10.0, s, "refused")
    assert p.next_timer() == 11.0                 # back to the initial 1 s


def test_connect_timeout_via_timer():
    p = plane_for()
    p.request_connection(0.0)
    _, s1, _, deadline = only_connect(p)
    assert deadline == 20.0
    p.timer(0.25)                              # slow: the second address's attempt starts too
    _, s2, addr2, deadline2 = only_connect(p)
    assert addr2 == A2 and deadline2 == 20.25
    assert p.next_timer() == 20.0
    p.timer(19.9)
    assert p.take_actions() == [] and p.state == CONNECTING
    p.timer(20.0)
    assert p.take_actions() == [("close", s1)]
    assert p.state == CONNECTING               # the second attempt is still going
    p.connect_succeeded(20.1, s1)              # the abandoned attempt answers late
    assert p.take_actions() == [("close", s1)]
    assert p.state == CONNECTING
    p.connect_failed(20.1, s1, "late")          # ignored
    assert p.state == CONNECTING and p.take_actions() == []
    p.timer(20.25)
    actions = p.take_actions()
    assert actions[0] == ("close", s2)
    assert p.state == TRANSIENT_FAILURE
    assert p.last_error == ("failed to connect to all addresses: ipv4:10.0.0.1:50051: connect timed out; "
                            "ipv4:10.0.0.2:50051: connect timed out")
    # both attempts took longer than their backoff: both are retried at once
    assert [a[2] for a in connects(actions)] == [A1, A2]


def test_connection_lost_goes_idle_and_reconnects_on_request():
    p = plane_for()
    p.request_connection(0.0)
    s1 = only_connect(p)[1]
    p.connect_succeeded(0.1, s1)
    p.take_state_changes()
    p.connection_lost(5.0, s1)
    assert p.state == IDLE and p.pick() is None
    assert p.take_actions() == []              # no reconnect until asked
    assert p.take_state_changes() == [(READY, IDLE)]
    p.connection_lost(5.0, s1)                 # repeated report: ignored
    p.request_connection(6.0)
    _, s2, addr, _ = only_connect(p)
    assert addr == A1 and s2 != s1             # pick_first starts over from the first address
    assert p.state == CONNECTING
    p.connect_succeeded(6.1, s2)
    assert p.pick() == s2
    assert p.take_state_changes() == [(IDLE, CONNECTING), (CONNECTING, READY)]


def test_dns_resolution_then_connect():
    p = plane_for("localhost:50051")
    assert p.state == IDLE
    p.request_connection(0.0)
    assert p.take_actions() == [("resolve", "localhost", 50051)]
    assert p.state == CONNECTING
    p.request_connection(0.1)
    assert p.take_actions() == []              # one lookup at a time
    p.resolved(0.2, [Address.ip("::1", 50051), Address.ip("127.0.0.1", 50051),
                     Address.ip("::1", 50051)])
    _, s, addr, _ = only_connect(p)
    assert addr == Address("inet6", "::1", 50051)
    p.connect_succeeded(0.3, s)
    assert p.state == READY


def test_resolution_failure_and_re_resolution():
    p = plane_for("dns:///svc.example:443")
    p.request_connection(0.0)
    assert p.take_actions() == [("resolve", "svc.example", 443)]
    p.resolution_failed(0.5, "Name or service not known")
    assert p.state == TRANSIENT_FAILURE
    assert p.last_error == "DNS resolution failed for svc.example:443: Name or service not known"
    assert p.next_timer() == 1.0
    p.timer(0.9)
    assert p.take_actions() == []
    p.timer(1.0)
    assert p.take_actions() == [("resolve", "svc.example", 443)]
    assert p.state == TRANSIENT_FAILURE        # still failing until addresses arrive
    p.resolved(1.1, [])                         # an empty answer is a failure too
    assert p.state == TRANSIENT_FAILURE and "no addresses" in p.last_error
    assert p.next_timer() == pytest.approx(2.6)
    p.timer(2.6)
    assert p.take_actions() == [("resolve", "svc.example", 443)]
    p.resolved(2.7, [A1])
    assert p.state == CONNECTING
    s = only_connect(p)[1]
    p.connect_succeeded(2.8, s)
    assert p.state == READY
    assert p.take_state_changes() == [(IDLE, CONNECTING), (CONNECTING, TRANSIENT_FAILURE),
                                      (TRANSIENT_FAILURE, CONNECTING), (CONNECTING, READY)]


def test_connection_lost_re_resolves_rate_limited_and_new_addresses_apply():
    p = plane_for("svc:1")
    p.request_connection(0.0)
    p.take_actions()
    p.resolved(0.0, [A1])
    s = only_connect(p)[1]
    p.connect_succeeded(0.1, s)
    p.connection_lost(10.0, s)                 # < 30 s since the last lookup
    assert p.take_actions() == []
    assert p.next_timer() == 30.0
    p.timer(30.0)
    assert p.take_actions() == [("resolve", "svc", 1)]
    p.resolved(30.1, [A2])                     # the channel is IDLE: no connect yet
    assert p.take_actions() == [] and p.state == IDLE
    p.request_connection(31.0)
    assert only_connect(p)[2] == A2


def test_failed_re_resolution_keeps_old_addresses():
    p = plane_for("svc:1", {"grpc.dns_min_time_between_resolutions_ms": 0})
    p.request_connection(0.0)
    p.take_actions()
    p.resolved(0.0, [A1])
    s = only_connect(p)[1]
    p.connect_failed(0.1, s, "refused")        # all addresses failed: re-resolve
    assert p.take_actions() == [("resolve", "svc", 1)]
    p.resolution_failed(0.2, "SERVFAIL")
    assert p.last_error.endswith("ipv4:10.0.0.1:50051: refused")  # the connect error stays
    assert p.next_timer() == 1.0               # A1's backoff (attempt started at 0.0)
    p.timer(1.1)                               # ... and the lookup retry (started at 0.1)
    actions = p.take_actions()
    assert ("resolve", "svc", 1) in actions and connects(actions)[0][2] == A1


def test_address_update_drops_selected_connection():
    p = plane_for("svc:1")
    p.request_connection(0.0)
    p.take_actions()
    p.resolved(0.0, [A1, A2])
    s = only_connect(p)[1]
    p.connect_succeeded(0.1, s)
    p.resolved(0.2, [A2])                      # not resolving: stale answer ignored
    assert p.state == READY
    p.connection_lost(40.0, s)
    p.take_actions()
    p.resolved(40.1, [A2])
    assert p.take_actions() == []
    p.request_connection(41.0)
    assert only_connect(p)[2] == A2


def test_static_dns_literal_needs_no_lookup():
    p = plane_for("127.0.0.1:50051")
    p.request_connection(0.0)
    assert only_connect(p)[2] == Address("inet", "127.0.0.1", 50051)
    p = plane_for("passthrough:///backend:7")
    p.request_connection(0.0)
    assert only_connect(p)[2] == Address("inet", "backend", 7)
    p = plane_for("unix:/tmp/sock")
    p.request_connection(0.0)
    assert only_connect(p)[2] == Address("unix", path="/tmp/sock")


def test_shutdown():
    p = plane_for()
    p.request_connection(0.0)
    s1 = only_connect(p)[1]
    p.shutdown()
    assert p.state == SHUTDOWN
    assert p.take_actions() == [("close", s1)]
    assert p.pick() is None and p.next_timer() == math.inf
    p.connect_succeeded(1.0, s1)               # a late success is closed at once
    assert p.take_actions() == [("close", s1)]
    p.connect_failed(1.0, s1, "x")
    p.connection_lost(1.0, s1)
    p.resolved(1.0, [A2])
    p.request_connection(1.0)
    p.timer(100.0)
    p.shutdown()
    assert p.take_actions() == [] and p.state == SHUTDOWN
    assert p.take_state_changes() == [(IDLE, CONNECTING), (CONNECTING, SHUTDOWN)]


def test_shutdown_ready_channel_closes_connection():
    p = plane_for()
    p.request_connection(0.0)
    s = only_connect(p)[1]
    p.connect_succeeded(0.0, s)
    p.shutdown()
    assert p.take_actions() == [("close", s)]
    assert p.seen[-1] == (READY, SHUTDOWN)


def test_options_reach_the_plane():
    p = plane_for(options={"grpc.initial_reconnect_backoff_ms": 250,
                           "grpc.min_reconnect_backoff_ms": 500})
    p.request_connection(0.0)
    _, s, _, deadline = only_connect(p)
    assert deadline == 0.5
    p.connect_failed(0.1, s, "refused")
    s = only_connect(p)[1]
    p.connect_failed(0.1, s, "refused")
    assert p.next_timer() == 0.25
    # an unknown policy name falls back to pick_first, as grpcio does
    assert plane_for(options={"grpc.lb_policy_name": "no_such_policy"})._policy.name == "pick_first"


def test_round_robin_rotates_over_ready_subchannels():
    p = plane_for(options={"grpc.lb_policy_name": "round_robin"})
    p.request_connection(0.0)
    actions = p.take_actions()
    assert [a[2] for a in actions] == [A1, A2]  # connects to every address
    (_, s1, _, _), (_, s2, _, _) = actions
    p.connect_succeeded(0.1, s2)
    assert p.state == READY
    assert [p.pick() for _ in range(3)] == [s2, s2, s2]
    p.connect_succeeded(0.2, s1)
    assert sorted(p.pick() for _ in range(4)) == [s1, s1, s2, s2]
    p.connection_lost(1.0, s1)                 # reconnected at once, channel stays READY
    assert connects(p.take_actions())[0][2] == A1
    assert p.state == READY and {p.pick() for _ in range(3)} == {s2}


def test_connection_closed_while_connecting_counts_as_failure():
    p = plane_for("ipv4:10.0.0.1:50051")
    p.request_connection(0.0)
    s = only_connect(p)[1]
    p.connection_lost(0.1, s)
    assert p.state == TRANSIENT_FAILURE
    assert p.last_error.endswith("ipv4:10.0.0.1:50051: connection closed while connecting")
    assert p.next_timer() == 1.0


def test_round_robin_sticky_failure_and_target_string():
    p = ChannelPlane("ipv4:10.0.0.1:50051,10.0.0.2:50051", [("grpc.lb_policy_name", "round_robin")],
                     random=NO_JITTER)
    p.request_connection(0.0)
    (_, s1, _, _), (_, s2, _, _) = p.take_actions()
    p.connect_failed(0.1, s1, "refused")
    assert p.state == CONNECTING
    p.connect_failed(0.2, s2, "refused")
    assert p.state == TRANSIENT_FAILURE and p.last_error.endswith("refused")
    p.timer(1.0)
    assert [a[2] for a in connects(p.take_actions())] == [A1, A2]
    assert p.state == TRANSIENT_FAILURE
