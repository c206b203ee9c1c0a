"""RFC 9113 §5.1 stream states, checked against a model.

The model follows one stream (id 1) through idle, open, half-closed
(local/remote) and three flavours of closed (we sent RST_STREAM, the peer
sent RST_STREAM, END_STREAM both ways), and says for every frame the peer can
send in every state what the RFC requires of the receiver. The core plays
either role; in the server role the peer opens stream 1, in the client role
the core does.

Then: hypothesis drives random sequences of local actions and peer frames
through core and model side by side, and a second model checks flow control
(the core never exceeds the peer's windows, resumes after WINDOW_UPDATE, and
shares a small connection window between streams).
"""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grpcpy import _cext as c

from .frame_factory import (
    ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, FLOW_CONTROL_ERROR, GOAWAY, HEADERS,
    INITIAL_WINDOW_SIZE, PROTOCOL_ERROR, REQUEST, RESPONSE, RST_STREAM, SETTINGS, STREAM_CLOSED,
    TRAILERS, WINDOW_UPDATE, Harness, describe, events_of, goaways, raw, rsts,
)

SID = 1

IDLE = "idle"
OPEN = "open"
HC_LOCAL = "half-closed(local)"
HC_REMOTE = "half-closed(remote)"
CLOSED_RST_SENT = "closed(RST sent)"
CLOSED_RST_RECV = "closed(RST received)"
CLOSED_ENDED = "closed(END_STREAM)"
STATES = [IDLE, OPEN, HC_LOCAL, HC_REMOTE, CLOSED_RST_SENT, CLOSED_RST_RECV, CLOSED_ENDED]
CORE_STATE = {OPEN: 1, HC_LOCAL: 2, HC_REMOTE: 3}    # H2Stream.state values while in core.streams

FRAMES = ["DATA", "DATA+ES", "HEADERS", "HEADERS+ES", "PRIORITY", "RST_STREAM", "WINDOW_UPDATE",
          "CONTINUATION"]

# outcomes
def ev(kind):
    return ("event", kind)


IGNORED = ("ignored",)


def stream_err(code):
    return ("stream", code)


def conn_err(code):
    return ("conn", code)


def expected(role, state, frame):
    """(allowed outcomes, state after) for `frame` from the peer on stream 1
    in `state`. The first allowed outcome decides the next state when the
    RFC lets the receiver choose (the others end the connection anyway)."""
    es = frame.endswith("+ES")
    kind = frame.split("+")[0]
    if kind == "CONTINUATION":
        # §6.10: a CONTINUATION must follow a header block without END_HEADERS
        return [conn_err(PROTOCOL_ERROR)], None
    if kind == "PRIORITY":
        # §5.1, §6.3: PRIORITY may be sent in any state; it changes nothing here
        return [IGNORED], state
    if state == IDLE:
        if kind == "HEADERS" and role == "server":
            return [ev(c.EV_HEADERS)], (HC_REMOTE if es else OPEN)
        # §5.1 idle: anything but HEADERS/PRIORITY is a PROTOCOL_ERROR; and a
        # server may not open an odd stream (§5.1.1), which the client did not
        return [conn_err(PROTOCOL_ERROR)], None
    if state in (OPEN, HC_LOCAL):
        after = state
        if es:
            after = HC_REMOTE if state == OPEN else CLOSED_ENDED
        if kind == "DATA":
            return [ev(c.EV_DATA)], after
        if kind == "HEADERS":
            return [ev(c.EV_HEADERS)], after
        if kind == "RST_STREAM":
            return [ev(c.EV_STREAM_RESET)], CLOSED_RST_RECV
        return [IGNORED], state                     # WINDOW_UPDATE
    if state == HC_REMOTE:
        if kind in ("DATA", "HEADERS"):
            # §5.1 half-closed (remote), §6.1
            return [stream_err(STREAM_CLOSED)], CLOSED_RST_SENT
        if kind == "RST_STREAM":
            return [ev(c.EV_STREAM_RESET)], CLOSED_RST_RECV
        return [IGNORED], state                     # WINDOW_UPDATE is allowed
    if state == CLOSED_RST_SENT:
        # §5.1 closed: "MUST ignore frames ... after it has sent a RST_STREAM"
        return [IGNORED], state
    if state == CLOSED_RST_RECV:
        if kind in ("DATA", "HEADERS"):
            return [stream_err(STREAM_CLOSED), conn_err(STREAM_CLOSED)], CLOSED_RST_SENT
        return [IGNORED], state
    assert state == CLOSED_ENDED
    if kind in ("DATA", "HEADERS"):
        # §5.1 closed (the MAY of a connection error) or §6.1's stream error
        return [conn_err(STREAM_CLOSED), stream_err(STREAM_CLOSED)], CLOSED_RST_SENT
    # WINDOW_UPDATE / RST_STREAM may cross our END_STREAM: ignore (§5.1 closed)
    return [IGNORED], state


class Driver:
    """The core under test, the peer and the model of stream 1, in step."""

    def __init__(self, role):
        self.role = role
        self.h = Harness(role)
        self.state = IDLE
        self.peer_headers_seen = False      # the next peer HEADERS would be trailers
        self.local_headers_sent = False
        self.dead = False

    # -- peer frames -----------------------------------------------------------

    def frame_bytes(self, frame):
        p = self.h.peer
        es = frame.endswith("+ES")
        kind = frame.split("+")[0]
        if kind == "DATA":
            return p.data(SID, b"d", end_stream=es)
        if kind == "HEADERS":
            if self.peer_headers_seen:
                headers = TRAILERS
            else:
                headers = REQUEST if self.role == "server" else RESPONSE
            return p.headers(SID, headers, end_stream=es)
        if kind == "PRIORITY":
            return p.priority(SID, 0)
        if kind == "RST_STREAM":
            return p.rst(SID)
        if kind == "WINDOW_UPDATE":
            return p.window_update(SID, 1)
        return raw(CONTINUATION, END_HEADERS, SID, b"")

    def peer(self, frame):
        allowed, after = expected(self.role, self.state, frame)
        h = self.h
        h.clear()
        events, frames = h.send(self.frame_bytes(frame))
        ctx = "%s in %s (%s core): events %r, frames %r" % (frame, self.state, self.role, events, describe(frames))
        got = self.classify(events, frames)
        assert got in allowed, "expected one of %r, got %r: %s" % (allowed, got, ctx)
        if frame.startswith("HEADERS") and got == ev(c.EV_HEADERS):
            self.peer_headers_seen = True
        if got[0] == "conn":
            assert h.core.closed, ctx
            self.dead = True
            return
        if got[0] == "stream":
            after = CLOSED_RST_SENT
        self.state = after
        self.check_core_state(ctx)

    def classify(self, events, frames):
        ga = goaways(frames)
        if ga:
            assert len(ga) == 1
            return conn_err(ga[0].error_code)
        r = rsts(frames, SID)
        if r:
            assert len(r) == 1, describe(frames)
            assert not [e for e in events if e.stream_id == SID and e.kind != c.EV_STREAM_RESET]
            return stream_err(r[0].error_code)
        assert not rsts(frames)
        mine = [e for e in events if e.stream_id == SID]
        if not mine:
            return IGNORED
        assert len(mine) == 1, mine
        e = mine[0]
        if e.kind == c.EV_STREAM_RESET:
            assert e.remote
        if e.kind in (c.EV_DATA, c.EV_HEADERS):
            assert e.end_stream == self.peer_last_es, (e, self.state)
        return ev(e.kind)

    peer_last_es = False

    def check_core_state(self, ctx):
        s = self.h.core.streams.get(SID)
        if self.state in CORE_STATE:
            assert s is not None, "stream 1 missing; model says %s: %s" % (self.state, ctx)
            assert s.state == CORE_STATE[self.state], "core state %d, model %s: %s" % (s.state, self.state, ctx)
        else:
            assert s is None, "core still has %r; model says %s: %s" % (s, self.state, ctx)
        assert not self.h.core.closed

    # -- local actions -----------------------------------------------------------

    def can(self, action):
        if self.dead:
            return False
        if action in ("headers", "headers+es"):
            if self.local_headers_sent:
                return False
            if self.role == "client":
                return self.state == IDLE
            return self.state in (OPEN, HC_REMOTE)
        if action in ("data", "data+es"):
            return self.local_headers_sent and self.state in (OPEN, HC_REMOTE)
        if action == "reset":
            return self.state in (OPEN, HC_LOCAL, HC_REMOTE)
        raise AssertionError(action)

    def local(self, action):
        h = self.h
        core = h.core
        es = action.endswith("+es")
        h.clear()
        if action.startswith("headers"):
            if self.role == "client":
                s = core.open_stream()
                assert s.stream_id == SID
                core.send_headers(SID, REQUEST, es)
                self.state = HC_LOCAL if es else OPEN
            else:
                core.send_headers(SID, RESPONSE, es)
                if es:
                    self.state = HC_LOCAL if self.state == OPEN else CLOSED_ENDED
            self.local_headers_sent = True
            frames = h.pull()
            assert [(f.type, f.stream_id, bool(f.flags & END_STREAM)) for f in frames] == [(HEADERS, SID, es)]
        elif action.startswith("data"):
            core.send_data(SID, b"payload", es)
            if es:
                self.state = HC_LOCAL if self.state == OPEN else CLOSED_ENDED
            frames = h.pull()
            assert [(f.type, f.stream_id, f.data, bool(f.flags & END_STREAM)) for f in frames] == [
                (DATA, SID, b"payload", es)]
        else:
            core.reset_stream(SID, 0x8)
            self.state = CLOSED_RST_SENT
            frames = h.pull()
            assert [(f.type, f.stream_id, f.error_code) for f in frames] == [(RST_STREAM, SID, 0x8)]
        self.check_core_state(action)


# Paths from idle to each state: ("L", action) is local, ("P", frame) from the peer.
PATHS = {
    "server": {
        IDLE: [],
        OPEN: [("P", "HEADERS")],
        HC_LOCAL: [("P", "HEADERS"), ("L", "headers+es")],
        HC_REMOTE: [("P", "HEADERS+ES")],
        CLOSED_RST_SENT: [("P", "HEADERS"), ("L", "reset")],
        CLOSED_RST_RECV: [("P", "HEADERS"), ("P", "RST_STREAM")],
        CLOSED_ENDED: [("P", "HEADERS+ES"), ("L", "headers+es")],
    },
    "client": {
        IDLE: [],
        OPEN: [("L", "headers")],
        HC_LOCAL: [("L", "headers+es")],
        HC_REMOTE: [("L", "headers"), ("P", "HEADERS+ES")],
        CLOSED_RST_SENT: [("L", "headers"), ("L", "reset")],
        CLOSED_RST_RECV: [("L", "headers"), ("P", "RST_STREAM")],
        CLOSED_ENDED: [("L", "headers+es"), ("P", "HEADERS+ES")],
    },
}


def run_step(d, step):
    who, what = step
    if who == "L":
        d.local(what)
    else:
        d.peer_last_es = what.endswith("+ES")
        d.peer(what)


@pytest.mark.parametrize("role", ["server", "client"])
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("frame", FRAMES)
def test_every_state_and_frame(role, state, frame):
    d = Driver(role)
    for step in PATHS[role][state]:
        run_step(d, step)
    assert d.state == state
    run_step(d, ("P", frame))
    if not d.dead:
        # whatever happened to stream 1, the connection still serves others
        d.h.expect_usable()


LOCAL_ACTIONS = ["headers", "headers+es", "data", "data+es", "reset"]
steps = st.one_of(st.tuples(st.just("L"), st.sampled_from(LOCAL_ACTIONS)),
                  st.tuples(st.just("P"), st.sampled_from(FRAMES)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(role=st.sampled_from(["server", "client"]), seq=st.lists(steps, max_size=14))
def test_random_sequences_follow_the_model(role, seq):
    d = Driver(role)
    for step in seq:
        if d.dead:
            break
        if step[0] == "L" and not d.can(step[1]):
            continue
        run_step(d, step)
    if not d.dead:
        d.h.expect_usable()


# ---------------------------------------------------------------------------
# Flow control (§5.2, §6.9): the peer's view of the windows it granted.

class FlowPeer:
    """Server core; the peer (client) opens streams and tracks the windows it
    has granted, checking every DATA frame the core writes against them."""

    def __init__(self, nstreams, peer_initial_window=65535):
        self.h = Harness("server")
        self.conn_window = 65535
        self.initial = 65535
        self.windows = {}
        self.queued = {}        # bytes the app queued per stream
        self.received = {}      # bytes the peer got per stream
        self.ended = set()
        if peer_initial_window != 65535:
            self.settings(peer_initial_window)
        for _ in range(nstreams):
            sid = self.h.new_peer_sid()
            self.h.send(self.h.peer.headers(sid))
            self.windows[sid] = self.initial
            self.queued[sid] = b""
            self.received[sid] = b""
            self.h.core.send_headers(sid, RESPONSE)
        self.absorb()

    def absorb(self):
        self.h.pull()
        for f in self.h.frames:             # everything since the last absorb
            assert f.type != GOAWAY and f.type != RST_STREAM, f
            if f.type == DATA:
                n = f.flow_length
                assert n <= 16384, "DATA of %d bytes above the peer's max frame size" % n
                assert n <= self.windows[f.stream_id], "stream %d: %d bytes, window %d" % (
                    f.stream_id, n, self.windows[f.stream_id])
                assert n <= self.conn_window, "connection: %d bytes, window %d" % (n, self.conn_window)
                self.windows[f.stream_id] -= n
                self.conn_window -= n
                self.received[f.stream_id] += f.data
                if f.flags & END_STREAM:
                    self.ended.add(f.stream_id)
        self.h.clear()

    def queue(self, sid, nbytes, end=False):
        data = bytes([sid & 0xff]) * nbytes
        self.queued[sid] += data
        self.h.core.send_data(sid, data, end)
        self.absorb()

    def window_update(self, sid, inc):
        self.h.send(self.h.peer.window_update(sid, inc))
        if sid == 0:
            self.conn_window += inc
        else:
            self.windows[sid] += inc
        self.absorb()

    def settings(self, initial):
        delta = initial - self.initial
        self.initial = initial
        for sid in self.windows:
            self.windows[sid] += delta
        self.h.send(self.h.peer.settings([(INITIAL_WINDOW_SIZE, initial)]))
        self.absorb()

    def check_no_stall(self):
        """Everything the windows allow has been written."""
        for sid, data in self.queued.items():
            left = len(data) - len(self.received[sid])
            assert left >= 0
            if left:
                assert self.windows[sid] <= 0 or self.conn_window <= 0, (
                    "stream %d holds %d bytes with windows stream=%d connection=%d"
                    % (sid, left, self.windows[sid], self.conn_window))
            assert self.received[sid] == data[:len(self.received[sid])]


flow_ops = st.one_of(
    st.tuples(st.just("queue"), st.integers(0, 2), st.integers(0, 40000)),
    st.tuples(st.just("wu-stream"), st.integers(0, 2), st.integers(1, 30000)),
    st.tuples(st.just("wu-conn"), st.just(0), st.integers(1, 50000)),
    st.tuples(st.just("settings"), st.just(0), st.integers(0, 100000)),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(flow_ops, max_size=25))
def test_flow_control_windows_are_respected(ops):
    fp = FlowPeer(3)
    sids = sorted(fp.windows)
    for op, i, n in ops:
        if op == "queue":
            fp.queue(sids[i], n)
        elif op == "wu-stream":
            fp.window_update(sids[i], n)
        elif op == "wu-conn":
            fp.window_update(0, n)
        else:
            fp.settings(n)
        fp.check_no_stall()
    # open every window wide: everything queued arrives, in order
    fp.settings(1 << 24)
    fp.window_update(0, 1 << 28)
    for sid in sids:
        if fp.windows[sid] <= 0:
            fp.window_update(sid, 1 - fp.windows[sid] + (1 << 20))
    fp.check_no_stall()
    for sid in sids:
        assert fp.received[sid] == fp.queued[sid]


def test_resumes_after_window_update():
    fp = FlowPeer(1)
    sid = sorted(fp.windows)[0]
    fp.queue(sid, 100000, end=True)
    assert len(fp.received[sid]) == 65535 and sid not in fp.ended
    fp.window_update(sid, 10000)                 # the connection window is 0 too
    assert len(fp.received[sid]) == 65535
    fp.window_update(0, 5000)
    assert len(fp.received[sid]) == 70535
    fp.window_update(0, 100000)
    assert len(fp.received[sid]) == 75535        # the stream window limits now
    fp.window_update(sid, 30000)
    assert fp.received[sid] == fp.queued[sid] and sid in fp.ended


def test_settings_initial_window_size_resumes_and_shrinks():
    fp = FlowPeer(1)
    sid = sorted(fp.windows)[0]
    fp.window_update(0, 1 << 20)
    fp.queue(sid, 70000)
    assert len(fp.received[sid]) == 65535
    fp.settings(65535 + 1000)                    # +1000 for every open stream
    assert len(fp.received[sid]) == 66535
    fp.settings(1000)                            # now 65535 below zero
    fp.window_update(sid, 65535)
    assert len(fp.received[sid]) == 66535        # window back to 1000 - 1000 = 0
    fp.window_update(sid, 3465)
    assert fp.received[sid] == fp.queued[sid]
    fp.check_no_stall()


@pytest.mark.parametrize("increment", [1, 100, 1000, 7000])
def test_small_connection_window_is_shared_round_robin(increment):
    """Two streams with data queued and a connection window that opens a
    little at a time: both make progress, turn by turn."""
    fp = FlowPeer(2, peer_initial_window=1 << 20)
    a, b = sorted(fp.windows)
    fp.queue(a, 200000)
    fp.queue(b, 200000)
    start_a, start_b = len(fp.received[a]), len(fp.received[b])
    assert fp.conn_window == 0
    for _ in range(20):
        fp.window_update(0, increment)
        fp.check_no_stall()
    got_a = len(fp.received[a]) - start_a
    got_b = len(fp.received[b]) - start_b
    assert got_a + got_b == 20 * increment
    assert abs(got_a - got_b) <= increment, (got_a, got_b)


@settings(max_examples=60, deadline=None)
@given(incs=st.lists(st.integers(1, 40000), min_size=2, max_size=30))
def test_connection_window_round_robin_random(incs):
    """Whatever the sizes of the connection window openings, while both
    streams have data and stream window the DATA frames alternate between
    them: neither is ever served twice in a row."""
    fp = FlowPeer(2, peer_initial_window=1 << 20)
    a, b = sorted(fp.windows)
    fp.queue(a, 1000000)     # more than the 30 x 40000 the openings can carry
    fp.queue(b, 1000000)
    order = []
    for inc in incs:
        fp.h.send(fp.h.peer.window_update(0, inc))
        fp.conn_window += inc
        order += [f.stream_id for f in fp.h.frames if f.type == DATA]
        fp.absorb()
        fp.check_no_stall()
    assert sum(incs) == len(fp.received[a]) + len(fp.received[b]) - 65535
    assert all(x != y for x, y in zip(order, order[1:])), order
    assert a in order and b in order
