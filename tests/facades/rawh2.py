"""A blocking HTTP/2 client over a real socket, built on the `h2` package,
for what gRPC clients never do: open streams and stay silent, open more
streams than the server allows, reset a stream before its request.

h2 keeps to the server's MAX_CONCURRENT_STREAMS once it has read it; a test
that must exceed the limit calls `ignore_stream_limit()` after the SETTINGS
exchange (or opens its streams before `pump()` reads the server's SETTINGS).
h2 also takes any GOAWAY as the end of the connection and accepts nothing
after it; a server that drains its calls after a GOAWAY is watched by keeping
GOAWAY frames from h2 (`goaways` records them)."""
import socket
import struct
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings


def grpc_message(payload):
    return struct.pack(">BI", 0, len(payload)) + payload


class Stream:
    def __init__(self, sid):
        self.sid = sid
        self.headers = None
        self.trailers = None
        self.data = b""
        self.reset = None         # the RST_STREAM error code, if reset by the server

    @property
    def ended(self):
        return self.status is not None or self.reset is not None

    @property
    def status(self):
        """grpc-status (int) from the trailers, or from a trailers-only
        response; None before the end."""
        for block in (self.trailers, self.headers):
            if block and "grpc-status" in block:
                return int(block["grpc-status"])
        return None


class RawH2Client:
    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port))
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.streams = {}
        self.remote_settings = {}
        self.settings_received = False
        self.goaways = []         # (last stream id, error code) of each GOAWAY received
        self._inbuf = b""
        self.flush()

    def handshake(self):
        """Read the server's SETTINGS (acknowledged): False if none came."""
        return self.pump(lambda: self.settings_received, timeout=10.0)

    def ignore_stream_limit(self):
        """Let h2 open streams past the server's MAX_CONCURRENT_STREAMS
        (its own view of the limit is lifted; the server's is not)."""
        code = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
        self.conn.remote_settings[code] = 2 ** 31 - 1
        self.conn.remote_settings.acknowledge()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def open(self, path, timeout=None, end_stream=False):
        """A new stream for `path` (HEADERS only, nothing else)."""
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
                   ("content-type", "application/grpc"), ("te", "trailers")]
        if timeout is not None:
            headers.append(("grpc-timeout", timeout))
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self.streams[sid] = Stream(sid)
        return self.streams[sid]

    def send_request(self, stream, payload):
        self.conn.send_data(stream.sid, grpc_message(payload), end_stream=True)

    def reset(self, stream):
        self.conn.reset_stream(stream.sid, h2.errors.ErrorCodes.CANCEL)

    def pump(self, until=None, timeout=10.0):
        """Read and answer (SETTINGS and PING ACKs, flow control) until
        `until()` holds, or once when `until` is None; False when `timeout`
        passed first or the server closed the connection."""
        deadline = time.monotonic() + timeout
        self.flush()
        while True:
            if until is not None and until():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(min(remaining, 0.05) if until is None else remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                if until is None:
                    return True
                continue
            if not data:
                return until is not None and until()
            for ev in self.conn.receive_data(self._without_goaway(data)):
                self._event(ev)
            self.flush()

    def _without_goaway(self, data):
        """The whole frames in what has arrived, GOAWAY frames taken out."""
        buf = self._inbuf + data
        out = []
        pos = 0
        while len(buf) - pos >= 9:
            length = int.from_bytes(buf[pos:pos + 3], "big")
            if len(buf) - pos < 9 + length:
                break
            frame = buf[pos:pos + 9 + length]
            if frame[3] == 0x7:
                self.goaways.append((int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF,
                                     int.from_bytes(frame[13:17], "big")))
            else:
                out.append(frame)
            pos += 9 + length
        self._inbuf = buf[pos:]
        return b"".join(out)

    def _event(self, ev):
        stream = self.streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            self.settings_received = True
            for key, changed in ev.changed_settings.items():
                self.remote_settings[key] = changed.new_value
        elif isinstance(ev, h2.events.ResponseReceived) and stream is not None:
            stream.headers = dict(ev.headers)
        elif isinstance(ev, h2.events.TrailersReceived) and stream is not None:
            stream.trailers = dict(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            if stream is not None:
                stream.data += ev.data
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset) and stream is not None:
            if stream.trailers is None and stream.status is None:
                stream.reset = ev.error_code

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
