"""Handlers of the four kinds on every server facade, seen by a grpcio sync
client: responses and metadata, abort as the handler sees it, a code set
without abort, exceptions (status, logging, the server going on), done
callbacks, context.cancel() on a stream, compression controls.

(Ported from the sync and aio server tests, which tested each of these once
per facade.)"""
import logging

import grpc
import pytest

from .drivers import HANG, Behaviour, is_aio, known_gap, raw_call, register, wait_for


def test_four_kinds(server, observer):
    uu = register(Behaviour("unary_unary", [("send_initial_metadata", (("im", "1"),)),
                                            ("set_trailing_metadata", (("tm", "2"),)), ("respond", lambda r: r[0])]))
    us = register(Behaviour("unary_stream", [("respond", lambda r: [b"%d" % i for i in range(int(r[0]))])]))
    su = register(Behaviour("stream_unary", [("read_all",), ("respond", lambda r: b",".join(r))]))
    ss = register(Behaviour("stream_stream", [("read_all",), ("respond", lambda r: r)]))
    out = observer.unary(uu, b"u")
    assert (out.response, out.initial_metadata, out.trailing_metadata) == (b"u", (("im", "1"),), (("tm", "2"),))
    assert observer.unary_stream(us, b"4").responses == [b"0", b"1", b"2", b"3"]
    assert observer.stream_unary(su, [b"a", b"b"]).response == b"a,b"
    assert observer.stream_stream(ss, [b"p", b"q"]).responses == [b"p", b"q"]


def test_abort_as_the_handler_sees_it(server, observer, server_facade):
    """abort() raises out of the handler (sync: an Exception; aio: the
    facade's AbortError, a BaseError); a handler that swallows it and
    returns still ends with the abort's status."""
    b = Behaviour("unary_unary", [("try_abort", "NOT_FOUND", "gone"), ("observe", "after", lambda c: True),
                                  ("return", b"ignored")])
    out = observer.unary(register(b), b"q")
    assert (out.status, out.response) == (("NOT_FOUND", "gone"), None)
    assert b.ended.wait(HANG)  # grpc.aio sends the status before the handler goes on
    raised = b.observed["abort_raised"]
    assert isinstance(raised, Exception)
    if is_aio(server_facade):
        api = server.api
        assert isinstance(raised, api.AbortError) and isinstance(raised, api.BaseError)


def test_abort_stops_the_handler(server, observer):
    b = Behaviour("unary_unary", [("abort", "OUT_OF_RANGE", "too far"), ("observe", "after", lambda c: True)])
    out = observer.unary(register(b), b"q")
    assert out.status == ("OUT_OF_RANGE", "too far")
    assert b.ended.wait(HANG)
    assert "after" not in b.observed


def test_abort_with_status_binary_trailing_metadata(server, observer):
    b = Behaviour("unary_unary", [("abort_with_status", "PERMISSION_DENIED", "go away",
                                   (("reason", "policy"), ("blob-bin", b"\x01\x02"))),
                                  ("observe", "after", lambda c: True)])
    out = observer.unary(register(b), b"q")
    assert (out.status, out.trailing_metadata) == (("PERMISSION_DENIED", "go away"),
                                                   (("reason", "policy"), ("blob-bin", b"\x01\x02")))
    assert b.ended.wait(HANG)
    assert "after" not in b.observed


def test_abort_keeps_details_and_trailers_set_before(server, observer, server_facade):
    """One rule for both grpcpy facades (grpcpy/_rpc/server.py _set_abort):
    abort with empty details keeps set_details' text, and trailers set
    before stand (grpc.aio's behaviour; grpcio's sync server drops the
    details, and abort_with_status drops its trailers too)."""
    b = Behaviour("unary_unary", [("set_trailing_metadata", (("earlier", "1"),)), ("set_details", "set before"),
                                  ("abort", "DATA_LOSS", "")])
    out = observer.unary(register(b), b"q")
    if server_facade == "grpcio-sync":
        assert (out.status, out.trailing_metadata) == (("DATA_LOSS", ""), (("earlier", "1"),))
        return
    assert (out.status, out.trailing_metadata) == (("DATA_LOSS", "set before"), (("earlier", "1"),))


@pytest.mark.parametrize("returned", [b"ignored", None])
def test_set_code_without_abort_unary(server, observer, server_facade, returned):
    """The code, details and trailing metadata stand; a returned response
    does not go out with a non-OK status (seen on the wire)."""
    b = Behaviour("unary_unary", [("set_code", "NOT_FOUND"), ("set_details", "no such thing"),
                                  ("set_trailing_metadata", (("why", "missing"),)), ("return", returned)])
    path = register(b)
    out = observer.unary(path, b"q")
    assert (out.status, out.trailing_metadata) == (("NOT_FOUND", "no such thing"), (("why", "missing"),))
    headers, frames, trailers = raw_call(server.port, path, [b"q"])
    assert (trailers or headers)["grpc-status"] == "5"
    if server_facade == "grpcio-sync" and returned is not None:
        # grpcio's sync server sends the message before the non-OK status
        # (its client drops it); the other three do not send it
        assert [payload for _, payload in frames] == [returned]
        return
    assert all(payload == b"" for _, payload in frames)


def test_set_code_without_abort_streaming(server, observer):
    b = Behaviour("unary_stream", [("yield", b"one"), ("yield", b"two"), ("set_code", "FAILED_PRECONDITION"),
                                   ("set_details", "stopped early")])
    out = observer.unary_stream(register(b), b"q")
    assert (out.responses, out.status) == ([b"one", b"two"], ("FAILED_PRECONDITION", "stopped early"))


class Boom(Exception):
    pass


@pytest.mark.parametrize("kind", ["unary_unary", "unary_stream", "stream_unary", "stream_stream"])
def test_raising_handler(request, server, observer, server_facade, kind, caplog):
    """UNKNOWN with grpcio sync's text ("Exception calling application: ..."
    for a unary response, "Exception iterating responses: ..." for a
    stream; grpc.aio: "Unexpected <class ...>: ..." for both, which grpcpy
    does not copy); the exception is logged at ERROR and the server goes on
    serving."""
    streaming = kind.endswith("stream")
    steps = [("read_all",)] if kind.startswith("stream") else []
    steps += [("yield", b"first")] if streaming else []
    b = Behaviour(kind, steps + [("raise", Boom("went wrong"))])
    request_arg = [b"r"] if kind.startswith("stream") else b"r"
    with caplog.at_level(logging.ERROR):
        call = {"unary_unary": observer.unary}.get(kind) or getattr(observer, kind)
        out = call(register(b), request_arg)
        assert b.ended.wait(HANG)
    echo = register(Behaviour("unary_unary", [("respond", lambda r: r[0])]))
    assert observer.unary(echo, b"next").response == b"next"
    assert out.responses == ([b"first"] if streaming else [])
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], Boom)]
    assert logged and logged[0].levelno >= logging.ERROR, caplog.text
    if server_facade == "grpcio-aio":
        assert out.status == ("UNKNOWN", "Unexpected %s: went wrong" % (Boom,))
        return
    prefix = "Exception iterating responses: " if streaming else "Exception calling application: "
    assert out.status == ("UNKNOWN", prefix + "went wrong")


def _on_done_state(server_facade):
    if is_aio(server_facade):
        return lambda ctx: (ctx.done(), ctx.cancelled())
    return lambda ctx: ctx.is_active()


def test_done_callback_on_completion(server, observer, server_facade):
    """The callback runs once, after the call: sync add_callback returns
    True and the context is no longer active; aio add_done_callback
    returns None and the context is done, not cancelled."""
    b = Behaviour("unary_unary", [("on_done", "cb", _on_done_state(server_facade)), ("return", b"ok")])
    assert observer.unary(register(b), b"q").response == b"ok"
    assert wait_for(lambda: b.observed["cb"])
    if is_aio(server_facade):
        assert (b.observed["cb_registered"], b.observed["cb"]) == (None, [(True, False)])
    else:
        assert (b.observed["cb_registered"], b.observed["cb"]) == (True, [False])


def test_done_callback_on_client_cancel(server, observer, server_facade):
    """Once, when the client cancels. In the callback grpc.aio's context
    still says done() False, cancelled() False; grpcpy.aio says what
    happened (True, True)."""
    b = Behaviour("unary_unary", [("on_done", "cb", _on_done_state(server_facade)),
                                  ("observe", "started", lambda c: True), ("wait_done",),
                                  ("observe", "late_add", lambda c: None if is_aio(server_facade)
                                   else c.add_callback(lambda: None))])
    h = observer.start("unary_unary", register(b), b"q")
    assert wait_for(lambda: "started" in b.observed)
    h.cancel()
    assert b.ended.wait(HANG)
    assert wait_for(lambda: b.observed["cb"])
    if server_facade == "grpcio-aio":
        assert b.observed["cb"] == [(False, False)]
    elif server_facade == "grpcpy-aio":
        assert b.observed["cb"] == [(True, True)]
    else:
        # sync: not active; add_callback after the end does not register
        assert (b.observed["cb"], b.observed["late_add"]) == ([False], False)


def test_context_cancel_on_a_stream(request, server, observer, server_facade):
    """context.cancel() after a first message: the client has the message,
    then CANCELLED; the sync handler runs on after cancel(). grpc.aio has no
    context.cancel() (UNKNOWN from the AttributeError)."""
    b = Behaviour("unary_stream", [("yield", b"first"), ("cancel",), ("observe", "after", lambda c: True)])
    out = observer.unary_stream(register(b), b"q")
    if server_facade == "grpcio-aio":
        assert (out.responses, out.code) == ([b"first"], "UNKNOWN")
        return
    assert (out.responses, out.status) == ([b"first"], ("CANCELLED", "CANCELLED"))


def test_compression_controls(server, observer):
    unary = register(Behaviour("unary_unary", [("set_compression", "gzip"), ("respond", lambda r: r[0] * 10)]))
    stream = register(Behaviour("unary_stream", [("set_compression", "deflate"), ("yield", b"z"),
                                                 ("observe", "d", lambda c: c.disable_next_message_compression()),
                                                 ("yield", b"zz"), ("yield", b"zzz")]))
    assert observer.unary(unary, b"abc").response == b"abc" * 10
    assert observer.unary_stream(stream, b"q").responses == [b"z", b"zz", b"zzz"]
    # the client compressing its own message
    assert observer.unary(unary, b"q", compression=grpc.Compression.Gzip).response == b"q" * 10


def test_send_initial_metadata_twice_raises_in_the_handler(request, server, observer, server_facade):
    """The second send raises (sync: ValueError; aio: the facade's
    UsageError, a BaseError), the first metadata stands, the call goes on."""
    b = Behaviour("unary_unary", [("send_initial_metadata", (("first", "1"),)),
                                  ("try_send_initial_metadata", (("second", "2"),)), ("return", b"done")])
    out = observer.unary(register(b), b"q")
    assert (out.response, out.initial_metadata) == (b"done", (("first", "1"),))
    assert b.ended.wait(HANG)
    raised = b.observed["send_raised"]
    if is_aio(server_facade):
        assert isinstance(raised, server.api.UsageError) and isinstance(raised, server.api.BaseError)
        assert str(raised) == "Send initial metadata failed: already sent"
        return
    assert isinstance(raised, ValueError)
    assert str(raised) == "Initial metadata no longer allowed!"


def _returns(value):
    """raw handler: a plain function (sync) or a coroutine (aio) returning value."""
    def make(style):
        if style == "sync":
            return lambda request, context: value

        async def coroutine(request, context):
            return value
        return coroutine
    return make


def test_streaming_handler_that_returns_none(request, server, observer, server_facade):
    """sync: a response-streaming handler must return an iterator; None is a
    handler error (grpcio: UNKNOWN "Exception iterating responses: ...").
    aio: a coroutine that returns None is a streaming handler that wrote
    nothing (it may write with context.write()): OK, no messages."""
    out = observer.unary_stream(register(Behaviour("unary_stream", [], raw=_returns(None))), b"q")
    if is_aio(server_facade):
        assert (out.status, out.responses) == (("OK", ""), [])
        return
    assert out.status == ("UNKNOWN", "Exception iterating responses: 'NoneType' object is not an iterator")
