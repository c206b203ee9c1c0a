"""Frames as bytes for driving a sans-IO H2Connection from the outside.

`Peer` plays the remote endpoint: it builds frames with grpcpy's writers and
its own HPACK encoder, and reads what the core sends with a FrameParser of
its own. `Harness` joins a Peer to a core (either role), runs the preface and
SETTINGS exchange, and offers the assertions the protocol tests need:
"the core answered with GOAWAY(code) and closed", "RST_STREAM(code) on
stream N and the connection still works", "ignored".
"""
from grpcpy import _cext as c

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# error codes (RFC 9113 §7)
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

ERROR_NAMES = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM",
    0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR", 0xB: "ENHANCE_YOUR_CALM",
}

# settings identifiers
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

MAX_WINDOW = 2 ** 31 - 1
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/svc/Method"),
           (b":authority", b"test.local"), (b"content-type", b"application/grpc")]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0")]


def build(fn, *args, **kwargs):
    """Run one grpcpy serializer on a fresh WriteBuffer; return the bytes."""
    wb = c.WriteBuffer()
    fn(wb, *args, **kwargs)
    return wb.take()


def raw(ftype, flags, stream_id, payload=b""):
    """A frame exactly as given: any type, flags, stream id (reserved bit
    included) and payload, for malformed input."""
    return build(c.write_frame, ftype, flags, stream_id, payload)


def parse_frames(data, max_frame_size=2 ** 24 - 1):
    """Every frame in `data` (whole frames only), parsed by a fresh grpcpy
    FrameParser. Frames the parser flags as stream errors are kept."""
    parser = c.FrameParser(max_frame_size=max_frame_size, max_continuations=1 << 20,
                           max_header_block_size=1 << 30)
    return parser.receive(data)


class Peer:
    """The remote endpoint. `client=True` when it plays the client (the core
    under test is then the server)."""

    def __init__(self, client):
        self.client = client
        self.encoder = c.Encoder()
        self.decoder = c.Decoder(max_header_list_size=1 << 30)
        self.parser = c.FrameParser(max_frame_size=2 ** 24 - 1, max_continuations=1 << 20,
                                    max_header_block_size=1 << 30)
        self._magic_seen = client          # a client peer reads no magic
        self._buf = b""
        self.header_blocks = []

    # -- building ------------------------------------------------------------

    def preface(self, settings=()):
        out = PREFACE if self.client else b""
        return out + self.settings(settings)

    def settings(self, settings=()):
        return build(c.write_settings_frame, list(settings), False)

    def settings_ack(self):
        return build(c.write_settings_frame, (), True)

    def block(self, headers):
        """An HPACK block from this peer's encoder (updates its table)."""
        return self.encoder.encode(headers)

    def headers(self, sid, headers=None, end_stream=False, priority=None, pad_length=0, max_frame_size=16384):
        if headers is None:
            headers = REQUEST if self.client else RESPONSE
        return build(c.write_headers_frame, sid, self.block(headers), end_stream, max_frame_size,
                     priority, pad_length)

    def headers_raw_block(self, sid, block, end_stream=False, end_headers=True, priority=None):
        """HEADERS with a given block; priority fields packed by hand so a
        self-dependency (which the serializer refuses) can be sent."""
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        payload = block
        if priority is not None:
            dep, weight, exclusive = priority
            flags |= PRIORITY_FLAG
            payload = ((dep | (0x80000000 if exclusive else 0)).to_bytes(4, "big")
                       + bytes([weight - 1]) + block)
        return raw(HEADERS, flags, sid, payload)

    def continuation(self, sid, fragment=b"", end_headers=False):
        return build(c.write_continuation_frame, sid, fragment, end_headers)

    def data(self, sid, payload=b"", end_stream=False, pad_length=0):
        return build(c.write_data_frame, sid, payload, end_stream, pad_length)

    def rst(self, sid, code=CANCEL):
        return build(c.write_rst_stream_frame, sid, code)

    def window_update(self, sid, increment):
        if increment == 0:
            return raw(WINDOW_UPDATE, 0, sid, b"\x00\x00\x00\x00")
        return build(c.write_window_update_frame, sid, increment)

    def priority(self, sid, depends_on=0, weight=16, exclusive=False):
        if depends_on == sid:
            return raw(PRIORITY, 0, sid, depends_on.to_bytes(4, "big") + bytes([weight - 1]))
        return build(c.write_priority_frame, sid, depends_on, weight, exclusive)

    def ping(self, opaque=b"\x00" * 8, ack=False):
        return build(c.write_ping_frame, opaque, ack)

    def goaway(self, last_stream_id, code=NO_ERROR, debug=b""):
        return build(c.write_goaway_frame, last_stream_id, code, debug)

    def push_promise(self, sid, promised, headers=None):
        return build(c.write_push_promise_frame, sid, promised, self.block(headers or REQUEST))

    # -- reading what the core sent -------------------------------------------

    def read(self, data):
        """Parse the core's output and return its frames. Every HEADERS block
        is decoded (keeping this peer's HPACK table in step) and recorded in
        `header_blocks` as (stream_id, headers)."""
        if not self._magic_seen:
            data = self._buf + data
            if len(data) < len(PREFACE):
                self._buf = data
                return []
            assert data[:len(PREFACE)] == PREFACE, "client core did not send the preface"
            data = data[len(PREFACE):]
            self._buf = b""
            self._magic_seen = True
        frames = self.parser.receive(data)
        for f in frames:
            if f.type == HEADERS:
                self.header_blocks.append((f.stream_id, self.decoder.decode(f.data)))
        return frames


def describe(frames):
    return [repr(f) for f in frames]


def goaways(frames):
    return [f for f in frames if f.type == GOAWAY]


def rsts(frames, sid=None):
    return [f for f in frames if f.type == RST_STREAM and (sid is None or f.stream_id == sid)]


def of_type(frames, ftype, sid=None):
    return [f for f in frames if f.type == ftype and (sid is None or f.stream_id == sid)]


def events_of(events, kind, sid=None):
    return [e for e in events if e.kind == kind and (sid is None or e.stream_id == sid)]


class Harness:
    """A core of one role joined to a Peer of the other.

    `role` is the core's role: "server" (the peer is a client) or "client".
    After construction the preface and SETTINGS exchange is complete and
    nothing is pending either way.
    """

    def __init__(self, role="server", config=None, handshake=True, core=None, **config_kw):
        self.role = role
        if core is None:
            if config is None:
                config_kw.setdefault("bdp_probing", False)
                config = c.H2Config(**config_kw)
            core = c.H2Connection(client=(role == "client"), config=config)
        self.core = core
        self.peer = Peer(client=(role == "server"))
        self.now = 0.0
        self.events = []
        self.frames = []           # everything the core sent, parsed
        self.core.initiate(self.now)
        self.next_peer_sid = 1 if role == "server" else 2
        if handshake:
            self.handshake()

    def handshake(self, settings=()):
        self.pull()
        self.send(self.peer.preface(settings))
        assert of_type(self.frames, SETTINGS), describe(self.frames)
        acks = [f for f in self.frames if f.type == SETTINGS and f.flags & ACK]
        assert acks, "core did not acknowledge the peer's SETTINGS: %r" % describe(self.frames)
        self.send(self.peer.settings_ack())
        assert events_of(self.events, c.EV_SETTINGS_ACKED)
        self.clear()

    def clear(self):
        self.events = []
        self.frames = []

    def pull(self):
        """Frames the core has written since the last pull."""
        out = self.core.data_to_send()
        frames = self.peer.read(out) if out else []
        self.frames += frames
        return frames

    def send(self, *chunks):
        """Feed bytes to the core; return (events, frames it wrote back)."""
        events = []
        for chunk in chunks:
            events += self.core.receive_data(chunk, self.now)
        self.events += events
        return events, self.pull()

    def timeout(self, now):
        self.now = now
        events = self.core.handle_timeout(now)
        self.events += events
        return events, self.pull()

    def new_peer_sid(self):
        """The next unused stream id of the peer's parity (skipping any the
        test used by hand)."""
        last = self.core.last_peer_stream_id
        sid = max(self.next_peer_sid, last + 2 if last else 0)
        self.next_peer_sid += 2
        return sid

    # -- opening a stream, whichever side initiates ---------------------------

    def open_stream(self, end_stream=False):
        """Open a stream the usual way for this role: the peer sends a request
        (server core) or the core sends one (client core) which the peer then
        sees. Returns the stream id; the stream is open on both sides."""
        if self.role == "server":
            sid = self.new_peer_sid()
            ev, _ = self.send(self.peer.headers(sid, end_stream=end_stream))
            assert events_of(ev, c.EV_HEADERS, sid), ev
            return sid
        s = self.core.open_stream()
        self.core.send_headers(s.stream_id, REQUEST, end_stream)
        frames = self.pull()
        assert of_type(frames, HEADERS, s.stream_id)
        return s.stream_id

    # -- outcomes ------------------------------------------------------------

    def expect_connection_error(self, code, frames=None):
        frames = self.frames if frames is None else frames
        ga = goaways(frames)
        assert len(ga) == 1, "expected one GOAWAY(%s), core sent %r" % (ERROR_NAMES.get(code), describe(frames))
        assert ga[0].error_code == code, "GOAWAY with %s, expected %s" % (
            ERROR_NAMES.get(ga[0].error_code, ga[0].error_code), ERROR_NAMES.get(code))
        assert self.core.closed, "core still open after a connection error"
        term = events_of(self.events, c.EV_CONNECTION_TERMINATED)
        assert term and term[0].error_code == code, self.events
        # a closed core ignores further input and writes nothing more
        assert self.core.receive_data(self.peer.ping(), self.now) == []
        assert self.core.data_to_send() == b""

    def expect_stream_error(self, sid, code, frames=None):
        frames = self.frames if frames is None else frames
        assert not goaways(frames), "unexpected GOAWAY: %r" % describe(frames)
        r = rsts(frames, sid)
        assert len(r) == 1, "expected one RST_STREAM(%s) on stream %d, core sent %r" % (
            ERROR_NAMES.get(code), sid, describe(frames))
        assert r[0].error_code == code, "RST_STREAM with %s, expected %s" % (
            ERROR_NAMES.get(r[0].error_code, r[0].error_code), ERROR_NAMES.get(code))
        assert not self.core.closed
        assert sid not in self.core.streams
        self.expect_usable()

    def expect_ignored(self, frames=None):
        frames = self.frames if frames is None else frames
        assert not goaways(frames), describe(frames)
        assert not rsts(frames), describe(frames)
        assert not self.core.closed
        self.expect_usable()

    def expect_usable(self):
        """Prove the connection still works: complete a fresh stream both ways
        (request with a body, response with a body and END_STREAM)."""
        self.clear()
        assert not self.core.closed
        if self.role == "server":
            sid = self.new_peer_sid()
            ev, _ = self.send(self.peer.headers(sid), self.peer.data(sid, b"ping", end_stream=True))
            assert [e.kind for e in ev if e.stream_id == sid] == [c.EV_HEADERS, c.EV_DATA], ev
            assert dict(events_of(ev, c.EV_HEADERS, sid)[0].headers)[b":path"] == b"/svc/Method"
            self.core.send_headers(sid, RESPONSE)
            self.core.send_data(sid, b"pong", end_stream=True)
            frames = self.pull()
            assert [f.type for f in frames if f.stream_id == sid] == [HEADERS, DATA], describe(frames)
            assert frames[-1].data == b"pong" and frames[-1].flags & END_STREAM
        else:
            sid = self.open_stream(end_stream=True)
            ev, _ = self.send(self.peer.headers(sid, RESPONSE), self.peer.data(sid, b"pong", end_stream=True))
            assert [e.kind for e in ev if e.stream_id == sid] == [c.EV_HEADERS, c.EV_DATA], ev
            assert ev[-1].data == b"pong" and ev[-1].end_stream
        assert sid not in self.core.streams
        self.clear()
