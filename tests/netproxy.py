"""A TCP proxy for tests: forwards both ways, sees the HTTP/2 frames of
plaintext connections, and can black-hole them.

    with NetProxy(("127.0.0.1", server_port)) as proxy:
        channel = grpcpy.insecure_channel(proxy.target)
        ...
        proxy.frames("c2s", PING)          # frames the client sent, by type
        proxy.black_hole()                 # stop forwarding, close nothing

Black-holing models a peer that vanished behind a NAT or a dead load
balancer: no FIN, no RST, the bytes just stop. Each accepted connection is
served by one thread (select over its two sockets).
"""
import select
import socket
import struct
import threading
import time

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
FLAG_ACK = 0x1
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Frame:
    __slots__ = ("type", "flags", "stream_id", "payload", "at")

    def __init__(self, type_, flags, stream_id, payload, at):
        self.type = type_
        self.flags = flags
        self.stream_id = stream_id
        self.payload = payload
        self.at = at

    @property
    def ack(self):
        return bool(self.flags & FLAG_ACK)

    def goaway(self):
        """(last_stream_id, error_code, debug) of a GOAWAY frame."""
        last, code = struct.unpack(">II", self.payload[:8])
        return last & 0x7FFFFFFF, code, self.payload[8:]

    def __repr__(self):
        return "Frame(type=%d, flags=%#x, stream=%d, %r)" % (self.type, self.flags, self.stream_id, self.payload[:24])


class FrameReader:
    """Splits one direction's bytes into frames (after the client preface)."""

    def __init__(self, client_side):
        self._skip = len(PREFACE) if client_side else 0
        self._buf = b""
        self.frames = []

    def feed(self, data, now=None):
        if self._skip:
            n = min(self._skip, len(data))
            data = data[n:]
            self._skip -= n
        self._buf += data
        buf = self._buf
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            # payloads of bulk frames are not kept
            payload = bytes(buf[9:9 + length]) if buf[3] not in (DATA, HEADERS, CONTINUATION) else b""
            self.frames.append(Frame(buf[3], buf[4], sid, payload, time.monotonic() if now is None else now))
            buf = buf[9 + length:]
        self._buf = buf


class _Link:
    def __init__(self, proxy, downstream, upstream):
        self.proxy = proxy
        self.down = downstream
        self.up = upstream
        self.c2s = FrameReader(client_side=True)
        self.s2c = FrameReader(client_side=False)
        self.closed = False

    def run(self):
        socks = [self.down, self.up]
        try:
            while not self.proxy._stopping:
                if self.proxy._holes:
                    time.sleep(0.02)     # black hole: read nothing, close nothing
                    continue
                readable, _, _ = select.select(socks, [], [], 0.05)
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        return
                    other = self.up if sock is self.down else self.down
                    (self.c2s if sock is self.down else self.s2c).feed(data)
                    try:
                        other.sendall(data)
                    except OSError:
                        return
        finally:
            self.closed = True
            for sock in socks:
                try:
                    sock.close()
                except OSError:
                    pass


class NetProxy:
    def __init__(self, upstream):
        self.upstream = upstream
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self.target = "127.0.0.1:%d" % self.port
        self.links = []
        self._holes = False
        self._stopping = False
        self._threads = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self):
        while not self._stopping:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            if self._stopping:
                down.close()
                return
            try:
                up = socket.create_connection(self.upstream)
            except OSError:
                down.close()
                continue
            for sock in (down, up):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, down, up)
            self.links.append(link)
            thread = threading.Thread(target=link.run, daemon=True)
            self._threads.append(thread)
            thread.start()

    def black_hole(self, on=True):
        """Stop (or resume) forwarding on every connection, closing nothing."""
        self._holes = on

    def frames(self, direction, type_=None, link=None):
        """Frames seen in ``direction`` ("c2s" or "s2c"), of one type if given,
        on every connection or on ``link`` (an index into ``links``)."""
        links = self.links if link is None else [self.links[link]]
        out = []
        for ln in links:
            out += [f for f in getattr(ln, direction).frames if type_ is None or f.type == type_]
        return out

    def pings(self, direction, link=None):
        """PINGs (not ACKs) sent in ``direction``."""
        return [f for f in self.frames(direction, PING, link) if not f.ack]

    def close(self):
        self._stopping = True
        try:
            self._listener.close()
        except OSError:
            pass
        try:   # wake accept()
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            pass
        for thread in self._threads:
            thread.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_for(predicate, timeout=10.0, interval=0.01):
    """Poll ``predicate`` until true; False after ``timeout`` (a bound for a
    hang, never a measured interval)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
