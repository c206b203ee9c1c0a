"""ServicerContext methods, per server facade, as a handler sees them.

The handler records what a context method returns (an `observe` step); the
test compares that with grpcio sync's value. Where grpcio's two servers
disagree, grpcpy's one behaviour is written down in the test."""
import re
import threading

from .drivers import HANG, Behaviour, expected, is_aio, known_gap, loop_for, register, wait_for


def test_peer_format(server, observer):
    b = Behaviour("unary_unary", [("observe", "peer", lambda c: c.peer()), ("return", b"r")])
    observer.unary(register(b), b"q")
    assert re.fullmatch(r"ipv4:127\.0\.0\.1:\d+", b.observed["peer"]), b.observed


def test_invocation_metadata_shape(server, observer):
    b = Behaviour("unary_unary", [("observe", "md", lambda c: c.invocation_metadata()), ("return", b"r")])
    observer.unary(register(b), b"q", metadata=(("k", "v"), ("k-bin", b"\x00\x01"), ("k", "w")))
    md = b.observed["md"]
    assert isinstance(md, tuple)
    assert all(isinstance(m, tuple) and len(m) == 2 and (m.key, m.value) == tuple(m) for m in md), md
    # the client's user-agent comes first, then the call's metadata in order
    assert md[0].key == "user-agent"
    assert tuple(tuple(m) for m in md[1:]) == (("k", "v"), ("k-bin", b"\x00\x01"), ("k", "w"))


def test_code_and_details_getters(request, server, observer, server_facade):
    """context.code() / details() before and after set_code / set_details.

    grpcio sync: details() is None until set, then the bytes it encoded;
    grpc.aio: '' until set, then the str. grpcpy, both facades: None until
    set (as code(), and grpcio sync), then the str given (the documented
    type; the bytes are an artefact of grpcio sync's encoding)."""
    b = Behaviour("unary_unary", [("observe", "code0", lambda c: c.code()), ("observe", "details0", lambda c: c.details()),
                                  ("set_code", "OK"), ("set_details", "hello"),
                                  ("observe", "code1", lambda c: c.code()), ("observe", "details1", lambda c: c.details()),
                                  ("return", b"r")])
    observer.unary(register(b), b"q")
    seen = (b.observed["code0"], b.observed["details0"], b.observed["code1"].name, b.observed["details1"])
    grpcio = {"grpcio-sync": (None, None, "OK", b"hello"), "grpcio-aio": (None, "", "OK", "hello")}
    assert seen == grpcio.get(server_facade, (None, None, "OK", "hello"))


def test_trailing_metadata_getter(request, server, observer, server_facade):
    # grpcio sync: None until set; grpc.aio: (). grpcpy: None (grpcio sync's)
    b = Behaviour("unary_unary", [("observe", "tm0", lambda c: c.trailing_metadata()),
                                  ("set_trailing_metadata", (("a", "b"),)),
                                  ("observe", "tm1", lambda c: c.trailing_metadata()), ("return", b"r")])
    out = observer.unary(register(b), b"q")
    assert out.trailing_metadata == (("a", "b"),)
    assert tuple(b.observed["tm1"]) == (("a", "b"),)
    assert b.observed["tm0"] == expected(server_facade, None, grpcio_aio=())


def test_time_remaining_with_a_deadline(server, observer):
    b = Behaviour("unary_unary", [("observe", "tr", lambda c: c.time_remaining()), ("return", b"r")])
    observer.unary(register(b), b"q", timeout=3)
    assert isinstance(b.observed["tr"], float) and 0 < b.observed["tr"] < 4  # about the 3 s given


def test_time_remaining_without_a_deadline(request, server, observer, server_facade):
    # grpcio sync returns a huge float (its infinite deadline), grpc.aio None.
    # grpcpy: None under both facades (what the API documents).
    b = Behaviour("unary_unary", [("observe", "tr", lambda c: c.time_remaining()), ("return", b"r")])
    observer.unary(register(b), b"q", timeout=None)
    if server_facade == "grpcio-sync":
        assert b.observed["tr"] > 1e15
        return
    assert b.observed["tr"] is None


def test_auth_context_and_peer_identities_insecure(server, observer):
    b = Behaviour("unary_unary", [("observe", "auth", lambda c: c.auth_context()),
                                  ("observe", "ids", lambda c: c.peer_identities()),
                                  ("observe", "key", lambda c: c.peer_identity_key()), ("return", b"r")])
    observer.unary(register(b), b"q")
    assert b.observed == {"auth": {"transport_security_type": [b"insecure"], "security_level": [b"TSI_SECURITY_NONE"]},
                          "ids": None, "key": None}


def test_disable_next_message_compression(server, observer):
    b = Behaviour("unary_stream", [("set_compression", "gzip"),
                                   ("observe", "r", lambda c: c.disable_next_message_compression()),
                                   ("yield", b"a" * 100), ("yield", b"b" * 100)])
    out = observer.unary_stream(register(b), b"q")
    assert (b.observed["r"], out.responses, out.code) == (None, [b"a" * 100, b"b" * 100], "OK")


def test_set_details_with_bytes(request, server, observer, server_facade):
    # grpcio sync accepts bytes and sends them decoded; grpc.aio raises
    # TypeError in the handler. grpcpy: grpcio sync's.
    b = Behaviour("unary_unary", [("set_code", "NOT_FOUND"), ("set_details", b"bytes"), ("return", b"r")])
    out = observer.unary(register(b), b"q", timeout=0.5)
    assert out.status == expected(server_facade, ("NOT_FOUND", "bytes"), grpcio_aio=(
        "NOT_FOUND", "Unexpected <class 'TypeError'>: Argument 'details' has incorrect type (expected str, got bytes)"))


def _register_done_callback(server_facade, fired):
    def register_cb(context):
        if is_aio(server_facade):
            return context.add_done_callback(lambda ctx: fired.append(ctx is context) or done.set())
        return context.add_callback(lambda: fired.append(True) or done.set())
    done = threading.Event()
    return register_cb, done


def test_done_callback_runs_once_after_the_call(server, observer, server_facade):
    """sync add_callback returns True while the call is active; aio
    add_done_callback returns None and passes the context. Either runs once,
    after the handler has returned."""
    fired = []
    register_cb, done = _register_done_callback(server_facade, fired)
    b = Behaviour("unary_unary", [("observe", "registered", register_cb),
                                  ("observe", "fired_in_handler", lambda c: list(fired)), ("return", b"r")])
    out = observer.unary(register(b), b"q")
    assert out.code == "OK"
    assert done.wait(HANG)
    assert b.observed["registered"] is (None if is_aio(server_facade) else True)
    assert (b.observed["fired_in_handler"], fired) == ([], [True])


def test_context_after_the_call(request, server, observer, server_facade):
    """A context kept past the call: not active any more; a sync callback
    added then is refused (add_callback returns False) and never runs."""
    b = Behaviour("unary_unary", [("observe", "ctx", lambda c: c), ("on_done", "cb", lambda c: True),
                                  ("return", b"r")])
    observer.unary(register(b), b"q")
    ctx = b.observed["ctx"]
    assert b.ended.wait(HANG)
    assert wait_for(lambda: b.observed["cb"])  # the call's callbacks have run: it is over
    if is_aio(server_facade):
        # the done flag can trail the client's view of the status by a loop turn
        lt = loop_for(server_facade)
        assert wait_for(lambda: lt.call(ctx.done))
        assert lt.call(lambda: (ctx.done(), ctx.cancelled())) == (True, False)
        return
    fired = []
    assert ctx.is_active() is False
    assert ctx.add_callback(lambda: fired.append(1)) is False
    assert fired == []


def test_active_in_the_handler(server, observer, server_facade):
    """sync: is_active(); aio: done() and cancelled() (grpc.aio's context
    has no is_active(); grpcpy.aio's has both)."""
    if is_aio(server_facade):
        b = Behaviour("unary_unary", [("observe", "state", lambda c: (c.done(), c.cancelled())), ("return", b"r")])
        observer.unary(register(b), b"q")
        assert b.observed["state"] == (False, False)
        if server_facade == "grpcio-aio":
            return
    b = Behaviour("unary_unary", [("observe", "active", lambda c: c.is_active()), ("return", b"r")])
    observer.unary(register(b), b"q")
    assert b.observed["active"] is True
