"""Protocol violations by the peer, one table row each (RFC 9113).

Every row names the rule, the frames the peer sends once the preface and
SETTINGS exchange is done (or instead of it, for preface rows), and what the
RFC makes of them:

  Conn(code)    connection error: exactly one GOAWAY with `code`, the core is
                closed and ignores anything after
  Stream(code)  stream error: RST_STREAM(code) on the row's target stream, no
                GOAWAY, and the connection still completes a new stream
  Ignored()     nothing sent back, and the connection still completes a stream
  AnyOf(...)    where the RFC leaves the endpoint a choice

Rows run for the server core (the peer is a client) and, where the rule
applies to that role, for the client core (the peer is a server).
"""
import collections

import pytest

from grpcpy import _cext as c

from .frame_factory import (
    ACK, CANCEL, COMPRESSION_ERROR, CONTINUATION, DATA, ENABLE_PUSH, END_HEADERS, END_STREAM,
    ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, GOAWAY, HEADERS, INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE, MAX_WINDOW, NO_ERROR, PING, PREFACE, PRIORITY, PROTOCOL_ERROR, REFUSED_STREAM,
    REQUEST, RESPONSE, RST_STREAM, SETTINGS, SETTINGS_TIMEOUT, STREAM_CLOSED, WINDOW_UPDATE, Harness,
    describe, events_of, goaways, of_type, raw, rsts,
)


class Conn:
    def __init__(self, code):
        self.code = code

    def check(self, h):
        h.expect_connection_error(self.code)

    def __repr__(self):
        return "Conn(%#x)" % self.code


class Stream:
    def __init__(self, code):
        self.code = code

    def check(self, h):
        h.expect_stream_error(h.target, self.code)

    def __repr__(self):
        return "Stream(%#x)" % self.code


class Ignored:
    def check(self, h):
        h.expect_ignored()

    def __repr__(self):
        return "Ignored()"


class AnyOf:
    def __init__(self, *options):
        self.options = options

    def check(self, h):
        if goaways(h.frames):
            picked = [o for o in self.options if isinstance(o, Conn)]
        elif rsts(h.frames):
            picked = [o for o in self.options if isinstance(o, Stream)]
        else:
            picked = [o for o in self.options if isinstance(o, Ignored)]
        assert picked, "outcome %r is none of %r" % (describe(h.frames), self.options)
        picked[0].check(h)

    def __repr__(self):
        return "AnyOf(%s)" % ", ".join(map(repr, self.options))


Case = collections.namedtuple("Case", "id desc roles send expect config handshake")


def case(id, desc, send, expect, roles=("server", "client"), config=None, handshake=True):
    return Case(id, desc, roles, send, expect, config or {}, handshake)


# -- helpers for the rows ----------------------------------------------------------

def idle_peer_sid(h):
    """A stream id of the peer's parity that the peer has not used."""
    return h.next_peer_sid + 2 * 10


def opened(h, end_stream=False):
    """Open a stream (either role), make it the row's target, forget the
    frames of the set-up."""
    h.target = h.open_stream(end_stream=end_stream)
    h.clear()
    return h.target


def remote_half_closed(h):
    """A stream on which the peer has sent END_STREAM and we have not."""
    if h.role == "server":
        return opened(h, end_stream=True)
    sid = opened(h)
    h.send(h.peer.headers(sid, RESPONSE), h.peer.data(sid, b"x", end_stream=True))
    h.clear()
    return sid


def peer_reset(h):
    """A stream the peer has reset."""
    sid = opened(h)
    h.send(h.peer.rst(sid, CANCEL))
    assert events_of(h.events, c.EV_STREAM_RESET, sid)
    h.clear()
    return sid


def ended_both_ways(h):
    """A stream closed by END_STREAM in both directions."""
    if h.role == "server":
        sid = opened(h, end_stream=True)
        h.core.send_headers(sid, RESPONSE, end_stream=True)
    else:
        sid = opened(h, end_stream=True)
        h.send(h.peer.headers(sid, RESPONSE, end_stream=True))
    assert sid not in h.core.streams
    h.clear()
    return sid


def allocated(h):
    """A stream the client core allocated with open_stream() but has sent
    nothing on: the peer cannot know it, it is idle on the wire."""
    return h.core.open_stream().stream_id


def headers_without_end(h, sid):
    block = h.peer.block(REQUEST if h.role == "server" else RESPONSE)
    return raw(HEADERS, 0, sid, block)


def flood_continuations(h):
    sid = idle_peer_sid(h) if h.role == "server" else opened(h)
    return [headers_without_end(h, sid)] + [raw(CONTINUATION, 0, sid, b"") for _ in range(5)]


def over_stream_window(h, pad):
    """65535 + 1 flow-controlled bytes on one stream (4 frames)."""
    sid = opened(h)
    if pad:
        # 4 x (1 + 16000 + 255) = 65024 in the first 4 frames, 1 + 255 + 256 more
        return [h.peer.data(sid, b"x" * 16000, pad_length=pad) for _ in range(4)] + [
            h.peer.data(sid, b"x" * 256, pad_length=pad)]
    return [h.peer.data(sid, b"x" * 16384) for _ in range(4)] + [h.peer.data(sid, b"x")]


def self_dependent_headers(h):
    if h.role == "server":
        h.target = idle_peer_sid(h)
        block = h.peer.block(REQUEST)
    else:
        opened(h)
        block = h.peer.block(RESPONSE)
    return [h.peer.headers_raw_block(h.target, block, priority=(h.target, 16, False))]


def rapid_reset(h):
    chunks = []
    for _ in range(6):
        sid = h.new_peer_sid()
        chunks += [h.peer.headers(sid), h.peer.rst(sid, CANCEL)]
    return chunks


def ping_flood(h):
    h.core.set_transport_paused(True)
    return [h.peer.ping(i.to_bytes(8, "big")) for i in range(11)]


# -- the table -------------------------------------------------------------------------

CASES = [
    # §3.4 connection preface
    case("bad-preface", "client preface is not the HTTP/2 magic (§3.4)",
         lambda h: [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"], Conn(PROTOCOL_ERROR),
         roles=("server",), handshake=False),
    case("preface-not-settings", "first frame after the magic is not SETTINGS (§3.4)",
         lambda h: [(PREFACE if h.role == "server" else b"") + h.peer.ping()], Conn(PROTOCOL_ERROR),
         handshake=False),
    case("preface-settings-ack", "first frame is a SETTINGS ACK, not SETTINGS (§3.4)",
         lambda h: [(PREFACE if h.role == "server" else b"") + h.peer.settings_ack()], Conn(PROTOCOL_ERROR),
         handshake=False),
    # §5.1 idle streams
    case("data-idle", "DATA on an idle stream (§5.1, idle)",
         lambda h: [h.peer.data(idle_peer_sid(h), b"x")], Conn(PROTOCOL_ERROR)),
    case("data-idle-local-parity", "DATA on an idle stream of our own parity (§5.1, idle)",
         lambda h: [h.peer.data(9 if h.role == "client" else 8, b"x")], Conn(PROTOCOL_ERROR)),
    case("rst-idle", "RST_STREAM on an idle stream (§6.4)",
         lambda h: [h.peer.rst(idle_peer_sid(h))], Conn(PROTOCOL_ERROR)),
    case("window-update-idle", "WINDOW_UPDATE on an idle stream (§5.1, idle)",
         lambda h: [h.peer.window_update(idle_peer_sid(h), 100)], Conn(PROTOCOL_ERROR)),
    case("priority-idle", "PRIORITY on an idle stream is allowed (§5.1, §6.3)",
         lambda h: [h.peer.priority(idle_peer_sid(h), 0)], Ignored()),
    case("data-allocated-not-opened", "DATA on a stream open_stream() allocated but never sent (§5.1, idle)",
         lambda h: [h.peer.data(allocated(h), b"x")], Conn(PROTOCOL_ERROR), roles=("client",)),
    case("headers-allocated-not-opened", "HEADERS on a stream allocated but never sent (§5.1, idle)",
         lambda h: [h.peer.headers(allocated(h), RESPONSE)], Conn(PROTOCOL_ERROR), roles=("client",)),
    case("rst-allocated-not-opened", "RST_STREAM on a stream allocated but never sent (§6.4)",
         lambda h: [h.peer.rst(allocated(h))], Conn(PROTOCOL_ERROR), roles=("client",)),
    case("window-update-allocated-not-opened", "WINDOW_UPDATE on a stream allocated but never sent (§5.1)",
         lambda h: [h.peer.window_update(allocated(h), 5)], Conn(PROTOCOL_ERROR), roles=("client",)),
    # §5.1.1 stream identifiers
    case("headers-even-from-client", "HEADERS opening an even stream from a client (§5.1.1)",
         lambda h: [h.peer.headers(2)], Conn(PROTOCOL_ERROR), roles=("server",)),
    case("headers-server-initiated", "HEADERS opening a server-initiated stream, push disabled (§5.1.1, §8.4)",
         lambda h: [h.peer.headers(2, RESPONSE)], Conn(PROTOCOL_ERROR), roles=("client",)),
    case("headers-unopened-client-stream", "HEADERS on a client stream the client never opened (§5.1, idle)",
         lambda h: [h.peer.headers(7, RESPONSE)], Conn(PROTOCOL_ERROR), roles=("client",)),
    case("stream-id-backwards", "a new stream id lower than one already opened (§5.1.1)",
         lambda h: [h.peer.headers(5), h.peer.headers(3)], Conn(PROTOCOL_ERROR), roles=("server",)),
    # §5.1 half-closed (remote)
    case("data-half-closed-remote", "DATA after the peer's END_STREAM (§5.1 half-closed (remote), §6.1)",
         lambda h: [h.peer.data(remote_half_closed(h), b"late")], Stream(STREAM_CLOSED)),
    case("headers-half-closed-remote", "HEADERS after the peer's END_STREAM (§5.1 half-closed (remote))",
         lambda h: [h.peer.headers(remote_half_closed(h), end_stream=True)], Stream(STREAM_CLOSED)),
    case("window-update-half-closed-remote", "WINDOW_UPDATE in half-closed (remote) is allowed (§5.1)",
         lambda h: [h.peer.window_update(remote_half_closed(h), 10)], Ignored()),
    # §5.1 closed
    case("data-after-peer-rst", "DATA after the peer's RST_STREAM (§5.1 closed)",
         lambda h: [h.peer.data(peer_reset(h), b"late")], AnyOf(Stream(STREAM_CLOSED), Conn(STREAM_CLOSED))),
    case("headers-after-peer-rst", "HEADERS after the peer's RST_STREAM (§5.1 closed)",
         lambda h: [h.peer.headers(peer_reset(h), end_stream=True)],
         AnyOf(Stream(STREAM_CLOSED), Conn(STREAM_CLOSED))),
    case("priority-after-peer-rst", "PRIORITY after the peer's RST_STREAM is allowed (§5.1 closed)",
         lambda h: [h.peer.priority(peer_reset(h), 0)], Ignored()),
    case("rst-after-peer-rst", "a second RST_STREAM from the peer (§5.1 closed, §5.4.2)",
         lambda h: [h.peer.rst(peer_reset(h))], Ignored()),
    case("data-after-end-both", "DATA on a stream closed by END_STREAM both ways (§5.1 closed)",
         lambda h: [h.peer.data(ended_both_ways(h), b"late")], AnyOf(Conn(STREAM_CLOSED), Stream(STREAM_CLOSED))),
    case("window-update-after-end", "WINDOW_UPDATE just after our END_STREAM is allowed (§5.1 closed)",
         lambda h: [h.peer.window_update(ended_both_ways(h), 10)], Ignored()),
    # §6.9 WINDOW_UPDATE
    case("window-update-0-stream", "WINDOW_UPDATE of 0 on a stream (§6.9)",
         lambda h: [h.peer.window_update(opened(h), 0)], Stream(PROTOCOL_ERROR)),
    case("window-update-0-connection", "WINDOW_UPDATE of 0 on the connection (§6.9)",
         lambda h: [h.peer.window_update(0, 0)], Conn(PROTOCOL_ERROR)),
    case("window-overflow-stream", "stream window above 2^31-1 (§6.9.1)",
         lambda h: [h.peer.window_update(opened(h), MAX_WINDOW)], Stream(FLOW_CONTROL_ERROR)),
    case("window-overflow-connection", "connection window above 2^31-1 (§6.9.1)",
         lambda h: [h.peer.window_update(0, MAX_WINDOW)], Conn(FLOW_CONTROL_ERROR)),
    case("window-update-bad-length", "WINDOW_UPDATE payload of 3 bytes (§6.9)",
         lambda h: [raw(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01")], Conn(FRAME_SIZE_ERROR)),
    # §6.9.1 peer exceeding our windows
    case("data-over-stream-window", "DATA beyond the advertised stream window (§6.9.1)",
         lambda h: over_stream_window(h, pad=0), Stream(FLOW_CONTROL_ERROR)),
    case("padded-data-over-stream-window", "padding counts against the stream window (§6.1, §6.9.1)",
         lambda h: over_stream_window(h, pad=255), Stream(FLOW_CONTROL_ERROR)),
    case("data-over-connection-window", "one DATA frame larger than the connection window (§6.9.1)",
         lambda h: [h.peer.data(opened(h), b"x" * 70000)], Conn(FLOW_CONTROL_ERROR),
         config=dict(connection_window_size=65535, initial_window_size=1 << 20, max_frame_size=1 << 17)),
    # §6.5 SETTINGS
    case("settings-initial-window-overflow", "SETTINGS_INITIAL_WINDOW_SIZE overflowing an open stream (§6.9.2)",
         lambda h: [h.peer.window_update(opened(h), MAX_WINDOW - 65535),
                    h.peer.settings([(INITIAL_WINDOW_SIZE, 65536)])], Conn(FLOW_CONTROL_ERROR)),
    case("settings-enable-push-2", "SETTINGS_ENABLE_PUSH of 2 (§6.5.2)",
         lambda h: [raw(SETTINGS, 0, 0, ENABLE_PUSH.to_bytes(2, "big") + (2).to_bytes(4, "big"))], Conn(PROTOCOL_ERROR)),
    case("settings-enable-push-1-from-server", "a server sets SETTINGS_ENABLE_PUSH to 1 (§6.5.2)",
         lambda h: [h.peer.settings([(ENABLE_PUSH, 1)])], Conn(PROTOCOL_ERROR), roles=("client",)),
    case("settings-initial-window-2-31", "SETTINGS_INITIAL_WINDOW_SIZE of 2^31 (§6.5.2)",
         lambda h: [raw(SETTINGS, 0, 0, INITIAL_WINDOW_SIZE.to_bytes(2, "big") + (2 ** 31).to_bytes(4, "big"))],
         Conn(FLOW_CONTROL_ERROR)),
    case("settings-max-frame-small", "SETTINGS_MAX_FRAME_SIZE below 2^14 (§6.5.2)",
         lambda h: [raw(SETTINGS, 0, 0, MAX_FRAME_SIZE.to_bytes(2, "big") + (16383).to_bytes(4, "big"))],
         Conn(PROTOCOL_ERROR)),
    case("settings-max-frame-large", "SETTINGS_MAX_FRAME_SIZE of 2^24 (§6.5.2)",
         lambda h: [raw(SETTINGS, 0, 0, MAX_FRAME_SIZE.to_bytes(2, "big") + (2 ** 24).to_bytes(4, "big"))],
         Conn(PROTOCOL_ERROR)),
    case("settings-bad-length", "SETTINGS payload not a multiple of 6 (§6.5)",
         lambda h: [raw(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00")], Conn(FRAME_SIZE_ERROR)),
    case("settings-ack-with-payload", "SETTINGS ACK carrying a payload (§6.5)",
         lambda h: [raw(SETTINGS, ACK, 0, b"\x00\x03\x00\x00\x00\x01")], Conn(FRAME_SIZE_ERROR)),
    case("settings-on-stream", "SETTINGS on a stream (§6.5)",
         lambda h: [raw(SETTINGS, 0, 1, b"")], Conn(PROTOCOL_ERROR)),
    case("settings-unknown-id", "an unknown setting is ignored (§6.5.2)",
         lambda h: [h.peer.settings([(0x99, 7)])], Ignored()),
    # §6.6 PUSH_PROMISE
    case("push-promise", "PUSH_PROMISE received (push disabled / from a client) (§6.6, §8.4)",
         lambda h: [h.peer.push_promise(opened(h), 2)], Conn(PROTOCOL_ERROR)),
    # §5.3.1 priority
    case("headers-self-dependency", "HEADERS whose priority depends on its own stream (§5.3.1)",
         self_dependent_headers, Stream(PROTOCOL_ERROR)),
    case("priority-self-dependency", "PRIORITY frame depending on its own stream (§5.3.1)",
         lambda h: [h.peer.priority(opened(h), h.target)], Stream(PROTOCOL_ERROR)),
    case("priority-bad-length", "PRIORITY payload of 4 bytes (§6.3)",
         lambda h: [raw(PRIORITY, 0, opened(h), b"\x00\x00\x00\x00")], Stream(FRAME_SIZE_ERROR)),
    # §6.10 CONTINUATION and header blocks
    case("continuation-flood", "CONTINUATION frames beyond max_continuations",
         flood_continuations, Conn(ENHANCE_YOUR_CALM), config=dict(max_continuations=4)),
    case("continuation-without-headers", "CONTINUATION without an open header block (§6.10)",
         lambda h: [raw(CONTINUATION, END_HEADERS, opened(h), b"")], Conn(PROTOCOL_ERROR)),
    case("frame-inside-header-block", "another frame inside a header block (§6.10)",
         lambda h: [headers_without_end(h, idle_peer_sid(h) if h.role == "server" else opened(h)),
                    h.peer.ping()], Conn(PROTOCOL_ERROR)),
    case("continuation-other-stream", "CONTINUATION for another stream inside a header block (§6.10)",
         lambda h: [headers_without_end(h, idle_peer_sid(h) if h.role == "server" else opened(h)),
                    raw(CONTINUATION, END_HEADERS, 101, b"")], Conn(PROTOCOL_ERROR)),
    # §4.2 frame size
    case("data-over-max-frame-size", "DATA larger than SETTINGS_MAX_FRAME_SIZE (§4.2)",
         lambda h: [h.peer.data(opened(h), b"x" * 16385)], Conn(FRAME_SIZE_ERROR)),
    case("headers-over-max-frame-size", "HEADERS larger than SETTINGS_MAX_FRAME_SIZE (§4.2)",
         lambda h: [raw(HEADERS, END_HEADERS, idle_peer_sid(h), b"\x82" * 16385)], Conn(FRAME_SIZE_ERROR),
         roles=("server",)),
    case("ping-bad-length", "PING payload of 7 bytes (§6.7)",
         lambda h: [raw(PING, 0, 0, b"\x00" * 7)], Conn(FRAME_SIZE_ERROR)),
    case("rst-bad-length", "RST_STREAM payload of 3 bytes (§6.4)",
         lambda h: [raw(RST_STREAM, 0, opened(h), b"\x00\x00\x00")], Conn(FRAME_SIZE_ERROR)),
    # frames on stream 0 / not on stream 0
    case("data-stream-0", "DATA on stream 0 (§6.1)",
         lambda h: [raw(DATA, 0, 0, b"x")], Conn(PROTOCOL_ERROR)),
    case("headers-stream-0", "HEADERS on stream 0 (§6.2)",
         lambda h: [raw(HEADERS, END_HEADERS, 0, b"\x82")], Conn(PROTOCOL_ERROR)),
    case("rst-stream-0", "RST_STREAM on stream 0 (§6.4)",
         lambda h: [raw(RST_STREAM, 0, 0, b"\x00\x00\x00\x08")], Conn(PROTOCOL_ERROR)),
    case("ping-on-stream", "PING on a stream (§6.7)",
         lambda h: [raw(PING, 0, 1, b"\x00" * 8)], Conn(PROTOCOL_ERROR)),
    case("goaway-on-stream", "GOAWAY on a stream (§6.8)",
         lambda h: [raw(GOAWAY, 0, 1, b"\x00" * 8)], Conn(PROTOCOL_ERROR)),
    # padding
    case("data-bad-padding", "DATA padding as long as the payload (§6.1)",
         lambda h: [raw(DATA, 0x8, opened(h), bytes([5]) + b"abcd")], Conn(PROTOCOL_ERROR)),
    case("headers-bad-padding", "HEADERS padding longer than the payload (§6.2)",
         lambda h: [raw(HEADERS, 0x8 | END_HEADERS, idle_peer_sid(h), bytes([9]) + b"\x82")],
         Conn(PROTOCOL_ERROR), roles=("server",)),
    # §5.5 extensions
    case("unknown-frame-type", "a frame of unknown type is ignored (§5.5)",
         lambda h: [raw(0x42, 0xff, 0, b"whatever")], Ignored()),
    case("reserved-bit", "the reserved bit of a stream id is ignored (§4.1)",
         lambda h: [raw(DATA, 0, opened(h) | 0x80000000, b"ok")], Ignored()),
    # HPACK
    case("bad-hpack", "header block that does not decode (§4.3)",
         lambda h: [raw(HEADERS, END_HEADERS | END_STREAM, idle_peer_sid(h) if h.role == "server" else opened(h),
                        b"\x80")], Conn(COMPRESSION_ERROR)),
    case("bad-hpack-truncated", "header block ending inside an integer (§4.3)",
         lambda h: [raw(HEADERS, END_HEADERS, idle_peer_sid(h) if h.role == "server" else opened(h),
                        b"\x3f\xff\xff")], Conn(COMPRESSION_ERROR)),
    # DoS limits
    case("ping-flood-paused", "PINGs while the transport is paused, beyond max_pending_control_frames",
         ping_flood, Conn(ENHANCE_YOUR_CALM), config=dict(max_pending_control_frames=10)),
    case("rapid-reset", "HEADERS + RST_STREAM beyond reset_burst (CVE-2023-44487)",
         rapid_reset, Conn(ENHANCE_YOUR_CALM), roles=("server",), config=dict(reset_burst=5, reset_rate=0.0)),
]


def _runs():
    for row in CASES:
        for role in row.roles:
            yield pytest.param(row, role, id="%s-%s" % (row.id, role))


@pytest.mark.parametrize("row,role", list(_runs()))
def test_violation(row, role):
    h = Harness(role, handshake=row.handshake, **row.config)
    h.target = None
    if not row.handshake:
        h.pull()
        h.clear()
    chunks = row.send(h)
    h.send(*chunks)
    row.expect.check(h)


def test_table_covers_both_roles_where_it_can():
    client_rows = [r for r in CASES if "client" in r.roles]
    assert len(client_rows) >= 40 and len(CASES) >= 60


# -- rows that need more than "send, then look" ------------------------------------------

def test_limits_are_not_hit_at_their_boundary():
    """The DoS limits fire past the limit, not at it: 10 pending PINGs with
    max_pending_control_frames=10, and reset_burst resets, are fine."""
    h = Harness("server", max_pending_control_frames=10, reset_burst=5, reset_rate=0.0)
    h.core.set_transport_paused(True)
    _, frames = h.send(*[h.peer.ping(i.to_bytes(8, "big")) for i in range(10)])
    assert len([f for f in frames if f.type == PING and f.flags & ACK]) == 10
    h.core.set_transport_paused(False)
    h.core.data_to_send()          # the transport drained: the count starts over
    h.core.set_transport_paused(True)
    h.send(*[h.peer.ping(i.to_bytes(8, "big")) for i in range(10)])
    assert not goaways(h.frames)
    h.core.set_transport_paused(False)
    h.clear()
    for _ in range(4):             # + the stream expect_usable opens and ends normally
        sid = h.new_peer_sid()
        h.send(h.peer.headers(sid), h.peer.rst(sid))
    h.expect_ignored()


def test_self_dependent_headers_keep_hpack_in_sync():
    """The block of a HEADERS refused for a self-dependency still goes
    through the decoder: the next request, which refers to the dynamic table
    entries that block added, decodes to the right fields."""
    h = Harness("server")
    custom = REQUEST + [(b"x-custom", b"first-value")]
    block = h.peer.block(custom)
    assert len(block) > 20                  # literal fields, added to the table
    _, frames = h.send(h.peer.headers_raw_block(1, block, priority=(1, 16, False)))
    assert [(f.type, f.stream_id, f.error_code) for f in frames] == [(RST_STREAM, 1, PROTOCOL_ERROR)]
    block2 = h.peer.block(custom)
    assert len(block2) < 10                 # all indexed
    ev, frames = h.send(h.peer.headers_raw_block(3, block2, end_stream=True))
    assert not frames
    got = events_of(ev, c.EV_HEADERS, 3)
    assert got and got[0].headers == custom
    # the refused stream counts as used: a lower id may not be opened now
    h.expect_usable()


def test_self_dependent_headers_use_up_the_stream_id():
    """The refused stream was opened and reset by us: a HEADERS on it again
    is a late frame (ignored after our RST_STREAM), not a new stream, and a
    lower id cannot be opened afterwards."""
    h = Harness("server")
    block = h.peer.block(REQUEST)
    _, frames = h.send(h.peer.headers_raw_block(5, block, priority=(5, 16, False)))
    assert [(f.type, f.stream_id) for f in frames] == [(RST_STREAM, 5)]
    ev, frames = h.send(h.peer.headers(5, end_stream=True))
    assert not events_of(ev, c.EV_HEADERS) and not frames and not h.core.closed
    h.clear()
    h.send(h.peer.headers(3))
    h.expect_connection_error(PROTOCOL_ERROR)


def test_header_list_too_large_is_a_stream_outcome():
    h = Harness("server", max_header_list_size=400)
    big = REQUEST + [(b"x-big", b"v" * 500)]
    ev, frames = h.send(h.peer.headers(1, big))
    assert not goaways(frames)
    assert [e.kind for e in ev] == [c.EV_HEADER_LIST_TOO_LARGE] and ev[0].stream_id == 1
    assert 1 in h.core.streams              # the application decides (gRPC: RESOURCE_EXHAUSTED)
    h.core.reset_stream(1, REFUSED_STREAM)
    h.clear()
    h.expect_usable()


def test_more_streams_than_max_concurrent_streams_are_refused():
    h = Harness("server", max_concurrent_streams=1)
    ev, frames = h.send(h.peer.headers(1))
    assert events_of(ev, c.EV_HEADERS, 1) and not frames
    ev, frames = h.send(h.peer.headers(3), h.peer.data(3, b"body"))
    assert [(f.type, f.stream_id, f.error_code) for f in frames] == [(RST_STREAM, 3, REFUSED_STREAM)]
    assert not events_of(ev, c.EV_HEADERS, 3) and 3 not in h.core.streams
    # stream 1 is untouched and completes; then there is room again
    ev, _ = h.send(h.peer.data(1, b"body", end_stream=True))
    assert events_of(ev, c.EV_DATA, 1)
    h.core.send_headers(1, RESPONSE, end_stream=True)
    h.clear()
    h.expect_usable()


def test_new_stream_after_our_goaway_is_refused():
    for role in ("server",):
        h = Harness(role)
        sid = h.open_stream()
        h.core.close_connection(NO_ERROR)
        frames = h.pull()
        assert [(f.type, f.error_code, f.last_stream_id) for f in frames] == [
            (GOAWAY, NO_ERROR, sid if role == "server" else 0)]
        newer = h.new_peer_sid() + (20 if role == "client" else 0)
        _, frames = h.send(h.peer.headers(newer, REQUEST if role == "server" else RESPONSE))
        assert [(f.type, f.stream_id, f.error_code) for f in frames] == [(RST_STREAM, newer, REFUSED_STREAM)], \
            describe(frames)
        # the stream opened before the GOAWAY still completes
        if role == "server":
            h.send(h.peer.data(sid, b"req", end_stream=True))
            h.core.send_headers(sid, RESPONSE)
            h.core.send_data(sid, b"resp", end_stream=True)
            assert [f.type for f in h.pull()] == [HEADERS, DATA]
        else:
            h.core.end_stream(sid)
            h.send(h.peer.headers(sid, RESPONSE), h.peer.data(sid, b"resp", end_stream=True))
            assert events_of(h.events, c.EV_DATA, sid)[-1].end_stream
        assert sid not in h.core.streams and not h.core.closed
        with pytest.raises(c.H2ProtocolError):
            h.core.open_stream()


def test_settings_not_acknowledged_in_time():
    for role in ("server", "client"):
        h = Harness(role, handshake=False, settings_timeout=5.0)
        h.send(h.peer.preface())                      # no ACK of the core's SETTINGS
        assert h.core.next_timer() == 5.0
        ev, frames = h.timeout(4.9)
        assert not ev and not frames and not h.core.closed
        ev, frames = h.timeout(5.0)
        assert [(f.type, f.error_code) for f in frames] == [(GOAWAY, SETTINGS_TIMEOUT)]
        assert events_of(ev, c.EV_SETTINGS_TIMEOUT) and h.core.closed


def test_settings_acknowledged_in_time_disarms_the_timer():
    h = Harness("server", handshake=False, settings_timeout=5.0)
    h.send(h.peer.preface(), h.peer.settings_ack())
    assert h.core.next_timer() == float("inf")
    h.clear()
    ev, frames = h.timeout(100.0)
    assert not frames and not h.core.closed
    # a later SETTINGS re-arms it
    h.core.update_settings({INITIAL_WINDOW_SIZE: 100000}, 100.0)
    assert h.core.next_timer() == 105.0
    h.timeout(105.0)
    h.expect_connection_error(SETTINGS_TIMEOUT)


def test_stream_ids_exhausted():
    h = Harness("client")
    h.core._skip_stream_ids(2 ** 31 - 3)     # test hook: the next id the client allocates
    s = h.core.open_stream()
    assert s.stream_id == 2 ** 31 - 3
    s = h.core.open_stream()
    assert s.stream_id == 2 ** 31 - 1
    assert not h.core.can_open_stream
    with pytest.raises(c.StreamIdsExhausted):
        h.core.open_stream()
    # the streams already open still work, on the wire too
    h.core.send_headers(2 ** 31 - 1, REQUEST, end_stream=True)
    frames = h.pull()
    assert [(f.type, f.stream_id) for f in frames] == [(HEADERS, 2 ** 31 - 1)]
    ev, _ = h.send(h.peer.headers(2 ** 31 - 1, RESPONSE, end_stream=True))
    assert events_of(ev, c.EV_HEADERS, 2 ** 31 - 1)
    with pytest.raises(ValueError):
        h.core._skip_stream_ids(4)           # backwards / wrong parity is refused
    with pytest.raises(ValueError):
        Harness("server").core._skip_stream_ids(3)


def test_peer_stream_ids_up_to_the_last_one():
    """A client may use stream id 2^31-1; the server accepts it."""
    h = Harness("server")
    ev, frames = h.send(h.peer.headers(2 ** 31 - 1, end_stream=True))
    assert events_of(ev, c.EV_HEADERS, 2 ** 31 - 1) and not frames
