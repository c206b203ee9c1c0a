"""The `h2` package as an independent HTTP/2 peer for the grpcpy core.

Everything stays in memory: the bytes one side writes are fed to the other
until neither has anything to say. The h2 side is driven by hand-written
gRPC logic here (message framing, flow control, status headers), so what
the tests check is the grpcpy core against a second, unrelated reading of
RFC 9113 and the gRPC HTTP/2 protocol.

Two things h2 cannot do are worked around at the byte level, openly:
  * h2 treats any received GOAWAY as the end of the connection (its state
    machine accepts nothing after it), so the h2 client can divert GOAWAY
    frames before h2 sees them (`divert_goaway`) and record them instead;
  * h2 cannot send anything after its own GOAWAY, so a server that answers
    an in-flight call after announcing GOAWAY injects a hand-built GOAWAY
    frame (`inject_goaway`) and keeps using h2 for the rest.
"""
import struct

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from hyperframe.frame import GoAwayFrame

from grpcpy import _cext as c


def grpc_frame(payload, flag=0):
    """One gRPC length-prefixed message."""
    return struct.pack(">BI", flag, len(payload)) + payload


class MessageSplitter:
    """Reassembles gRPC length-prefixed messages from DATA payloads."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 5:
            flag, length = struct.unpack_from(">BI", self.buf)
            if len(self.buf) < 5 + length:
                break
            out.append((flag, bytes(self.buf[5:5 + length])))
            del self.buf[:5 + length]
        return out

    @property
    def partial(self):
        return len(self.buf) > 0


def split_frames(data):
    """(type, flags, stream_id, payload, raw) for each whole frame in data
    (data_to_send() always hands over whole frames)."""
    out = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 9, "partial frame header in data_to_send() output"
        length = int.from_bytes(data[pos:pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        sid = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        end = pos + 9 + length
        assert end <= len(data), "partial frame in data_to_send() output"
        out.append((ftype, flags, sid, bytes(data[pos + 9:end]), bytes(data[pos:end])))
        pos = end
    return out


FT_GOAWAY = 7


class Stream:
    """What the h2 side knows about one stream."""

    def __init__(self, stream_id):
        self.stream_id = stream_id
        self.headers = None          # request (server) or response (client) headers
        self.informational = []
        self.trailers = None
        self.messages = []           # (flag, payload)
        self.splitter = MessageSplitter()
        self.ended = False           # END_STREAM received
        self.reset = None            # RST_STREAM error code received
        self.data_frames = 0
        self.data_bytes = 0
        # outgoing, waiting for flow-control window
        self.out = bytearray()
        self.out_end = False
        self.out_trailers = None

    def header(self, name):
        for k, v in self.headers or ():
            if k == name:
                return v
        return None

    def trailer(self, name):
        for k, v in self.trailers or ():
            if k == name:
                return v
        return None

    @property
    def payloads(self):
        return [p for _, p in self.messages]


class H2Peer:
    """An h2 connection with per-stream bookkeeping and flow-controlled
    sending. `auto_ack`: credit received DATA back at once."""

    def __init__(self, client_side, auto_ack=True):
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=client_side, header_encoding=None))
        self.conn.initiate_connection()
        self.streams = {}
        self.events = []             # every h2 event, in order
        self.auto_ack = auto_ack
        self.unacked = {}            # stream id -> bytes received, not credited
        self.injected = bytearray()
        self.terminated = None       # ConnectionTerminated event

    def stream(self, sid):
        st = self.streams.get(sid)
        if st is None:
            st = self.streams[sid] = Stream(sid)
        return st

    # -- bytes -------------------------------------------------------------

    def receive(self, data):
        events = self.conn.receive_data(data)
        self.events += events
        for ev in events:
            self._handle(ev)
        self.flush()
        return events

    def _handle(self, ev):
        if isinstance(ev, (h2.events.RequestReceived, h2.events.ResponseReceived)):
            self.stream(ev.stream_id).headers = list(ev.headers)
        elif isinstance(ev, h2.events.InformationalResponseReceived):
            self.stream(ev.stream_id).informational.append(list(ev.headers))
        elif isinstance(ev, h2.events.TrailersReceived):
            self.stream(ev.stream_id).trailers = list(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            st = self.stream(ev.stream_id)
            st.data_frames += 1
            st.data_bytes += len(ev.data)
            st.messages += st.splitter.feed(ev.data)
            if ev.flow_controlled_length:
                if self.auto_ack:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                else:
                    self.unacked[ev.stream_id] = self.unacked.get(ev.stream_id, 0) + ev.flow_controlled_length
        elif isinstance(ev, h2.events.StreamEnded):
            self.stream(ev.stream_id).ended = True
        elif isinstance(ev, h2.events.StreamReset):
            self.stream(ev.stream_id).reset = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.terminated = ev

    def ack(self, sid):
        """Credit what was received on sid (when auto_ack is off)."""
        n = self.unacked.pop(sid, 0)
        if n and sid in self.conn.streams:
            self.conn.acknowledge_received_data(n, sid)

    def data_to_send(self):
        out = bytes(self.injected) + self.conn.data_to_send()
        self.injected.clear()
        return out

    def inject_goaway(self, last_stream_id, error_code=0, debug=b""):
        """A GOAWAY frame on the wire without closing h2's state machine."""
        self.flush()
        self.injected += self.conn.data_to_send()
        f = GoAwayFrame(0)
        f.last_stream_id = last_stream_id
        f.error_code = error_code
        f.additional_data = debug
        self.injected += f.serialize()

    # -- sending, within the flow-control windows --------------------------

    def send_messages(self, sid, payloads, end=False, flag=0):
        st = self.stream(sid)
        for p in payloads:
            st.out += grpc_frame(p, flag)
        if end:
            st.out_end = True
        self.flush()

    def send_raw(self, sid, data, end=False):
        st = self.stream(sid)
        st.out += data
        if end:
            st.out_end = True
        self.flush()

    def send_trailers(self, sid, trailers):
        """Trailers (END_STREAM) after whatever data is still queued."""
        self.stream(sid).out_trailers = list(trailers)
        self.flush()

    def flush(self):
        for st in list(self.streams.values()):
            if st.out_end is None:
                continue
            if st.stream_id not in self.conn.streams or st.reset is not None:
                st.out.clear()
                continue
            try:
                while st.out:
                    window = self.conn.local_flow_control_window(st.stream_id)
                    n = min(len(st.out), window, self.conn.max_outbound_frame_size)
                    if n <= 0:
                        break
                    chunk = bytes(st.out[:n])
                    del st.out[:n]
                    end = not st.out and st.out_end and st.out_trailers is None
                    self.conn.send_data(st.stream_id, chunk, end_stream=end)
                    if end:
                        st.out_end = None
                if not st.out and st.out_trailers is not None:
                    trailers, st.out_trailers = st.out_trailers, None
                    self.conn.send_headers(st.stream_id, trailers, end_stream=True)
                    st.out_end = None
                elif not st.out and st.out_end:
                    self.conn.end_stream(st.stream_id)
                    st.out_end = None
            except h2.exceptions.StreamClosedError:
                st.out.clear()
                st.out_end = None


class H2GrpcServer(H2Peer):
    """The h2 side as a gRPC server; the tests answer requests by hand."""

    def __init__(self, auto_ack=True):
        super().__init__(client_side=False, auto_ack=auto_ack)

    def respond_headers(self, sid, metadata=(), extra=()):
        self.conn.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc")]
                               + list(extra) + list(metadata))

    def respond_status(self, sid, code, message=None, metadata=()):
        trailers = [(b"grpc-status", b"%d" % code)]
        if message is not None:
            trailers.append((b"grpc-message", message))
        self.send_trailers(sid, trailers + list(metadata))

    def trailers_only(self, sid, code, message=None, metadata=(), status=b"200"):
        headers = [(b":status", status), (b"content-type", b"application/grpc"), (b"grpc-status", b"%d" % code)]
        if message is not None:
            headers.append((b"grpc-message", message))
        self.conn.send_headers(sid, headers + list(metadata), end_stream=True)


class H2GrpcClient(H2Peer):
    """The h2 side as a gRPC client."""

    def __init__(self, auto_ack=True, divert_goaway=False):
        super().__init__(client_side=True, auto_ack=auto_ack)
        self.divert_goaway = divert_goaway
        self.goaways = []            # (last_stream_id, error_code) diverted

    def receive(self, data):
        if self.divert_goaway:
            kept = bytearray()
            for ftype, _flags, _sid, payload, raw in split_frames(data):
                if ftype == FT_GOAWAY:
                    last, code = struct.unpack_from(">II", payload)
                    self.goaways.append((last & 0x7FFFFFFF, code))
                else:
                    kept += raw
            data = bytes(kept)
        return super().receive(data)

    def request(self, method, metadata=(), timeout=None, encoding=None, end=False,
                content_type=b"application/grpc", http_method=b"POST", extra=()):
        sid = self.conn.get_next_available_stream_id()
        headers = [(b":method", http_method), (b":scheme", b"http"), (b":path", method),
                   (b":authority", b"h2peer.test"), (b"te", b"trailers"),
                   (b"content-type", content_type)]
        if timeout is not None:
            headers.append((b"grpc-timeout", timeout))
        if encoding is not None:
            headers.append((b"grpc-encoding", encoding))
        headers += list(extra) + list(metadata)
        self.conn.send_headers(sid, headers, end_stream=end)
        st = self.stream(sid)
        if end:
            st.out_end = None
        return sid


# ---------------------------------------------------------------------------
# pumps


class ClientLink:
    """grpcpy ClientConnection <-> H2GrpcServer."""

    def __init__(self, server=None, consume=True, **client_kw):
        self.now = 0.0
        self.client = c.ClientConnection(authority=b"h2peer.test", **client_kw)
        self.server = server or H2GrpcServer()
        self.events = []
        self.consume = consume       # call message_consumed for each message
        self.client.initiate(self.now)
        self.pump()

    def pump(self, max_rounds=100000):
        for _ in range(max_rounds):
            self._collect(self.client.take_events())
            c2s = self.client.data_to_send()
            s2c = self.server.data_to_send()
            if not c2s and not s2c:
                return
            if c2s:
                self.server.receive(c2s)
            if s2c:
                self._collect(self.client.receive_data(s2c, self.now))
        raise AssertionError("peers did not settle")

    def _collect(self, events):
        for ev in events:
            if self.consume and ev.kind == c.CE_MESSAGE:
                self.client.message_consumed(ev.call, ev.value)
            self.events.append(ev)

    def advance(self, seconds):
        self.now += seconds
        self._collect(self.client.handle_timeout(self.now))
        self.pump()

    def of(self, call, kind=None):
        return [e for e in self.events if e.call is call and (kind is None or e.kind == kind)]

    def messages(self, call):
        return [e.data for e in self.of(call, c.CE_MESSAGE)]

    def ended(self, call):
        found = self.of(call, c.CE_CALL_ENDED)
        assert len(found) == 1, "expected one CALL_ENDED, got %r" % (found,)
        return found[0]


class ServerLink:
    """H2GrpcClient <-> grpcpy ServerConnection, with an application
    callback `app(link, event)` run for every server-side call event."""

    def __init__(self, app=None, client=None, **server_kw):
        self.now = 0.0
        self.server = c.ServerConnection(**server_kw)
        self.client = client or H2GrpcClient()
        self.app = app
        self.events = []
        self.server.initiate(self.now)
        self.pump()

    def pump(self, max_rounds=100000):
        for _ in range(max_rounds):
            self._dispatch(self.server.take_events())
            c2s = self.client.data_to_send()
            s2c = self.server.data_to_send()
            if not c2s and not s2c:
                return
            if c2s:
                self._dispatch(self.server.receive_data(c2s, self.now))
            if s2c:
                self.client.receive(s2c)
        raise AssertionError("peers did not settle")

    def _dispatch(self, events):
        for ev in events:
            self.events.append(ev)
            if self.app is not None:
                self.app(self, ev)

    def advance(self, seconds):
        self.now += seconds
        self._dispatch(self.server.handle_timeout(self.now))
        self.pump()

    def kinds(self, call):
        return [e.kind for e in self.events if e.call is call]
