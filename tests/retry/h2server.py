"""A gRPC server made of the `h2` package over real sockets, for what a
grpcio server cannot be made to do: refuse a stream before processing it.

It answers /retry.Flaky/Unary-shaped calls (one request message, the reply
b"ok:" + request, status OK) and, by `mode`:

  "refuse"  the first stream of every connection is reset with
            RST_STREAM(REFUSED_STREAM) as soon as its headers arrive; later
            streams on the connection are served;
  "goaway"  the first request the server receives, on whichever
            connection, is answered with GOAWAY(last_stream_id=0, NO_ERROR)
            and that connection is closed; every later request is served
            (a client may have opened more than one connection).

Either way the refused request was never processed, which is what allows
a client to retry it transparently. `log` lists what happened to each
stream: (connection number, stream id, "refused" | "goaway" | "served").
One thread accepts; each connection has its own thread."""
import socket
import threading

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from .service import UNARY


def _grpc_message(payload):
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class RefusingServer:
    def __init__(self, mode):
        assert mode in ("refuse", "goaway")
        self.mode = mode
        self.log = []
        self.served = []              # request payloads answered
        self.previous = []            # grpc-previous-rpc-attempts of the streams served
        self._lock = threading.Lock()
        self._connections = 0
        self._closing = False
        self._goaway_sent = False
        self._sockets = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.target = "127.0.0.1:%d" % self.port
        self._threads = [threading.Thread(target=self._accept, name="h2-refusing-accept", daemon=True)]
        self._threads[0].start()

    def close(self):
        self._closing = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)   # wakes the accepting thread
        except OSError:
            pass
        self.listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)

    def _accept(self):
        while not self._closing:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                number = self._connections
                self._connections += 1
                self._sockets.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock, number), name="h2-refusing-conn",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def _first_goaway(self):
        with self._lock:
            first, self._goaway_sent = not self._goaway_sent, True
            return first

    def _note(self, number, sid, what):
        with self._lock:
            self.log.append((number, sid, what))

    def _serve(self, sock, number):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        bodies = {}
        first = True
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        sid = event.stream_id
                        if first and self.mode == "refuse":
                            self._note(number, sid, "refused")
                            conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                        elif self.mode == "goaway" and self._first_goaway():
                            self._note(number, sid, "goaway")     # before the client can act on it
                            conn.close_connection(h2.errors.ErrorCodes.NO_ERROR, last_stream_id=0)
                            sock.sendall(conn.data_to_send())
                            self._linger(sock)
                            return
                        else:
                            headers = dict(event.headers)
                            self.previous.append(headers.get("grpc-previous-rpc-attempts"))
                            path = headers.get(":path")
                            bodies[sid] = bytearray() if path == UNARY else None
                        first = False
                    elif isinstance(event, h2.events.DataReceived):
                        if event.flow_controlled_length:
                            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                        if bodies.get(event.stream_id) is not None:
                            bodies[event.stream_id] += event.data
                    elif isinstance(event, h2.events.StreamEnded) and event.stream_id in bodies:
                        self._answer(conn, number, event.stream_id, bodies.pop(event.stream_id))
                sock.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            return                    # the client went away, or spoke after its GOAWAY
        finally:
            sock.close()

    def _answer(self, conn, number, sid, body):
        if body is None:
            conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc"),
                                    ("grpc-status", "12")], end_stream=True)
            return
        request = bytes(body[5:])
        with self._lock:
            self.served.append(request)
        self._note(number, sid, "served")
        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        conn.send_data(sid, _grpc_message(b"ok:" + request))
        conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)

    @staticmethod
    def _linger(sock):
        """Close after the GOAWAY without losing it: stop sending, read
        until the client closes (or a while), then close. A close with
        unread input would reset the connection, and a reset may discard
        the GOAWAY before the client reads it."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(3)
            while sock.recv(65536):
                pass
        except OSError:
            pass
