"""Keepalive, ping policy, idle and age timers of the core, with a fake clock.

Two cores joined in memory (pair.py); the frames each side writes are read
back with the test proxy's frame reader.
"""
import math

from grpcpy import _cext as c
from tests.core.pair import Pair, ended
from tests.netproxy import GOAWAY, PING, FrameReader

INF = math.inf
ENHANCE_YOUR_CALM = 0xB


class WirePair(Pair):
    """A Pair that keeps the frames of each direction; ``cut`` stops the
    bytes (a black hole)."""

    def __init__(self, client_config=None, server_config=None):
        self.c2s = FrameReader(client_side=True)
        self.s2c = FrameReader(client_side=False)
        self.cut = False
        super().__init__(client_config, server_config)

    def pump(self, max_rounds=10000, limit_s2c=None):
        for _ in range(max_rounds):
            c2s = self.client.data_to_send()
            s2c = self.server.data_to_send()
            self.client_events += self.client.take_events()
            self.server_events += self.server.take_events()
            if not c2s and not s2c or self.cut:
                return
            if c2s:
                self.c2s.feed(c2s, self.now)
                self.server_events += self.server.receive_data(c2s, self.now)
            if s2c:
                self.s2c.feed(s2c, self.now)
                self.client_events += self.client.receive_data(s2c, self.now)
        raise AssertionError("cores did not settle")

    def run_until(self, t, step=0.05):
        while self.now < t - 1e-9:
            nxt = min(self.client.next_timer(), self.server.next_timer(), t)
            self.advance(max(min(nxt - self.now, step), 1e-6) if nxt > self.now else 1e-6)

    def pings(self, direction):
        return [f for f in getattr(self, direction).frames if f.type == PING and not f.ack]

    def goaways(self, direction):
        return [f.goaway() for f in getattr(self, direction).frames if f.type == GOAWAY]


def cfg(**kw):
    return c.H2Config(**kw)


def test_client_keepalive_pings_without_calls_when_permitted():
    p = WirePair(cfg(keepalive_time=1.0, keepalive_timeout=0.5, keepalive_permit_without_calls=True,
                     max_pings_without_data=0))
    p.run_until(3.5)
    times = [f.at for f in p.pings("c2s")]
    assert len(times) == 3
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times, times[1:]))
    assert not p.client.closed


def test_no_keepalive_without_calls_unless_permitted():
    p = WirePair(cfg(keepalive_time=1.0))
    assert p.client.next_timer() > 5      # only the SETTINGS timeout
    p.run_until(5)
    assert p.pings("c2s") == []


def test_keepalive_with_a_call_open():
    p = WirePair(cfg(keepalive_time=1.0))
    call = p.client.start_call("/pkg.Svc/Method", p.now)
    p.pump()
    p.run_until(2.5)
    assert len(p.pings("c2s")) == 2


def test_max_pings_without_data_holds_idle_pings_only():
    # no call: two pings, then none
    p = WirePair(cfg(keepalive_time=1.0, keepalive_permit_without_calls=True))
    p.run_until(6)
    assert len(p.pings("c2s")) == 2
    # a call open: the limit does not apply (a dead peer must still be found)
    call = p.client.start_call("/pkg.Svc/Method", p.now)
    p.pump()
    p.run_until(12)
    assert len(p.pings("c2s")) >= 2 + 5


def test_black_holed_connection_fails_calls_within_time_plus_timeout():
    p = WirePair(cfg(keepalive_time=1.0, keepalive_timeout=1.0, keepalive_permit_without_calls=True))
    call = p.client.start_call("/pkg.Svc/Method", p.now)
    p.pump()
    p.run_until(0.5)
    p.take_client()
    p.cut = True
    start = p.now
    while not p.client.closed:
        p.advance(max(p.client.next_timer() - p.now, 1e-6))
    assert p.now - start <= 2.0 + 1e-9
    end = ended(p.take_client(), call)
    assert end.code == c.SC_UNAVAILABLE and "keepalive" in end.details


def test_any_input_answers_the_keepalive_ping():
    p = WirePair(cfg(keepalive_time=1.0, keepalive_timeout=1.0, keepalive_permit_without_calls=True,
                     max_pings_without_data=0))
    p.run_until(10)
    assert not p.client.closed
    assert p.client.keepalive_pings_sent >= 9


def test_server_ping_policy_strikes_then_too_many_pings():
    p = WirePair(cfg(keepalive_time=0.1, keepalive_permit_without_calls=True, max_pings_without_data=0),
                 cfg(min_ping_interval_without_data=1.0, max_ping_strikes=2,
                     keepalive_permit_without_calls=True))
    p.run_until(1.0)
    assert p.server.closed
    goaway_at = [f.at for f in p.s2c.frames if f.type == GOAWAY][0]
    # the first is free, three strikes end it
    assert len([f for f in p.pings("c2s") if f.at <= goaway_at]) == 4
    [(last, code, debug)] = p.goaways("s2c")
    assert (code, debug) == (ENHANCE_YOUR_CALM, b"too_many_pings")
    assert p.client.too_many_pings


def test_server_ping_policy_idle_interval_is_two_hours():
    # with no call open and pings without calls not permitted, the interval is 2 h
    p = WirePair(cfg(keepalive_time=10.0, keepalive_permit_without_calls=True, max_pings_without_data=0),
                 cfg(min_ping_interval_without_data=1.0, max_ping_strikes=2))
    p.run_until(35)
    assert not p.server.closed            # two strikes
    p.run_until(45)
    assert p.server.closed and p.client.too_many_pings


def test_server_sending_data_resets_strikes():
    p = WirePair(cfg(keepalive_time=0.1, keepalive_permit_without_calls=True, max_pings_without_data=0),
                 cfg(min_ping_interval_without_data=1.0, max_ping_strikes=2,
                     keepalive_permit_without_calls=True))
    call = p.client.start_call("/pkg.Svc/Method", p.now)
    p.pump()
    [started] = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED]
    scall = started.call
    p.server.accept_call(scall, None)
    for _ in range(20):   # the server answers on the stream between pings
        p.run_until(p.now + 0.1)
        p.server.send_message(scall, b"x")
        p.pump()
    assert not p.server.closed
    assert len(p.pings("c2s")) >= 15


def test_server_keepalive_pings():
    p = WirePair(None, cfg(keepalive_time=0.5, keepalive_timeout=0.5))
    p.run_until(2)
    assert p.pings("s2c") == []           # no call open
    p.client.start_call("/pkg.Svc/Method", p.now)
    p.pump()
    p.run_until(3.1)
    assert len(p.pings("s2c")) == 2


def test_max_connection_idle_two_step_goaway_then_close():
    p = WirePair(None, cfg(max_connection_idle=1.0))
    call = p.client.start_call("/pkg.Svc/Method", p.now)
    p.pump()
    p.run_until(3)                        # a call open: never idle
    assert p.goaways("s2c") == []
    [started] = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED]
    p.server.accept_call(started.call, None)
    p.server.send_status(started.call, 0, "")
    p.pump()
    p.run_until(3.9)
    assert p.goaways("s2c") == []
    p.run_until(4.1)
    assert p.goaways("s2c") == [(0x7FFFFFFF, 0, b""), (1, 0, b"")]
    assert [f.payload for f in p.pings("s2c")] == [b"grpcpyGA"]
    assert p.server.closed and p.server.close_reason == "connection drained after GOAWAY"


def test_max_connection_age_lets_calls_finish_within_grace():
    p = WirePair(None, cfg(max_connection_age=1.0, max_connection_age_grace=2.0))
    call = p.client.start_call("/pkg.Svc/Method", p.now)
    p.pump()
    [started] = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED]
    p.server.accept_call(started.call, None)
    p.run_until(1.5)
    assert p.goaways("s2c") == [(0x7FFFFFFF, 0, b""), (1, 0, b"")]
    assert not p.server.closed            # the call is still running
    p.server.send_status(started.call, 0, "")
    p.pump()
    p.run_until(1.6)
    assert ended(p.take_client(), call).code == c.SC_OK
    assert p.server.closed


def test_max_connection_age_grace_expiry_closes():
    p = WirePair(None, cfg(max_connection_age=1.0, max_connection_age_grace=0.5))
    call = p.client.start_call("/pkg.Svc/Method", p.now)
    p.pump()
    p.run_until(1.4)
    assert not p.server.closed
    p.run_until(1.6)
    assert p.server.closed
    assert p.server.close_reason == "max_connection_age_grace expired"


def test_server_keepalive_watchdog_ends_its_calls():
    p = WirePair(None, cfg(keepalive_time=0.5, keepalive_timeout=0.5))
    p.client.start_call("/pkg.Svc/Method", p.now)
    p.pump()
    [started] = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED]
    p.server.accept_call(started.call, None)
    p.cut = True
    while not p.server.closed:
        p.advance(max(p.server.next_timer() - p.now, 1e-6))
    assert p.now <= 1.0 + 1e-9
    assert p.server.close_reason == "keepalive watchdog timeout"
    assert ended(p.take_server(), started.call).code != c.SC_OK


def test_ping_policy_is_off_in_a_bare_config():
    # the policy is the server facade's option; a core made without it answers every PING
    p = WirePair(cfg(keepalive_time=0.01, keepalive_permit_without_calls=True, max_pings_without_data=0))
    p.run_until(1.0, step=0.01)
    assert not p.server.closed and len(p.pings("c2s")) >= 90
