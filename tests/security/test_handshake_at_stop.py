"""A connection still in its TLS handshake when the sync server stops is
closed at once (not left until the handshake timeout)."""
import concurrent.futures
import socket
import time

import grpcpy

from .certs import material


def test_stop_closes_connection_in_tls_handshake():
    server = grpcpy.server(concurrent.futures.ThreadPoolExecutor(2))
    port = server.add_secure_port("127.0.0.1:0", grpcpy.ssl_server_credentials([material()["server"]]))
    server.start()
    # a client that connects and never sends its ClientHello
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        end = time.monotonic() + 10
        while not server._handshakes and time.monotonic() < end:
            time.sleep(0.01)
        assert server._handshakes, "the server never started the handshake"
        server.stop(None).wait(5)
        # the server's handshake timeout is 10 s: an EOF well before it is the close
        sock.settimeout(5)
        assert sock.recv(1) == b""
        assert not server._handshakes
    finally:
        sock.close()
