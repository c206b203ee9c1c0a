"""Peers built from the standard library and the `h2` package, for what a
gRPC server cannot show or will not do.

* `H2Recorder`: a TLS (or plaintext) HTTP/2 server that records, for each
  request, the `:authority` it carried and the name the client asked for in
  its TLS ClientHello (SNI), and answers every call with one message b"ok"
  and status OK. (A gRPC servicer never sees `:authority`.)
* `HostileServer`: accepts TCP connections and then misbehaves in the TLS
  handshake - closes after the ClientHello, resets, answers with something
  that is not TLS, sends half of a real ServerHello flight and closes or
  stalls, or never says anything.
* `stall_clients`: TCP clients that stall a server's TLS handshake - silent,
  half a ClientHello, or a whole ClientHello and then nothing.

Every thread here is a daemon and every socket is closed by close().
"""
import os
import socket
import ssl
import struct
import tempfile
import threading

import h2.config
import h2.connection
import h2.events
import h2.exceptions


def _server_context(pair, alpn=("h2",)):
    key, chain = pair
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for name, data in (("chain.pem", chain), ("key.pem", key)):
            paths.append(os.path.join(folder, name))
            with open(paths[-1], "wb") as fh:
                fh.write(data)
        ctx.load_cert_chain(*paths)
    ctx.set_alpn_protocols(list(alpn))
    return ctx


class _Acceptor:
    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._sockets = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _keep(self, sock):
        with self._lock:
            self._sockets.append(sock)

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self._keep(sock)
            threading.Thread(target=self.handle, args=(sock,), daemon=True).start()

    def handle(self, sock):
        raise NotImplementedError

    def close(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)   # wakes the accept() (close() alone does not)
        except OSError:
            pass
        self.listener.close()
        with self._lock:
            socks, self._sockets = self._sockets, []
        for sock in socks:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class H2Recorder(_Acceptor):
    """See the module docstring. `requests` holds (sni, headers dict) per
    request; `sni` is None for a plaintext server or a client that sent no
    server name."""

    def __init__(self, pair=None):
        self.requests = []
        self._ctx = None
        if pair is not None:
            self._ctx = _server_context(pair)
            self._ctx.sni_callback = self._on_sni
        self._local = threading.local()   # the handshake and its SNI callback share a thread
        super().__init__()

    def _on_sni(self, ssl_object, server_name, _ctx):
        self._local.sni = server_name

    def handle(self, sock):
        sni = None
        try:
            if self._ctx is not None:
                sock.settimeout(10)
                sock = self._ctx.wrap_socket(sock, server_side=True)
                self._keep(sock)
                sni = getattr(self._local, "sni", None)
                sock.settimeout(None)
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
            conn.initiate_connection()
            sock.sendall(conn.data_to_send())
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        self.requests.append((sni, dict(event.headers)))
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        conn.send_headers(event.stream_id, [(":status", "200"), ("content-type", "application/grpc")])
                        conn.send_data(event.stream_id, struct.pack(">BI", 0, 2) + b"ok")
                        conn.send_headers(event.stream_id, [("grpc-status", "0")], end_stream=True)
                sock.sendall(conn.data_to_send())
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            sock.close()


def _read_client_hello(sock):
    """The bytes of one whole TLS record (the ClientHello) from sock."""
    data = b""
    while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


HOSTILE_MODES = ("close after ClientHello", "reset", "not TLS", "half ServerHello then close",
                 "half ServerHello then stall", "silent")


class HostileServer(_Acceptor):
    """See the module docstring; `mode` is one of HOSTILE_MODES."""

    def __init__(self, mode, pair):
        assert mode in HOSTILE_MODES
        self.mode = mode
        self._ctx = _server_context(pair)
        super().__init__()

    def handle(self, sock):
        mode = self.mode
        try:
            if mode == "silent":
                return            # kept open until close()
            hello = _read_client_hello(sock)
            if mode == "close after ClientHello":
                sock.shutdown(socket.SHUT_WR)   # an orderly end of stream mid-handshake
            elif mode == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            elif mode == "not TLS":
                sock.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                sock.shutdown(socket.SHUT_WR)
            else:
                # a real server's first flight, cut in half
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = self._ctx.wrap_bio(incoming, outgoing, server_side=True)
                incoming.write(hello)
                try:
                    tls.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                flight = outgoing.read()
                sock.sendall(flight[:max(1, len(flight) // 2)])
                if mode == "half ServerHello then close":
                    sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _client_hello():
    """The bytes of a real TLS ClientHello (offering h2)."""
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["h2"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


STALL_MODES = ("silent", "half ClientHello", "ClientHello then nothing")


def stall_clients(port, per_mode=3, host="127.0.0.1"):
    """Open `per_mode` stalling TCP clients of each of STALL_MODES against
    port; returns their sockets (the caller closes them)."""
    hello = _client_hello()
    socks = []
    for mode in STALL_MODES:
        for _ in range(per_mode):
            sock = socket.create_connection((host, port), timeout=10)
            socks.append(sock)
            if mode == "half ClientHello":
                sock.sendall(hello[:len(hello) // 2])
            elif mode == "ClientHello then nothing":
                sock.sendall(hello)
    return socks
