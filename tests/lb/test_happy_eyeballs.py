"""pick_first's staggered connection attempts (gRFC A61) through both
facades: the first address accepts TCP connections and never speaks
HTTP/2 (an attempt that hangs until its 20 s connect deadline); the second
is a grpcio server.  The call is served by the second within its short
deadline, and the first's attempt is closed once the second wins."""
import concurrent.futures
import socket
import threading

import grpc
import pytest

from grpcpy._channel.plane import READY

from .clients import AioClient, SyncClient

WHO = "/rr.Backend/Who"


@pytest.fixture
def silent():
    """A listener on 127.0.0.1 that accepts and says nothing; ``accepted``
    holds the connections, ``closed`` is set when the client closes one."""
    class Listener(socket.socket):
        accepted = None
        closed = None

    listener = Listener()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.accepted = []
    listener.closed = threading.Event()

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            listener.accepted.append(conn)
            threading.Thread(target=_read_until_closed, args=(conn, listener.closed), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield listener
    listener.close()
    for conn in listener.accepted:
        conn.close()


def _read_until_closed(conn, closed):
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass
    closed.set()


@pytest.fixture
def backend():
    pool = concurrent.futures.ThreadPoolExecutor(2)
    srv = grpc.server(pool)
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("rr.Backend", {
        "Who": grpc.unary_unary_rpc_method_handler(lambda request, context: b"second")}),))
    srv.port = srv.add_insecure_port("127.0.0.2:0")
    srv.start()
    yield srv
    srv.stop(None).wait(5)
    pool.shutdown(wait=False)


@pytest.mark.parametrize("client_cls", [SyncClient, AioClient], ids=["grpcpy", "grpcpy.aio"])
def test_a_hanging_first_address_does_not_hold_the_call(silent, backend, client_cls):
    target = "ipv4:127.0.0.1:%d,127.0.0.2:%d" % (silent.getsockname()[1], backend.port)
    client = client_cls(target, [], WHO)
    try:
        # one connect at a time would wait out the first address's 20 s deadline
        reply = client.call()
        assert reply == b"second", getattr(reply, "details", reply)
        assert client.state() == READY
        assert len(silent.accepted) == 1
        assert silent.closed.wait(10)        # the losing attempt is closed
    finally:
        client.close()
