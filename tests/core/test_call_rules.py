"""Call rules the compiled core owns: a call that cannot start ends with a
status instead of raising, unary cardinality on both sides (gRPC's
statuscodes.md: cardinality violations are UNIMPLEMENTED), cancelling every
call of a client connection, and what the HTTP/2 layer exposes.

Client-side rules are checked against the `h2` package as the server, so the
frames the core sends (or does not send) are seen by an independent peer.
"""
import h2.errors
import pytest

from grpcpy import _cext as c

from .h2peer import ClientLink, H2GrpcClient, ServerLink
from .pair import EchoServer, Pair, ended

METHOD = "/test.Echo/Unary"


# ---------------------------------------------------------------------------
# start_call never raises for what the application passed in


@pytest.mark.parametrize("metadata", [
    [("Upper", "v")], [("k", "bad\nvalue")], [("", "v")], [("sp ace", "v")],
    [("k", "caf\u00e9")],
])
def test_bad_metadata_ends_the_call_internal_without_sending(metadata):
    link = ClientLink()
    before = link.server.conn.highest_inbound_stream_id
    owner = object()
    call = link.client.start_call(METHOD, link.now, 5.0, metadata, user=owner)
    assert call.is_done and call.code == c.SC_INTERNAL and call.details
    assert link.client.data_to_send() == b""          # nothing on the wire
    assert not link.client.streams and link.client.local_open == 0
    events = link.client.take_events()
    assert [(e.kind, e.call, e.code, e.details) for e in events] == [
        (c.CE_CALL_ENDED, owner, c.SC_INTERNAL, call.details)]
    assert link.client.next_timer() == float("inf")   # no deadline armed for it
    # the connection is unharmed: the next call goes out on stream 1
    ok = link.client.start_call(METHOD, link.now)
    link.client.send_unary(ok, b"x")
    link.pump()
    assert ok.stream_id == 1 and link.server.conn.highest_inbound_stream_id == max(before, 1)


def test_metadata_error_text_names_the_key():
    p = Pair()
    call = p.client.start_call(METHOD, p.now, -1, [("Bad Key", "v")])
    # grpcio's words first, then the reason
    assert call.code == c.SC_INTERNAL and call.details.startswith("Invalid metadata: ") and "Bad Key" in call.details
    assert ended(p.client.take_events(), call).details == call.details


def test_unknown_compression_ends_the_call_internal():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, compression="snappy")
    assert call.is_done and call.code == c.SC_INTERNAL and "snappy" in call.details
    assert link.client.data_to_send() == b""
    assert ended(link.client.take_events(), call).code == c.SC_INTERNAL
    # actions on the ended call are no-ops, as on any ended call
    assert link.client.send_unary(call, b"x") is False
    link.client.close_send(call)
    link.client.cancel_call(call)
    assert link.client.data_to_send() == b"" and link.client.take_events() == []


def test_start_call_still_raises_for_programming_errors():
    p = Pair()
    with pytest.raises(TypeError):
        p.client.start_call(None, p.now)


# ---------------------------------------------------------------------------
# client: unary response


def _answer(link, call, messages, code=0, message=None, trailers_only=False):
    link.client.send_unary(call, b"req")
    link.pump()
    if trailers_only:
        link.server.trailers_only(call.stream_id, code, message)
    else:
        link.server.respond_headers(call.stream_id)
        link.server.send_messages(call.stream_id, messages)
        link.server.respond_status(call.stream_id, code, message)
    link.pump()


def test_unary_response_second_message_is_unimplemented_and_reset():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, response_streaming=False)
    link.client.send_unary(call, b"req")
    link.pump()
    sid = call.stream_id
    link.server.respond_headers(sid)
    link.server.send_messages(sid, [b"one", b"two"])
    link.pump()
    assert link.messages(call) == [b"one"]             # the second is not delivered
    end = link.ended(call)
    assert end.code == c.SC_UNIMPLEMENTED
    assert end.details == "More than one response message received for a unary-response call"
    assert link.server.streams[sid].reset == h2.errors.ErrorCodes.CANCEL
    assert not link.client.streams


def test_unary_response_second_message_wins_over_ok_trailers():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, response_streaming=False)
    _answer(link, call, [b"one", b"two"])
    assert link.messages(call) == [b"one"]
    assert link.ended(call).code == c.SC_UNIMPLEMENTED


def test_unary_response_ok_without_message_is_unimplemented():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, response_streaming=False)
    _answer(link, call, [])
    end = link.ended(call)
    assert end.code == c.SC_UNIMPLEMENTED
    assert end.details == "No response message received for a unary-response call"


def test_unary_response_trailers_only_ok_is_unimplemented():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, response_streaming=False)
    _answer(link, call, [], trailers_only=True)
    assert link.ended(call).code == c.SC_UNIMPLEMENTED


def test_unary_response_error_status_without_message_stays():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, response_streaming=False)
    _answer(link, call, [], code=c.SC_NOT_FOUND, message=b"nope")
    end = link.ended(call)
    assert (end.code, end.details) == (c.SC_NOT_FOUND, "nope")


def test_unary_response_exactly_one_message_is_ok():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, response_streaming=False)
    _answer(link, call, [b"one"])
    assert link.messages(call) == [b"one"] and link.ended(call).code == c.SC_OK


def test_streaming_response_default_takes_any_count():
    link = ClientLink()
    many = link.client.start_call(METHOD, link.now)
    _answer(link, many, [b"a", b"b", b"c"])
    none = link.client.start_call(METHOD, link.now)
    _answer(link, none, [])
    assert link.ended(many).code == c.SC_OK and link.ended(none).code == c.SC_OK


# ---------------------------------------------------------------------------
# client: cancel_all_calls


def test_cancel_all_calls_cancels_streams_and_waiting_calls():
    link = ClientLink()
    # the h2 server allows one stream at a time
    link.server.conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    link.pump()
    calls = [link.client.start_call(METHOD, link.now, user="u%d" % i) for i in range(3)]
    for call in calls:
        link.client.send_message(call, b"m")
    link.pump()
    assert link.client.local_open == 1
    sid = calls[0].stream_id
    done = link.client.start_call(METHOD, link.now, user="done")
    events = link.client.cancel_all_calls("Channel closed!")
    ends = [(e.call, e.code, e.details) for e in events if e.kind == c.CE_CALL_ENDED]
    assert ends == [("u%d" % i, c.SC_CANCELLED, "Channel closed!") for i in range(3)] + [
        ("done", c.SC_CANCELLED, "Channel closed!")]
    assert all(call.is_done for call in calls)
    link.pump()
    assert link.server.streams[sid].reset == h2.errors.ErrorCodes.CANCEL
    assert len(link.server.streams) == 1              # the waiting calls never started
    # the connection stays open and usable
    assert not link.client.closed
    again = link.client.start_call(METHOD, link.now)
    _answer(link, again, [b"r"])
    assert link.ended(again).code == c.SC_OK


def test_cancel_all_calls_default_details_and_nothing_to_cancel():
    p = Pair()
    app = EchoServer(p)
    finished = p.client.start_call(METHOD, p.now)
    p.client.send_unary(finished, b"x")
    p.pump()
    app.serve()
    running = p.client.start_call(METHOD, p.now)
    p.client.send_message(running, b"x")
    p.pump()
    p.take_client()
    events = p.client.cancel_all_calls()
    assert [(e.call, e.code, e.details) for e in events] == [(running, c.SC_CANCELLED, "Channel closed!")]
    p.pump()
    server_events = p.take_server()
    (server_call,) = [e.call for e in server_events
                      if e.kind == c.CE_CALL_STARTED and e.call.stream_id == running.stream_id]
    assert ended(server_events, server_call).code == c.SC_CANCELLED
    assert p.client.cancel_all_calls() == []


# ---------------------------------------------------------------------------
# server: cardinality


def _status(stream):
    """grpc-status as the h2 client saw it (trailers, or trailers-only headers)."""
    return stream.trailer(b"grpc-status") or stream.header(b"grpc-status")


class App:
    """Accepts every call with the given cardinality and records events."""

    def __init__(self, request_streaming=None, response_streaming=None, accept=True):
        self.request_streaming = request_streaming
        self.response_streaming = response_streaming
        self.accept = accept
        self.calls = []

    def __call__(self, link, ev):
        if ev.kind == c.CE_CALL_STARTED:
            self.calls.append(ev.call)
            if self.accept:
                link.server.accept_call(ev.call, ev.call, self.request_streaming, self.response_streaming)


def _request(link, payloads, end=True):
    """Headers first (the application accepts the call), then the body."""
    sid = link.client.request(METHOD.encode())
    link.pump()
    link.client.send_messages(sid, payloads, end=end)
    link.pump()
    return sid


def test_unary_request_second_message_is_unimplemented():
    app = App(request_streaming=False)
    link = ServerLink(app)
    sid = _request(link, [b"one", b"two"], end=False)
    call = app.calls[0]
    assert [e.data for e in link.events if e.kind == c.CE_MESSAGE] == [b"one"]
    ends = [e for e in link.events if e.kind == c.CE_CALL_ENDED]
    details = '"%s" received more than one request message for a unary-request method.' % METHOD
    assert [(e.call, e.code, e.details) for e in ends] == [(call, c.SC_UNIMPLEMENTED, details)]
    st = link.client.streams[sid]
    assert _status(st) == b"12" and st.header(b"grpc-message") == c.percent_encode(details)
    assert st.reset == h2.errors.ErrorCodes.NO_ERROR     # stop sending (the response is complete)


def test_unary_request_without_message_is_unimplemented_with_grpcio_words():
    app = App(request_streaming=False)
    link = ServerLink(app)
    sid = _request(link, [])
    call = app.calls[0]
    kinds = link.kinds(call)
    assert c.CE_HALF_CLOSED not in kinds
    end = [e for e in link.events if e.kind == c.CE_CALL_ENDED][0]
    assert (end.call, end.code) == (call, c.SC_UNIMPLEMENTED)
    assert end.details == '"/test.Echo/Unary" requires exactly one request message.'
    st = link.client.streams[sid]
    assert _status(st) == b"12"


def test_unary_request_with_one_message_half_closes_normally():
    app = App(request_streaming=False, response_streaming=False)
    link = ServerLink(app)
    sid = _request(link, [b"one"])
    call = app.calls[0]
    assert link.kinds(call)[-2:] == [c.CE_MESSAGE, c.CE_HALF_CLOSED]
    link.server.send_message(call, b"answer")
    link.server.send_status(call, 0)
    link.pump()
    st = link.client.streams[sid]
    assert st.payloads == [b"answer"] and st.trailer(b"grpc-status") == b"0"


def test_set_cardinality_counts_messages_delivered_before():
    app = App(accept=False)
    link = ServerLink(app)
    _request(link, [b"one", b"two"], end=False)
    call = app.calls[0]
    link.server.accept_call(call, "handler")
    assert [e.data for e in link.events if e.kind == c.CE_MESSAGE] == [b"one", b"two"]
    link.server.set_cardinality(call, False, True)
    events = link.server.take_events()
    assert [(e.kind, e.call, e.code) for e in events] == [(c.CE_CALL_ENDED, "handler", c.SC_UNIMPLEMENTED)]
    assert call.is_done


def test_set_cardinality_after_an_empty_half_close():
    app = App(accept=False)
    link = ServerLink(app)
    _request(link, [])
    call = app.calls[0]
    assert c.CE_HALF_CLOSED in link.kinds(call)
    link.server.accept_call(call, "handler", request_streaming=False)
    events = link.server.take_events()
    assert [(e.kind, e.call, e.code, e.details) for e in events] == [
        (c.CE_CALL_ENDED, "handler", c.SC_UNIMPLEMENTED, '"%s" requires exactly one request message.' % METHOD)]


def test_unknown_or_streaming_request_takes_any_count():
    for accept in (dict(), dict(request_streaming=True)):
        app = App(**accept)
        link = ServerLink(app)
        _request(link, [b"a", b"b"])
        _request(link, [])
        assert not any(e.kind == c.CE_CALL_ENDED for e in link.events)
        assert [e.kind for e in link.events].count(c.CE_HALF_CLOSED) == 2


def test_unary_response_second_send_message_raises():
    app = App(request_streaming=True, response_streaming=False)
    link = ServerLink(app)
    _request(link, [b"x"])
    call = app.calls[0]
    assert link.server.send_message(call, b"first") is True
    with pytest.raises(ValueError):
        link.server.send_message(call, b"second")
    # the call goes on: the application can still end it
    link.server.send_status(call, 0)
    link.pump()
    sid = call.stream_id
    st = link.client.streams[sid]
    assert st.payloads == [b"first"] and st.trailer(b"grpc-status") == b"0"


def test_streaming_response_sends_any_count():
    app = App(response_streaming=True)
    link = ServerLink(app)
    sid = _request(link, [b"x"])
    call = app.calls[0]
    for i in range(3):
        assert link.server.send_message(call, b"%d" % i)
    link.server.send_status(call, 0)
    link.pump()
    assert link.client.streams[sid].payloads == [b"0", b"1", b"2"]


# ---------------------------------------------------------------------------
# what the HTTP/2 layer shows


def test_streams_do_not_expose_calls():
    p = Pair()
    call = p.client.start_call(METHOD, p.now)
    p.client.send_message(call, b"x")
    p.pump()
    for conn in (p.client, p.server):
        (stream,) = conn.streams.values()
        assert not hasattr(stream, "call")


def test_transport_paused_is_set_through_the_connection():
    p = Pair()
    assert p.client.transport_paused is False
    p.client.set_transport_paused(True)
    assert p.client.transport_paused is True
    with pytest.raises(AttributeError):
        p.client.transport_paused = False
    p.client.set_transport_paused(False)
    assert p.client.transport_paused is False
    assert not hasattr(p.client, "write_paused")
