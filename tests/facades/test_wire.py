"""What the servers put on the wire when they stop, when a call's deadline
passes and when they are told to compress, read frame by frame by an
independent HTTP/2 client (the h2 package, tests/core/h2peer) on a real
socket, and as grpcio clients see it. grpcio's servers run the same tests
where they are the reference."""
import asyncio
import gzip
import socket
import struct
import subprocess
import sys
import threading

import grpc
import pytest

from tests.core.h2peer import H2GrpcClient
from tests.security.certs import material

from .drivers import GRPCPY, HANG, Behaviour, RunningServer, facade_modules, is_aio, raw_call, register, wait_for

HEADERS, RST_STREAM, GOAWAY = 1, 3, 7
NO_ERROR, INTERNAL_ERROR = 0, 2


class WirePeer:
    """An h2 gRPC client on a blocking socket that keeps every frame it
    receives: (type, flags, stream id, payload). GOAWAY frames are recorded
    and kept from h2 (which accepts nothing after one); h2 answers PINGs."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=HANG)
        self.h2 = H2GrpcClient(divert_goaway=True)
        self.frames = []
        self.eof = False
        self._pending = b""
        self.send()

    def send(self):
        data = self.h2.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except OSError:
                pass    # the server closed first: what it sent is still read

    def call(self, path, messages, end=True, timeout=None):
        sid = self.h2.request(path.encode(), timeout=timeout)
        self.h2.send_messages(sid, messages, end=end)
        self.send()
        return self.h2.stream(sid)

    def read_until(self, done=lambda: False):
        """Read until done() or the end of the connection."""
        while not done() and not self.eof:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                break
            buf = self._pending + data
            pos = 0
            while len(buf) - pos >= 9:
                end = pos + 9 + int.from_bytes(buf[pos:pos + 3], "big")
                if end > len(buf):
                    break
                sid = int.from_bytes(buf[pos + 5:pos + 9], "big") & 0x7FFFFFFF
                self.frames.append((buf[pos + 3], buf[pos + 4], sid, buf[pos + 9:end]))
                pos = end
            self._pending = buf[pos:]
            self.h2.receive(buf[:pos])
            self.send()
        return done()

    def goaways(self):
        """(last stream id, error code, debug data) of each GOAWAY, in order."""
        out = []
        for ftype, _flags, _sid, payload in self.frames:
            if ftype == GOAWAY:
                last, code = struct.unpack_from(">II", payload)
                out.append((last & 0x7FFFFFFF, code, payload[8:]))
        return out

    def close(self):
        self.sock.close()


def stop(srv, grace):
    """Stop the server from this thread; returns a wait() for the end."""
    if is_aio(srv.facade):
        future = asyncio.run_coroutine_threadsafe(srv.server.stop(grace), srv.lt.loop)
        return lambda: future.result(HANG) is None
    event = srv.server.stop(grace)
    return lambda: event.wait(HANG)


def status(st, name=b"grpc-status"):
    """From the trailers, or the headers of a trailers-only response."""
    return st.trailer(name) if st.trailers is not None else st.header(name)


@pytest.fixture(params=GRPCPY)
def grpcpy_server_facade(request):
    return request.param


# --------------------------------------------------------------- shutdown

@pytest.mark.parametrize("grace", [None, 5.0])
def test_clean_stop_sends_only_no_error_goaways(fresh_server, grpcpy_server_facade, grace):
    """Nothing in flight: every GOAWAY of the stop says NO_ERROR, and the
    last one names the last stream the server processed."""
    srv = fresh_server(grpcpy_server_facade)
    path = register(Behaviour("unary_unary", [("return", b"r")]))
    peer = WirePeer(srv.port)
    try:
        st = peer.call(path, [b"q"])
        assert peer.read_until(lambda: st.ended)
        assert st.trailer(b"grpc-status") == b"0"
        stopped = stop(srv, grace)
        peer.read_until()
        assert stopped()
    finally:
        peer.close()
    goaways = peer.goaways()
    assert goaways and [code for _, code, _ in goaways] == [NO_ERROR] * len(goaways), goaways
    assert goaways[-1][0] == st.stream_id


def test_stop_cutting_off_a_call_says_why(fresh_server, grpcpy_server_facade):
    """A call cut off by the stop ends UNAVAILABLE "Cancelling all calls",
    and the last GOAWAY carries INTERNAL_ERROR with those words: what
    grpc-core's server sends when it cancels all calls."""
    srv = fresh_server(grpcpy_server_facade)
    release = threading.Event()
    b = Behaviour("unary_unary", [("observe", "entered", lambda c: True), ("wait_event", release), ("return", b"r")])
    path = register(b)
    peer = WirePeer(srv.port)
    try:
        st = peer.call(path, [b"q"])
        assert wait_for(lambda: "entered" in b.observed)
        stopped = stop(srv, None)
        peer.read_until()
        assert stopped()
    finally:
        release.set()
        peer.close()
    assert (status(st), status(st, b"grpc-message")) == (b"14", b"Cancelling all calls")
    assert peer.goaways()[-1][1:] == (INTERNAL_ERROR, b"Cancelling all calls"), peer.goaways()


_GRPCIO_CLIENT = r"""
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
call = channel.unary_unary(sys.argv[2])
print(call(b"q", timeout=10), flush=True)
sys.stdin.readline()                  # the server has stopped
try:
    call(b"q", timeout=2)
except grpc.RpcError as exc:
    print(exc.code().name, flush=True)
channel.close()
"""


@pytest.mark.parametrize("grace", [None, 5.0])
def test_grpcio_client_logs_no_goaway_error_after_a_clean_stop(fresh_server, grpcpy_server_facade, grace):
    """grpcio's client prints every GOAWAY with an error code to stderr; a
    clean stop gives it nothing to print."""
    srv = fresh_server(grpcpy_server_facade)
    path = register(Behaviour("unary_unary", [("return", b"r")]))
    client = subprocess.Popen([sys.executable, "-c", _GRPCIO_CLIENT, srv.target, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "b'r'"
        assert stop(srv, grace)()
        out, err = client.communicate("\n", timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
    assert out.split() == ["UNAVAILABLE"]
    assert "goaway" not in err.lower(), err


def test_aio_stop_closes_connections_in_their_tls_handshake():
    """A TLS connection that has not finished its handshake when the aio
    server stops is closed by the stop (not by the 10 s handshake
    timeout)."""
    srv = RunningServer("grpcpy-aio", credentials=lambda top: top.ssl_server_credentials([material()["server"]]))
    stopped = False
    try:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=HANG)
        with sock:
            assert wait_for(lambda: srv.lt.call(lambda: len(srv.server._handshaking)) == 1)
            srv.stop()
            stopped = True
            sock.settimeout(3.0)    # well inside the handshake timeout
            try:
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass
    finally:
        if not stopped:
            srv.stop()


# --------------------------------------------------------------- deadlines

def test_deadline_on_the_server_sends_status_then_no_error_reset(fresh_server, server_facade):
    """The server's deadline passes while the client is still sending:
    trailers DEADLINE_EXCEEDED, then RST_STREAM NO_ERROR, as grpc-core's
    server does (a CANCEL could reach the client before the trailers are
    read, and the call would end CANCELLED)."""
    srv = fresh_server(server_facade)
    path = register(Behaviour("stream_unary", [("wait_done",)]))
    peer = WirePeer(srv.port)
    try:
        st = peer.call(path, [b"q"], end=False, timeout=b"200m")
        assert peer.read_until(lambda: st.reset is not None)
    finally:
        peer.close()
    assert status(st) == b"4"
    assert st.reset == NO_ERROR
    resets = [f for f in peer.frames if f[0] == RST_STREAM and f[2] == st.stream_id]
    headers = [i for i, f in enumerate(peer.frames) if f[0] == HEADERS and f[2] == st.stream_id]
    assert len(resets) == 1 and peer.frames.index(resets[0]) > headers[-1]


@pytest.mark.parametrize("kind", ["unary_unary", "stream_unary"])
def test_grpcio_client_short_deadlines_never_cancelled(fresh_server, grpcpy_server_facade, kind):
    """Many calls whose deadline passes on both sides at about the same
    time, the client still sending: DEADLINE_EXCEEDED every time."""
    srv = fresh_server(grpcpy_server_facade)
    steps = [("read_all",)] if kind == "stream_unary" else []
    path = register(Behaviour(kind, steps + [("wait_done",)]))
    channel = grpc.insecure_channel(srv.target)
    codes = []
    try:
        method = getattr(channel, kind)(path)
        grpc.channel_ready_future(channel).result(timeout=HANG)
        for i in range(40):
            hold = threading.Event()

            def requests():
                yield b"q"
                hold.wait(HANG)     # still sending when the deadline passes
            try:
                if kind == "stream_unary":
                    method(requests(), timeout=0.002 + 0.001 * (i % 10))
                else:
                    method(b"q", timeout=0.002 + 0.001 * (i % 10))
                codes.append("OK")
            except grpc.RpcError as exc:
                codes.append(exc.code().name)
            finally:
                hold.set()
    finally:
        channel.close()
    assert set(codes) == {"DEADLINE_EXCEEDED"}, codes


# ------------------------------------------------------------- compression

def _gzip_messages(frames):
    return [gzip.decompress(p) if flag else p for flag, p in frames]


def test_server_default_compression_without_grpc_accept_encoding(fresh_server, server_facade):
    """A server whose default is gzip compresses for a request that names
    no grpc-accept-encoding (older grpc-go clients send none): only what
    the client listed limits the choice."""
    _, top = facade_modules(server_facade)
    srv = fresh_server(server_facade, compression=top.Compression.Gzip)
    body = b"compressible " * 100
    path = register(Behaviour("unary_stream", [("yield", body), ("yield", body)]))
    headers, frames, trailers = raw_call(srv.port, path, [b"q"])
    assert trailers["grpc-status"] == "0"
    assert headers.get("grpc-encoding") == "gzip"
    assert [flag for flag, _ in frames] == [1, 1]
    assert _gzip_messages(frames) == [body, body]


def test_server_compressed_unary_without_grpc_accept_encoding(fresh_server, server_facade):
    """The interop case server_compressed_unary as a client without
    grpc-accept-encoding runs it: the handler asks for gzip, the response
    message arrives compressed."""
    srv = fresh_server(server_facade)
    body = b"compressible " * 100
    kind = "unary_stream" if server_facade == "grpcio-aio" else "unary_unary"   # grpc.aio ignores it for unary
    path = register(Behaviour(kind, [("set_compression", "gzip"),
                                     ("yield" if kind == "unary_stream" else "return", body)]))
    headers, frames, trailers = raw_call(srv.port, path, [b"q"])
    assert trailers["grpc-status"] == "0"
    assert headers.get("grpc-encoding") == "gzip"
    assert [flag for flag, _ in frames] == [1]
    assert _gzip_messages(frames) == [body]
