"""How calls end other than by the handler's status: deadlines, an
unreachable server, a client cancelling. Client facades against grpcio's
sync server, and server facades watched by grpcio's sync client."""
from .drivers import GRPCPY, HANG, Behaviour, is_aio, make_client, register, wait_for

WAITS = register(Behaviour("unary_unary", [("wait_done",)]))
WAITS_STREAM = register(Behaviour("unary_stream", [("yield", b"a"), ("wait_done",)]))


def test_deadline_exceeded_on_the_client(client):
    unary = client.unary(WAITS, b"q", timeout=0.2)
    stream = client.unary_stream(WAITS_STREAM, b"q", timeout=0.2)
    # grpcio says "Stream removed (Deadline Exceeded)" when the server's
    # reset reaches it before its own timer fires: either text is right
    texts = ("Deadline Exceeded", "Stream removed (Deadline Exceeded)")
    assert (unary.code, unary.initial_metadata, unary.trailing_metadata) == ("DEADLINE_EXCEEDED", (), ())
    assert (stream.responses, stream.code) == ([b"a"], "DEADLINE_EXCEEDED")
    assert unary.details in texts and stream.details in texts, (unary, stream)


def test_unreachable_server(request, client_facade):
    c = make_client(client_facade, "127.0.0.1:1")
    try:
        fail_fast = c.unary(WAITS, b"q", timeout=2)
        waiting = c.unary(WAITS, b"q", timeout=0.3, wait_for_ready=True)
    finally:
        c.close()
    assert (fail_fast.exc_type, fail_fast.code) == ("RpcError", "UNAVAILABLE")
    assert waiting.status == ("DEADLINE_EXCEEDED", "Deadline Exceeded")
    # grpcio is the reference for the codes, not for the text: grpcpy names
    # every address with its own error, grpcio only the last one
    if client_facade in GRPCPY:
        assert fail_fast.details == "failed to connect to all addresses: ipv4:127.0.0.1:1: Connection refused"
    else:
        assert fail_fast.details == ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
                                     "Failed to connect to remote host: Connection refused")


def _after(server_facade):
    """What the handler sees of its context once the call is over."""
    if is_aio(server_facade):
        return lambda c: (c.cancelled(), c.done())
    return lambda c: c.is_active()


def test_client_cancel_seen_by_the_handler(server, observer, server_facade):
    """sync: the handler's wait ends (its callback ran) and is_active() is
    False; aio: the handler's task is cancelled (CancelledError in the
    handler, as grpc.aio does)."""
    b = Behaviour("unary_unary", [("observe", "started", lambda c: True), ("wait_done",),
                                  ("observe", "after", _after(server_facade)), ("return", b"r")])
    h = observer.start("unary_unary", register(b), b"q", timeout=5)
    assert wait_for(lambda: "started" in b.observed)
    assert h.cancel() is True
    assert b.ended.wait(HANG)
    if is_aio(server_facade):
        assert (b.observed.get("handler_cancelled"), "after" in b.observed) == (True, False)
    else:
        assert b.observed["after"] is False


def test_deadline_seen_by_the_handler(server, observer, server_facade):
    b = Behaviour("unary_unary", [("wait_done",), ("observe", "after", _after(server_facade)),
                                  ("observe", "remaining", lambda c: c.time_remaining()), ("return", b"r")])
    out = observer.unary(register(b), b"q", timeout=0.2)
    assert out.code == "DEADLINE_EXCEEDED"
    assert b.ended.wait(HANG)
    if is_aio(server_facade):
        assert (b.observed.get("handler_cancelled"), "after" in b.observed) == (True, False)
    else:
        # the client's reset can reach the server a little before the
        # server's own deadline timer fires (grpcio's sync server then still
        # reports some milliseconds left): what is left is next to nothing
        assert b.observed["after"] is False
        assert 0 <= b.observed["remaining"] < 0.1, b.observed


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wait_for_ready_call_waits_for_the_server(client_facade, fresh_client, fresh_server):
    """A wait_for_ready call made while nobody listens is queued and runs
    once a server comes up (within its deadline); a fail-fast call made at
    the same time fails UNAVAILABLE."""
    port = _free_port()
    options = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
               ("grpc.max_reconnect_backoff_ms", 100)]
    c = fresh_client(client_facade, "127.0.0.1:%d" % port, options=options)
    path = register(Behaviour("unary_unary", [("return", b"here")]))
    waiting = c.start("unary_unary", path, b"q", timeout=5, wait_for_ready=True)
    fail_fast = c.unary(path, b"q", timeout=5)
    assert fail_fast.code == "UNAVAILABLE"
    assert not waiting.done()
    fresh_server("grpcio-sync", address="127.0.0.1:%d" % port)
    assert waiting.result() == b"here"
