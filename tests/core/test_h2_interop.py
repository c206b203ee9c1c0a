"""The grpcpy core against an independent HTTP/2 implementation (`h2`).

Part 1: grpcpy ClientConnection <-> h2 as a gRPC server written here.
Part 2: h2 as a gRPC client <-> grpcpy ServerConnection with a tiny app.
"""
import base64
import gzip

import h2.errors
import h2.events
import pytest

from grpcpy import _cext as c

from .h2peer import ClientLink, H2GrpcClient, H2GrpcServer, ServerLink, grpc_frame

METHOD = "/test.Echo/Call"


def header_dict(headers):
    out = {}
    for k, v in headers:
        out.setdefault(k, []).append(v)
    return out


def unpadded_b64decode(value):
    assert b"=" not in value, "binary metadata must go out unpadded: %r" % value
    return base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)


# ===========================================================================
# Part 1: grpcpy client, h2 server
# ===========================================================================


def test_unary_request_headers_and_response():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, metadata=[("x-user", "alice")])
    link.client.send_unary(call, b"ping")
    link.pump()
    st = link.server.streams[call.stream_id]
    h = header_dict(st.headers)
    assert h[b":method"] == [b"POST"] and h[b":path"] == [METHOD.encode()]
    assert h[b":scheme"] == [b"http"] and h[b":authority"] == [b"h2peer.test"]
    assert h[b"te"] == [b"trailers"] and h[b"content-type"] == [b"application/grpc"]
    assert h[b"x-user"] == [b"alice"]
    assert b"grpc-timeout" not in h
    assert st.messages == [(0, b"ping")] and st.ended

    link.server.respond_headers(call.stream_id)
    link.server.send_messages(call.stream_id, [b"pong"])
    link.server.respond_status(call.stream_id, 0)
    link.pump()
    assert link.messages(call) == [b"pong"]
    assert [e.kind for e in link.of(call)] == [c.CE_INITIAL_METADATA, c.CE_MESSAGE, c.CE_CALL_ENDED]
    end = link.ended(call)
    assert end.code == c.SC_OK and end.details == ""
    assert not link.client.streams


def test_server_streaming_beyond_initial_window():
    # 100 x 4 KiB = 400 KiB from h2 (whose send window starts at 65535): the
    # grpcpy client must keep crediting the stream and the connection.
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"go")
    link.pump()
    sid = call.stream_id
    msgs = [bytes([i]) * 4096 for i in range(100)]
    link.server.respond_headers(sid)
    link.server.send_messages(sid, msgs)
    link.server.respond_status(sid, 0)
    link.pump()
    assert link.messages(call) == msgs
    assert link.ended(call).code == c.SC_OK
    updates = [e for e in link.server.events if isinstance(e, h2.events.WindowUpdated)]
    assert any(e.stream_id == sid for e in updates), "no stream WINDOW_UPDATE from grpcpy"
    assert any(e.stream_id == 0 for e in updates) or link.server.conn.outbound_flow_control_window > 65535


def test_server_streaming_backpressure_until_consumed():
    # Without message_consumed the client holds credit back: h2 stalls.
    # (BDP probing off: it would grow the window past the whole transfer.)
    link = ClientLink(consume=False, config=c.H2Config(bdp_probing=False))
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"go")
    link.pump()
    sid = call.stream_id
    msgs = [bytes([i]) * 8192 for i in range(40)]          # 320 KiB
    link.server.respond_headers(sid)
    link.server.send_messages(sid, msgs)
    link.server.respond_status(sid, 0)
    link.pump()
    got = link.of(call, c.CE_MESSAGE)
    assert 0 < len(got) < len(msgs), "credit was not held back"
    assert not link.of(call, c.CE_CALL_ENDED)
    assert link.server.streams[sid].out, "h2 should still hold data for lack of window"
    # now the application consumes as it goes
    seen = 0
    for _ in range(100):
        new = link.of(call, c.CE_MESSAGE)[seen:]
        if not new:
            break
        for ev in new:
            link.client.message_consumed(call, ev.value)
        seen += len(new)
        link.pump()
    assert link.messages(call) == msgs
    assert link.ended(call).code == c.SC_OK


def test_client_streaming_beyond_initial_window_with_h2_holding_credit():
    # The client sends 300 KiB; h2 (not auto-crediting) releases window in
    # steps, so grpcpy must queue and resume on WINDOW_UPDATE.
    server = H2GrpcServer(auto_ack=False)
    link = ClientLink(server=server)
    call = link.client.start_call(METHOD, link.now)
    msgs = [bytes([i]) * 10000 for i in range(30)]
    for m in msgs:
        link.client.send_message(call, m)
    link.client.close_send(call)
    link.pump()
    sid = call.stream_id
    st = server.streams[sid]
    assert st.data_bytes <= 65535 and not st.ended
    for _ in range(50):
        if st.ended:
            break
        server.ack(sid)
        link.pump()
    assert st.ended and st.payloads == msgs
    server.respond_headers(sid)
    server.send_messages(sid, [b"%d" % sum(len(m) for m in st.payloads)])
    server.respond_status(sid, 0)
    link.pump()
    assert link.messages(call) == [b"300000"]
    assert link.ended(call).code == c.SC_OK


def test_bidi_interleaved():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.pump()
    sid = call.stream_id
    link.server.respond_headers(sid)
    for i in range(5):
        link.client.send_message(call, b"q%d" % i)
        link.pump()
        st = link.server.streams[sid]
        assert st.payloads[-1] == b"q%d" % i
        link.server.send_messages(sid, [b"a%d" % i])
        link.pump()
        assert link.messages(call)[-1] == b"a%d" % i
    link.client.close_send(call)
    link.pump()
    assert link.server.streams[sid].ended
    link.server.respond_status(sid, 0)
    link.pump()
    assert link.messages(call) == [b"a%d" % i for i in range(5)]
    assert link.ended(call).code == c.SC_OK


def test_metadata_both_ways_including_binary():
    blob = bytes(range(256)) + b"\x00\xff"
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, metadata=[
        ("x-text", "hello world"), ("x-data-bin", blob), ("x-one-bin", b"\x01"), ("x-two-bin", b"\x01\x02")])
    link.client.send_unary(call, b"")
    link.pump()
    sid = call.stream_id
    h = header_dict(link.server.streams[sid].headers)
    assert h[b"x-text"] == [b"hello world"]
    assert unpadded_b64decode(h[b"x-data-bin"][0]) == blob
    assert unpadded_b64decode(h[b"x-one-bin"][0]) == b"\x01"
    assert unpadded_b64decode(h[b"x-two-bin"][0]) == b"\x01\x02"
    # the server answers with padded and unpadded base64 (both are allowed)
    link.server.respond_headers(sid, metadata=[(b"x-init", b"v1"),
                                               (b"x-init-bin", base64.b64encode(b"\xfe\xed"))])
    link.server.respond_status(sid, 0, metadata=[(b"x-trail", b"t"),
                                                 (b"x-trail-bin", base64.b64encode(b"\x00\x01\x02\x03").rstrip(b"="))])
    link.pump()
    init = link.of(call, c.CE_INITIAL_METADATA)[0].metadata
    assert ("x-init", "v1") in init and ("x-init-bin", b"\xfe\xed") in init
    assert not any(k.startswith(":") or k == "content-type" for k, _ in init)
    end = link.ended(call)
    assert end.code == c.SC_OK
    assert ("x-trail", "t") in end.metadata and ("x-trail-bin", b"\x00\x01\x02\x03") in end.metadata
    assert not any(k in ("grpc-status", "grpc-message") for k, _ in end.metadata)


@pytest.mark.parametrize("text", [
    "tab\there", "line1\nline2\r\n", "100% sure", "héllo wörld ✓ 日本", "%41 is not A", "",
])
def test_grpc_message_percent_decoding(text):
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"")
    link.pump()
    wire = b"".join(b"%%%02X" % b if (b < 0x20 or b > 0x7E or b == 0x25) else bytes([b])
                    for b in text.encode("utf-8"))
    link.server.respond_headers(call.stream_id)
    link.server.respond_status(call.stream_id, 3, wire)
    link.pump()
    end = link.ended(call)
    assert end.code == c.SC_INVALID_ARGUMENT
    assert end.details == text


def test_grpc_message_lowercase_hex_and_stray_percent():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"")
    link.pump()
    link.server.trailers_only(call.stream_id, 9, b"a%c3%a9b %zz %4")
    link.pump()
    end = link.ended(call)
    assert end.code == c.SC_FAILED_PRECONDITION
    assert end.details == "a\u00e9b %zz %4"


def test_trailers_only_response():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"x")
    link.pump()
    link.server.trailers_only(call.stream_id, c.SC_NOT_FOUND, b"no such thing", metadata=[(b"x-why", b"gone")])
    link.pump()
    kinds = [e.kind for e in link.of(call)]
    # no response headers: no initial-metadata event (what lets the call
    # layer retry it); the call's initial metadata stays unset
    assert kinds == [c.CE_CALL_ENDED]
    assert call.initial_metadata == ()
    end = link.ended(call)
    assert end.code == c.SC_NOT_FOUND and end.details == "no such thing"
    assert ("x-why", "gone") in end.metadata
    assert not link.client.streams


@pytest.mark.parametrize("status,code", [
    (b"400", c.SC_INTERNAL), (b"401", c.SC_UNAUTHENTICATED), (b"403", c.SC_PERMISSION_DENIED),
    (b"404", c.SC_UNIMPLEMENTED), (b"429", c.SC_UNAVAILABLE), (b"502", c.SC_UNAVAILABLE),
    (b"503", c.SC_UNAVAILABLE), (b"504", c.SC_UNAVAILABLE), (b"500", c.SC_UNKNOWN), (b"418", c.SC_UNKNOWN),
])
def test_http_status_mapping(status, code):
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"x")
    link.pump()
    link.server.conn.send_headers(call.stream_id, [(b":status", status), (b"content-type", b"text/html")],
                                  end_stream=False)
    link.server.send_raw(call.stream_id, b"<html>oops</html>", end=True)
    link.pump()
    end = link.ended(call)
    assert end.code == code, end
    assert status.decode() in end.details
    assert not link.client.streams


def test_http_error_status_without_body():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"x")
    link.pump()
    link.server.conn.send_headers(call.stream_id, [(b":status", b"503")], end_stream=True)
    link.pump()
    assert link.ended(call).code == c.SC_UNAVAILABLE


@pytest.mark.parametrize("error,code", [
    (h2.errors.ErrorCodes.CANCEL, c.SC_CANCELLED),
    (h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, c.SC_RESOURCE_EXHAUSTED),
    (h2.errors.ErrorCodes.INTERNAL_ERROR, c.SC_INTERNAL),
])
def test_rst_stream_from_server(error, code):
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_message(call, b"x")
    link.pump()
    link.server.conn.reset_stream(call.stream_id, error)
    link.pump()
    end = link.ended(call)
    assert end.code == code, end
    assert not link.client.streams
    # and the connection still works
    call2 = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call2, b"y")
    link.pump()
    link.server.trailers_only(call2.stream_id, 0)
    link.pump()
    assert link.ended(call2).code == c.SC_OK


def _refuse(link, call):
    sid = call.stream_id
    link.server.conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
    link.pump()
    return sid


@pytest.mark.parametrize("unary", [True, False], ids=["send_unary", "send_message+close_send"])
def test_refused_stream_is_sent_again(unary):
    """RST_STREAM(REFUSED_STREAM) before any response: the request was not
    processed (RFC 9113 section 8.7); the call goes out again on a new
    stream, with its headers and messages, and ends as that stream does."""
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, timeout=5.0, metadata=(("k", "v"),))
    if unary:
        link.client.send_unary(call, b"x")
    else:
        link.client.send_message(call, b"x")
        link.client.send_message(call, b"y")
        link.client.close_send(call)
    link.pump()
    first = _refuse(link, call)
    assert not link.of(call, c.CE_CALL_ENDED)
    assert call.stream_id > first
    again = link.server.streams[call.stream_id]
    assert dict(again.headers)[b"k"] == b"v" and b"grpc-timeout" in dict(again.headers)
    assert again.messages == ([(0, b"x")] if unary else [(0, b"x"), (0, b"y")]) and again.ended
    link.server.respond_headers(call.stream_id)
    link.server.send_messages(call.stream_id, [b"r"])
    link.server.respond_status(call.stream_id, 0)
    link.pump()
    assert link.messages(call) == [b"r"] and link.ended(call).code == c.SC_OK


def test_refused_stream_waits_for_a_free_slot():
    """Sent again from the head of the queue for a stream slot: with the
    server's limit reached (one stream) it waits, then goes before a call
    that was queued before the refusal."""
    server = H2GrpcServer()
    server.conn.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    link = ClientLink(server=server)
    calls = [link.client.start_call(METHOD, link.now) for _ in range(3)]
    for call, payload in zip(calls, (b"a", b"b", b"c")):
        link.client.send_unary(call, payload)
    link.pump()
    first, second, third = calls
    assert (second.stream_id, third.stream_id) == (0, 0)       # waiting for the only slot
    _refuse(link, first)
    # the refused stream's slot went to the next call in the queue at once;
    # the refused call is next
    assert (first.stream_id, third.stream_id) == (0, 0) and second.stream_id != 0
    link.server.trailers_only(second.stream_id, 0)
    link.pump()
    assert first.stream_id > second.stream_id and third.stream_id == 0
    assert link.server.streams[first.stream_id].messages == [(0, b"a")]
    link.server.trailers_only(first.stream_id, 0)
    link.pump()
    link.server.trailers_only(third.stream_id, 0)
    link.pump()
    assert [link.ended(call).code for call in calls] == [c.SC_OK] * 3


def test_refused_stream_is_not_sent_again_after_response_headers():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"x")
    link.pump()
    link.server.respond_headers(call.stream_id)
    link.pump()
    _refuse(link, call)
    assert link.ended(call).code == c.SC_UNAVAILABLE


def test_refused_stream_is_not_sent_again_when_its_request_was_large():
    """Beyond 64 KiB sent the call keeps nothing for a replay: UNAVAILABLE."""
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_message(call, b"x" * (64 * 1024))
    link.pump()
    _refuse(link, call)
    assert link.ended(call).code == c.SC_UNAVAILABLE


def test_refused_stream_again_and_again_ends_unavailable():
    """A server that refuses every time: after 8 refusals the call ends
    UNAVAILABLE "Received RST_STREAM with error code 7"."""
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"x")
    link.pump()
    streams = set()
    while not link.of(call, c.CE_CALL_ENDED):
        assert len(streams) <= 9
        streams.add(_refuse(link, call))
    assert len(streams) == 9
    end = link.ended(call)
    assert (end.code, end.details) == (c.SC_UNAVAILABLE, "Received RST_STREAM with error code 7")


def test_goaway_fails_unprocessed_stream_and_lets_lower_one_finish():
    link = ClientLink()
    first = link.client.start_call(METHOD, link.now)
    link.client.send_unary(first, b"a")
    second = link.client.start_call(METHOD, link.now)
    link.client.send_unary(second, b"b")
    link.pump()
    assert first.stream_id < second.stream_id
    link.server.inject_goaway(last_stream_id=first.stream_id)
    link.pump()
    end2 = link.ended(second)
    assert end2.code == c.SC_UNAVAILABLE
    assert not link.of(first, c.CE_CALL_ENDED)
    assert [e for e in link.events if e.kind == c.CE_GOAWAY][0].value == first.stream_id
    # no new calls on a connection going away
    third = link.client.start_call(METHOD, link.now)
    link.pump()
    assert link.ended(third).code == c.SC_UNAVAILABLE
    # the server finishes the one it took
    link.server.respond_headers(first.stream_id)
    link.server.send_messages(first.stream_id, [b"A"])
    link.server.respond_status(first.stream_id, 0)
    link.pump()
    assert link.messages(first) == [b"A"]
    assert link.ended(first).code == c.SC_OK


@pytest.mark.parametrize("timeout", [0.25, 1.5, 30.0, 7200.0, 0.000123])
def test_grpc_timeout_header_value(timeout):
    units = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, timeout=timeout)
    link.client.send_unary(call, b"")
    link.pump()
    value = link.server.streams[call.stream_id].header(b"grpc-timeout")
    assert value is not None
    digits, unit = value[:-1], value[-1:]
    assert digits.isdigit() and 1 <= len(digits) <= 8 and unit in units
    seconds = int(digits) * units[unit]
    assert seconds >= timeout * (1 - 1e-12)
    assert seconds <= timeout * 1.001 + 1e-9


def test_client_deadline_resets_stream():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, timeout=2.0)
    link.client.send_message(call, b"x")
    link.pump()
    assert link.client.next_timer() == pytest.approx(2.0)
    link.advance(2.5)
    assert link.ended(call).code == c.SC_DEADLINE_EXCEEDED
    assert link.server.streams[call.stream_id].reset == h2.errors.ErrorCodes.CANCEL


def test_large_message_both_ways():
    big = bytes(range(256)) * (3 * 4096)    # 3 MiB
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, big)
    link.pump()
    st = link.server.streams[call.stream_id]
    assert st.ended and st.payloads == [big]
    assert st.data_frames >= len(big) // 16384
    link.server.respond_headers(call.stream_id)
    link.server.send_messages(call.stream_id, [big[::-1]])
    link.server.respond_status(call.stream_id, 0)
    link.pump()
    assert link.messages(call) == [big[::-1]]
    assert link.ended(call).code == c.SC_OK


def test_many_calls_above_h2_concurrency_limit():
    # h2 advertises MAX_CONCURRENT_STREAMS 100: the extra calls must wait
    # for a slot instead of being refused.
    link = ClientLink()
    assert link.client.peer_max_concurrent_streams == link.server.conn.local_settings.max_concurrent_streams
    calls = []
    for i in range(150):
        call = link.client.start_call(METHOD, link.now)
        link.client.send_unary(call, b"%d" % i)
        calls.append(call)
    link.pump()
    assert len(link.server.conn.streams) <= link.server.conn.local_settings.max_concurrent_streams
    done = 0
    for _ in range(10):
        for sid, st in list(link.server.streams.items()):
            if st.ended and st.out_end is not None and sid in link.server.conn.streams:
                link.server.respond_headers(sid)
                link.server.send_messages(sid, st.payloads)
                link.server.respond_status(sid, 0)
        link.pump()
        done = sum(1 for call in calls if call.is_done)
        if done == len(calls):
            break
    assert done == len(calls)
    for i, call in enumerate(calls):
        assert link.messages(call) == [b"%d" % i]
        assert link.ended(call).code == c.SC_OK


def test_early_status_while_client_still_sending():
    # The server answers before the client half-closes: the call ends and
    # the client's stream must not linger (it would hold a stream slot).
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_message(call, b"first")
    link.pump()
    link.server.trailers_only(call.stream_id, c.SC_PERMISSION_DENIED, b"nope")
    link.pump()
    assert link.ended(call).code == c.SC_PERMISSION_DENIED
    assert not link.client.streams
    assert link.client.local_open == 0
    assert link.server.streams[call.stream_id].reset == h2.errors.ErrorCodes.NO_ERROR
    assert link.client.send_message(call, b"late") is False
    link.pump()


def test_informational_response_is_skipped():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"x")
    link.pump()
    link.server.conn.send_headers(call.stream_id, [(b":status", b"100")])
    link.server.respond_headers(call.stream_id, metadata=[(b"x-a", b"1")])
    link.server.send_messages(call.stream_id, [b"r"])
    link.server.respond_status(call.stream_id, 0)
    link.pump()
    assert link.messages(call) == [b"r"]
    assert ("x-a", "1") in link.of(call, c.CE_INITIAL_METADATA)[0].metadata
    assert link.ended(call).code == c.SC_OK


def test_padded_data_is_credited():
    # Padding counts against flow control and must be credited back, or the
    # stream starves after about one window of padded frames.
    link = ClientLink(config=c.H2Config(bdp_probing=False))
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"x")
    link.pump()
    sid = call.stream_id
    server = link.server
    server.respond_headers(sid)
    link.pump()
    msgs = [bytes([i]) * 1000 for i in range(150)]
    pending = [grpc_frame(m) for m in msgs]
    for _ in range(1000):
        while pending and server.conn.local_flow_control_window(sid) >= len(pending[0]) + 256:
            server.conn.send_data(sid, pending.pop(0), pad_length=200)
        link.pump()
        if not pending:
            break
    assert not pending, "h2 ran out of window: padding was not credited"
    server.respond_status(sid, 0)
    link.pump()
    assert link.messages(call) == msgs
    assert link.ended(call).code == c.SC_OK


def test_server_ping_and_settings_change():
    from h2.settings import SettingCodes
    link = ClientLink()
    link.server.conn.ping(b"h2-ping!")
    link.server.conn.update_settings({SettingCodes.MAX_FRAME_SIZE: 65536,
                                      SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    link.pump()
    assert any(isinstance(e, h2.events.PingAckReceived) and e.ping_data == b"h2-ping!"
               for e in link.server.events)
    assert any(isinstance(e, h2.events.SettingsAcknowledged) for e in link.server.events)
    assert any(e.kind == c.CE_PING_RECEIVED and e.data == b"h2-ping!" for e in link.events)
    assert link.client.peer_max_frame_size == 65536
    big = b"z" * 500000
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, big)
    link.pump()
    st = link.server.streams[call.stream_id]
    assert st.payloads == [big]
    assert st.data_frames <= len(big) // 16384, "larger frames were not used"
    link.server.trailers_only(call.stream_id, 0)
    link.pump()
    assert link.ended(call).code == c.SC_OK


def test_large_header_blocks_with_continuation():
    # Request metadata and trailers beyond one frame: CONTINUATION both ways.
    link = ClientLink(config=c.H2Config(max_header_list_size=1 << 20))
    md = [("x-big-%d" % i, "v" * 9000) for i in range(4)]
    call = link.client.start_call(METHOD, link.now, metadata=md)
    link.client.send_unary(call, b"")
    link.pump()
    h = header_dict(link.server.streams[call.stream_id].headers)
    for k, v in md:
        assert h[k.encode()] == [v.encode()]
    trailing = [(b"x-t-%d" % i, b"w" * 9000) for i in range(4)]
    link.server.respond_headers(call.stream_id)
    link.server.respond_status(call.stream_id, 0, metadata=trailing)
    link.pump()
    end = link.ended(call)
    assert end.code == c.SC_OK
    for k, v in trailing:
        assert (k.decode(), v.decode()) in end.metadata


def test_response_compressed_gzip():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"x")
    link.pump()
    accept = link.server.streams[call.stream_id].header(b"grpc-accept-encoding")
    assert b"gzip" in [a.strip() for a in accept.split(b",")]
    link.server.respond_headers(call.stream_id, extra=[(b"grpc-encoding", b"gzip")])
    payload = b"compress me " * 1000
    link.server.send_raw(call.stream_id, grpc_frame(gzip.compress(payload), flag=1)
                         + grpc_frame(b"plain", flag=0))
    link.server.respond_status(call.stream_id, 0)
    link.pump()
    assert link.messages(call) == [payload, b"plain"]
    assert link.ended(call).code == c.SC_OK


def test_request_compressed_gzip():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now, compression="gzip")
    payload = b"abc" * 5000
    link.client.send_unary(call, payload)
    link.pump()
    st = link.server.streams[call.stream_id]
    assert st.header(b"grpc-encoding") == b"gzip"
    [(flag, body)] = st.messages
    assert flag == 1 and gzip.decompress(body) == payload and len(body) < len(payload)


# ===========================================================================
# Part 2: h2 client, grpcpy server
# ===========================================================================


class App:
    """A tiny application on the grpcpy server core.

    /t.S/Echo     echoes each message; OK with the x-echo* metadata as trailers
    /t.S/Fanout   each request message b"N:SIZE" -> N messages of SIZE bytes
    /t.S/Collect  answers one message (the requests joined by b"|") at half-close
    /t.S/Fail     trailers-only status from metadata x-code / x-details
    /t.S/Hold     never answers (deadline, cancel tests)
    """

    def __init__(self):
        self.started = []
        self.ended = {}
        self.received = {}
        self.metadata = {}

    def __call__(self, link, ev):
        srv = link.server
        call = ev.call
        if ev.kind == c.CE_CALL_STARTED:
            self.started.append(call)
            self.received[call] = []
            self.metadata[call] = call.metadata
            if call.method == "/t.S/Fail":
                md = dict(call.metadata)
                srv.send_status(call, int(md["x-code"]), md.get("x-details", ""))
        elif ev.kind == c.CE_MESSAGE:
            self.received[call].append(ev.data)
            srv.message_consumed(call, ev.value)
            if call.method == "/t.S/Echo":
                srv.send_message(call, ev.data)
            elif call.method == "/t.S/Fanout":
                n, size = map(int, ev.data.split(b":"))
                for i in range(n):
                    srv.send_message(call, bytes([i % 256]) * size)
        elif ev.kind == c.CE_HALF_CLOSED:
            if call.method in ("/t.S/Echo", "/t.S/Fanout"):
                md = tuple((k, v) for k, v in call.metadata if k.startswith("x-echo"))
                srv.send_status(call, 0, "", md)
            elif call.method == "/t.S/Collect":
                srv.send_message(call, b"|".join(self.received[call]))
                srv.send_status(call, 0)
        elif ev.kind == c.CE_CALL_ENDED:
            assert call not in self.ended, "two CALL_ENDED for one call"
            self.ended[call] = ev

    def call_for(self, sid):
        [call] = [x for x in self.started if x.stream_id == sid]
        return call


def serve(**kw):
    app = App()
    return app, ServerLink(app=app, **kw)


def assert_ok_response(st, messages=None):
    h = header_dict(st.headers)
    assert h[b":status"] == [b"200"]
    assert h[b"content-type"][0].startswith(b"application/grpc")
    assert st.trailers is not None, "no trailers"
    assert st.trailer(b"grpc-status") == b"0", st.trailers
    assert st.ended and st.reset is None
    assert not st.splitter.partial
    if messages is not None:
        assert st.payloads == messages


def test_server_unary():
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Echo", metadata=[(b"x-echo-a", b"1")])
    cl.send_messages(sid, [b"hello"], end=True)
    link.pump()
    st = cl.streams[sid]
    assert_ok_response(st, [b"hello"])
    assert st.trailer(b"x-echo-a") == b"1"
    assert [e.kind for e in link.events if e.call is app.started[0]] == [
        c.CE_CALL_STARTED, c.CE_MESSAGE, c.CE_HALF_CLOSED, c.CE_CALL_ENDED]
    call = app.started[0]
    assert call.method == "/t.S/Echo" and call.authority == b"h2peer.test"
    assert app.ended[call].code == c.SC_OK
    assert not link.server.streams


def test_server_streaming_flow_control():
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Fanout")
    cl.send_messages(sid, [b"120:4000"], end=True)
    link.pump()
    st = cl.streams[sid]
    assert_ok_response(st, [bytes([i]) * 4000 for i in range(120)])
    assert st.data_bytes > 65535


def test_server_streaming_waits_for_h2_credit():
    app, link = serve(client=H2GrpcClient(auto_ack=False))
    cl = link.client
    sid = cl.request(b"/t.S/Fanout")
    cl.send_messages(sid, [b"50:4000"], end=True)
    link.pump()
    st = cl.streams[sid]
    assert st.data_bytes <= 65535 and st.trailers is None
    for _ in range(20):
        if st.ended:
            break
        cl.ack(sid)
        link.pump()
    assert_ok_response(st, [bytes([i]) * 4000 for i in range(50)])


def test_server_client_streaming():
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Collect")
    msgs = [bytes([65 + i % 26]) * 9000 for i in range(40)]   # 360 KB, past the 64 KiB window
    cl.send_messages(sid, msgs, end=True)
    link.pump()
    assert_ok_response(cl.streams[sid], [b"|".join(msgs)])
    assert app.received[app.started[0]] == msgs


def test_server_bidi():
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Echo")
    link.pump()
    st = cl.streams[sid]
    for i in range(6):
        cl.send_messages(sid, [b"m%d" % i])
        link.pump()
        assert st.payloads == [b"m%d" % j for j in range(i + 1)]
    assert st.trailers is None
    cl.send_raw(sid, b"", end=True)
    link.pump()
    assert_ok_response(st, [b"m%d" % j for j in range(6)])


def test_server_many_concurrent_interleaved_streams():
    app, link = serve()
    cl = link.client
    sids = [cl.request(b"/t.S/Echo", metadata=[(b"x-echo-n", b"%d" % i)]) for i in range(200)]
    for rnd in range(3):
        for i, sid in enumerate(sids):
            cl.send_messages(sid, [b"%d-%d" % (i, rnd)], end=(rnd == 2))
        link.pump()
    assert len(app.started) == 200
    for i, sid in enumerate(sids):
        st = cl.streams[sid]
        assert_ok_response(st, [b"%d-%d" % (i, r) for r in range(3)])
        assert st.trailer(b"x-echo-n") == b"%d" % i
    assert not link.server.streams


def test_server_metadata_both_ways_binary():
    app, link = serve()
    cl = link.client
    blob = bytes(range(255, -1, -1))
    sid = cl.request(b"/t.S/Echo", metadata=[
        (b"x-plain", b"v v"),
        (b"x-echo-bin", base64.b64encode(blob).rstrip(b"=")),          # unpadded
        (b"x-padded-bin", base64.b64encode(b"\x01\x02")),               # padded
    ])
    cl.send_messages(sid, [b""], end=True)
    link.pump()
    md = app.metadata[app.started[0]]
    assert ("x-plain", "v v") in md
    assert ("x-echo-bin", blob) in md and ("x-padded-bin", b"\x01\x02") in md
    assert not any(k.startswith(":") or k in ("te", "content-type") for k, _ in md)
    st = cl.streams[sid]
    assert_ok_response(st, [b""])
    assert unpadded_b64decode(st.trailer(b"x-echo-bin")) == blob


def test_server_initial_metadata_and_error_details():
    def app(link, ev):
        if ev.kind == c.CE_CALL_STARTED:
            link.server.send_initial_metadata(ev.call, [("x-init", "yes"), ("x-init-bin", b"\x00\xff")])
            link.server.send_message(ev.call, b"partial")
            link.server.send_status(ev.call, c.SC_ABORTED, "tab\there\nnewline 100% ünïcode ✓",
                                    [("x-why-bin", b"\xde\xad\xbe\xef\x01")])
    link = ServerLink(app=app)
    cl = link.client
    sid = cl.request(b"/t.S/Any")
    cl.send_messages(sid, [b"x"], end=True)
    link.pump()
    st = cl.streams[sid]
    h = header_dict(st.headers)
    assert h[b":status"] == [b"200"] and h[b"x-init"] == [b"yes"]
    assert unpadded_b64decode(h[b"x-init-bin"][0]) == b"\x00\xff"
    assert st.payloads == [b"partial"]
    assert st.trailer(b"grpc-status") == b"10"
    wire = st.trailer(b"grpc-message")
    assert all(0x20 <= b <= 0x7E for b in wire), wire
    assert b"%09" in wire and b"%0A" in wire and b"%25" in wire
    assert c.percent_decode(wire) == "tab\there\nnewline 100% ünïcode ✓"
    # an independent decoder agrees
    from urllib.parse import unquote_to_bytes
    assert unquote_to_bytes(wire).decode("utf-8") == "tab\there\nnewline 100% ünïcode ✓"
    assert unpadded_b64decode(st.trailer(b"x-why-bin")) == b"\xde\xad\xbe\xef\x01"


def test_server_trailers_only_status():
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Fail", metadata=[(b"x-code", b"5"), (b"x-details", b"missing")], end=True)
    link.pump()
    st = cl.streams[sid]
    h = header_dict(st.headers)
    assert h[b":status"] == [b"200"] and h[b"grpc-status"] == [b"5"] and h[b"grpc-message"] == [b"missing"]
    assert st.trailers is None and st.ended and st.data_frames == 0


@pytest.mark.parametrize("kw,http_status", [
    (dict(content_type=b"text/plain"), b"415"),
    (dict(http_method=b"GET"), b"405"),
])
def test_server_rejects_non_grpc_requests(kw, http_status):
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Echo", **kw)
    cl.send_messages(sid, [b"x"], end=True)
    link.pump()
    st = cl.streams[sid]
    assert header_dict(st.headers)[b":status"] == [http_status]
    assert st.ended or st.reset is not None
    assert app.started == [], "invalid request reached the application"
    assert not link.server.streams
    # the connection is still good
    sid2 = cl.request(b"/t.S/Echo")
    cl.send_messages(sid2, [b"ok"], end=True)
    link.pump()
    assert_ok_response(cl.streams[sid2], [b"ok"])


def test_server_rejects_unknown_encoding():
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Echo", encoding=b"snappy")
    cl.send_messages(sid, [b"x"], flag=1, end=True)
    link.pump()
    st = cl.streams[sid]
    h = header_dict(st.headers)
    assert h[b":status"] == [b"200"]
    assert h[b"grpc-status"] == [b"12"]
    accept = [a.strip() for a in h[b"grpc-accept-encoding"][0].split(b",")]
    assert b"gzip" in accept and b"snappy" not in accept
    assert app.started == []


@pytest.mark.parametrize("value", [b"abc", b"10", b"1x", b"123456789S", b"-1S", b"S"])
def test_server_rejects_malformed_timeout(value):
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Echo", timeout=value, end=True)
    link.pump()
    h = header_dict(cl.streams[sid].headers)
    assert h[b":status"] == [b"200"] and h[b"grpc-status"] == [b"13"]
    assert app.started == []


def test_server_client_cancel():
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Hold")
    cl.send_messages(sid, [b"x"])
    link.pump()
    call = app.started[0]
    cl.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    link.pump()
    assert app.ended[call].code == c.SC_CANCELLED
    assert not link.server.streams
    assert link.server.send_message(call, b"late") is False
    link.pump()
    assert cl.streams[sid].payloads == []


def test_server_deadline_from_grpc_timeout():
    app, link = serve()
    cl = link.client
    link.now = 100.0
    sid = cl.request(b"/t.S/Hold", timeout=b"250m")
    cl.send_messages(sid, [b"x"])
    link.pump()
    call = app.started[0]
    assert call.deadline == pytest.approx(100.25)
    assert link.server.next_timer() == pytest.approx(100.25)
    link.advance(0.2)
    assert call not in app.ended and cl.streams[sid].trailers is None
    link.advance(0.1)
    assert app.ended[call].code == c.SC_DEADLINE_EXCEEDED
    st = cl.streams[sid]
    got = st.trailers if st.trailers is not None else st.headers
    assert (b"grpc-status", b"4") in got
    assert st.ended
    assert not link.server.streams


def test_server_gzip_request_and_response():
    def app(link, ev):
        if ev.kind == c.CE_CALL_STARTED:
            link.server.set_compression(ev.call, "gzip")
        elif ev.kind == c.CE_MESSAGE:
            seen.append(ev.data)
            link.server.send_message(ev.call, ev.data * 2)
        elif ev.kind == c.CE_HALF_CLOSED:
            link.server.send_status(ev.call, 0)
    seen = []
    link = ServerLink(app=app)
    cl = link.client
    payload = b"squeeze " * 2000
    sid = cl.request(b"/t.S/Gz", encoding=b"gzip", extra=[(b"grpc-accept-encoding", b"gzip")])
    cl.send_raw(sid, grpc_frame(gzip.compress(payload), flag=1) + grpc_frame(b"raw", flag=0), end=True)
    link.pump()
    assert seen == [payload, b"raw"]
    st = cl.streams[sid]
    assert header_dict(st.headers)[b"grpc-encoding"] == [b"gzip"]
    assert st.trailer(b"grpc-status") == b"0"
    assert [f for f, _ in st.messages] == [1, 1]
    assert [gzip.decompress(p) for _, p in st.messages] == [payload * 2, b"rawraw"]


def test_server_compressed_flag_without_encoding_is_internal():
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Echo")
    cl.send_raw(sid, grpc_frame(gzip.compress(b"x"), flag=1), end=True)
    link.pump()
    st = cl.streams[sid]
    got = st.trailers if st.trailers is not None else st.headers
    assert (b"grpc-status", b"13") in got
    assert app.ended[app.started[0]].code == c.SC_INTERNAL


def test_server_graceful_shutdown_with_calls_in_flight():
    app, link = serve(client=H2GrpcClient(divert_goaway=True))
    cl = link.client
    a = cl.request(b"/t.S/Collect")
    b = cl.request(b"/t.S/Collect")
    cl.send_messages(a, [b"a1"])
    cl.send_messages(b, [b"b1"])
    link.pump()
    link.server.start_graceful_shutdown()
    s2c = link.server.data_to_send()
    # a request already on its way when the first GOAWAY is written
    late = cl.request(b"/t.S/Collect")
    cl.send_messages(late, [b"l1"], end=True)
    link._dispatch(link.server.receive_data(cl.data_to_send(), link.now))
    cl.receive(s2c)
    link.pump()
    assert cl.goaways[0] == (2 ** 31 - 1, 0)
    assert cl.goaways[-1] == (late, 0), cl.goaways
    assert len(cl.goaways) == 2
    # a stream opened after the final GOAWAY is refused, never processed
    refused = cl.request(b"/t.S/Collect", end=True)
    link.pump()
    assert cl.streams[refused].reset == h2.errors.ErrorCodes.REFUSED_STREAM
    assert len(app.started) == 3
    # the calls in flight finish normally
    cl.send_messages(a, [b"a2"], end=True)
    cl.send_messages(b, [b"b2"], end=True)
    link.pump()
    assert_ok_response(cl.streams[a], [b"a1|a2"])
    assert_ok_response(cl.streams[b], [b"b1|b2"])
    assert_ok_response(cl.streams[late], [b"l1"])
    assert all(ev.code == c.SC_OK for ev in app.ended.values())
    assert not link.server.streams


# ===========================================================================
# Settings, HPACK and connection-level behaviour against h2
# ===========================================================================

from h2.settings import SettingCodes  # noqa: E402


def test_server_with_h2_header_table_size_zero():
    # h2 asks for no dynamic table: grpcpy's encoder must follow (a table
    # size update, then no indexing), or h2's decoder rejects the block.
    app, link = serve()
    cl = link.client
    cl.conn.update_settings({SettingCodes.HEADER_TABLE_SIZE: 0})
    link.pump()
    for i in range(3):
        sid = cl.request(b"/t.S/Echo", metadata=[(b"x-echo-k", b"value-%d" % i)])
        cl.send_messages(sid, [b"m"], end=True)
        link.pump()
        st = cl.streams[sid]
        assert_ok_response(st, [b"m"])
        assert st.trailer(b"x-echo-k") == b"value-%d" % i
    assert cl.terminated is None


def test_client_with_h2_small_header_table():
    link = ClientLink()
    link.server.conn.update_settings({SettingCodes.HEADER_TABLE_SIZE: 64})
    link.pump()
    for i in range(4):
        call = link.client.start_call(METHOD, link.now, metadata=[("x-k", "v%d" % i), ("x-long", "L" * 100)])
        link.client.send_unary(call, b"")
        link.pump()
        assert link.server.streams[call.stream_id].header(b"x-k") == b"v%d" % i
        link.server.trailers_only(call.stream_id, 0)
        link.pump()
        assert link.ended(call).code == c.SC_OK
    assert link.server.terminated is None


def test_server_window_shrinks_and_grows_mid_stream():
    # h2 lowers SETTINGS_INITIAL_WINDOW_SIZE while grpcpy is sending (the
    # stream windows may go negative, §6.9.2), then raises it again.
    app, link = serve(client=H2GrpcClient(auto_ack=False))
    cl = link.client
    sid = cl.request(b"/t.S/Fanout")
    cl.send_messages(sid, [b"40:3000"], end=True)
    link.pump()
    st = cl.streams[sid]
    first = st.data_bytes
    assert 0 < first <= 65535
    cl.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    link.pump()
    # the window is now 1000 - 65535 (all of it was used): crediting the
    # 65535 received brings it back to 1000, no more
    cl.ack(sid)
    link.pump()
    assert first < st.data_bytes <= first + 1000, "stream window accounting differs from h2's"
    assert cl.terminated is None
    cl.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    link.pump()
    cl.ack(sid)
    link.pump()
    assert_ok_response(st, [bytes([i]) * 3000 for i in range(40)])


def test_server_uses_larger_frames_when_allowed():
    app, link = serve()
    cl = link.client
    cl.conn.update_settings({SettingCodes.MAX_FRAME_SIZE: 1 << 20, SettingCodes.INITIAL_WINDOW_SIZE: 1 << 22})
    cl.conn.increment_flow_control_window(1 << 22)
    link.pump()
    sid = cl.request(b"/t.S/Fanout")
    cl.send_messages(sid, [b"1:1000000"], end=True)
    link.pump()
    st = cl.streams[sid]
    assert_ok_response(st)
    assert len(st.payloads[0]) == 1000000
    assert st.data_frames <= 4


def test_server_answers_h2_ping():
    app, link = serve()
    link.client.conn.ping(b"12345678")
    link.pump()
    assert any(isinstance(e, h2.events.PingAckReceived) and e.ping_data == b"12345678"
               for e in link.client.events)


def test_server_large_request_headers_continuation():
    app, link = serve(config=c.H2Config(max_header_list_size=1 << 20))
    cl = link.client
    md = [(b"x-echo-%d" % i, b"q" * 10000) for i in range(5)]
    sid = cl.request(b"/t.S/Echo", metadata=md)
    cl.send_messages(sid, [b"x"], end=True)
    link.pump()
    st = cl.streams[sid]
    assert_ok_response(st, [b"x"])
    for k, v in md:
        assert st.trailer(k) == v


def test_server_request_headers_over_limit():
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Echo", metadata=[(b"x-huge", b"h" * 20000)])
    cl.send_messages(sid, [b"x"], end=True)
    link.pump()
    st = cl.streams[sid]
    assert st.headers is not None, (st.reset, cl.terminated)
    assert (b"grpc-status", b"8") in st.headers
    assert app.started == []
    sid2 = cl.request(b"/t.S/Echo")
    cl.send_messages(sid2, [b"y"], end=True)
    link.pump()
    assert_ok_response(cl.streams[sid2], [b"y"])


def test_server_message_over_receive_limit():
    app, link = serve(max_receive_message_length=1000)
    cl = link.client
    sid = cl.request(b"/t.S/Echo")
    cl.send_messages(sid, [b"a" * 1001], end=True)
    link.pump()
    st = cl.streams[sid]
    got = st.trailers if st.trailers is not None else st.headers
    assert (b"grpc-status", b"8") in got
    assert app.ended[app.started[0]].code == c.SC_RESOURCE_EXHAUSTED


def test_client_cancel_seen_by_h2():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_message(call, b"x")
    link.pump()
    link.client.cancel_call(call)
    link.pump()
    assert link.ended(call).code == c.SC_CANCELLED
    assert link.server.streams[call.stream_id].reset == h2.errors.ErrorCodes.CANCEL
    assert link.server.terminated is None


def test_client_connection_error_from_h2():
    link = ClientLink()
    calls = []
    for _ in range(3):
        call = link.client.start_call(METHOD, link.now)
        link.client.send_message(call, b"x")
        calls.append(call)
    link.pump()
    link.server.conn.close_connection(h2.errors.ErrorCodes.INTERNAL_ERROR, b"boom", last_stream_id=0)
    link.pump()
    for call in calls:
        assert link.ended(call).code == c.SC_UNAVAILABLE
    gone = [e for e in link.events if e.kind == c.CE_GOAWAY]
    assert gone and gone[0].code == h2.errors.ErrorCodes.INTERNAL_ERROR and gone[0].details == b"boom"


def test_h2_client_rejects_nothing_from_server_under_load():
    # Many calls of every kind at once; h2 validates every frame and header
    # block it receives, and must never terminate the connection.
    app, link = serve()
    cl = link.client
    sids = []
    for i in range(60):
        kind = i % 3
        if kind == 0:
            sid = cl.request(b"/t.S/Echo")
            cl.send_messages(sid, [b"e%d" % i] * 3, end=True)
        elif kind == 1:
            sid = cl.request(b"/t.S/Fanout")
            cl.send_messages(sid, [b"5:7000"], end=True)
        else:
            sid = cl.request(b"/t.S/Fail", metadata=[(b"x-code", b"%d" % (i % 16 + 1))], end=True)
        sids.append((kind, i, sid))
    link.pump()
    assert cl.terminated is None
    for kind, i, sid in sids:
        st = cl.streams[sid]
        if kind == 0:
            assert_ok_response(st, [b"e%d" % i] * 3)
        elif kind == 1:
            assert_ok_response(st, [bytes([j]) * 7000 for j in range(5)])
        else:
            assert (b"grpc-status", b"%d" % (i % 16 + 1)) in st.headers


def test_server_deadline_while_response_data_is_blocked():
    # The response is stuck behind flow control when the deadline passes:
    # the status must still reach the client (HEADERS are not flow
    # controlled), not just a bare RST_STREAM.
    app, link = serve(client=H2GrpcClient(auto_ack=False))
    cl = link.client
    sid = cl.request(b"/t.S/Fanout", timeout=b"1S")
    cl.send_messages(sid, [b"40:3000"])
    link.pump()
    st = cl.streams[sid]
    assert st.data_bytes <= 65535 and st.trailers is None
    link.advance(1.5)
    call = app.started[0]
    assert app.ended[call].code == c.SC_DEADLINE_EXCEEDED
    assert st.trailers is not None, "no status, reset=%r" % (st.reset,)
    assert (b"grpc-status", b"4") in st.trailers
    assert not link.server.streams
    assert cl.terminated is None


def test_server_failure_while_response_data_is_blocked():
    # A compressed message without grpc-encoding fails the call while the
    # response is stuck behind flow control: the INTERNAL status still goes out.
    app, link = serve(client=H2GrpcClient(auto_ack=False))
    cl = link.client
    sid = cl.request(b"/t.S/Fanout")
    cl.send_messages(sid, [b"40:3000"])
    link.pump()
    cl.send_raw(sid, grpc_frame(b"zz", flag=1))
    link.pump()
    st = cl.streams[sid]
    assert app.ended[app.started[0]].code == c.SC_INTERNAL
    assert st.trailers is not None and (b"grpc-status", b"13") in st.trailers
    assert not link.server.streams


def test_client_ok_trailers_after_partial_message_is_internal():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"x")
    link.pump()
    link.server.respond_headers(call.stream_id)
    link.server.send_raw(call.stream_id, grpc_frame(b"complete") + grpc_frame(b"truncated")[:8])
    link.server.respond_status(call.stream_id, 0)
    link.pump()
    assert link.messages(call) == [b"complete"]
    assert link.ended(call).code == c.SC_INTERNAL


def test_client_stream_ended_without_trailers_is_internal():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"x")
    link.pump()
    link.server.respond_headers(call.stream_id)
    link.server.send_messages(call.stream_id, [b"r"], end=True)
    link.pump()
    assert link.ended(call).code == c.SC_INTERNAL
    assert not link.client.streams


def test_client_bdp_grows_window_on_bulk_download():
    link = ClientLink()
    call = link.client.start_call(METHOD, link.now)
    link.client.send_unary(call, b"x")
    link.pump()
    big = b"d" * (3 << 20)
    link.server.respond_headers(call.stream_id)
    link.server.send_messages(call.stream_id, [big])
    link.server.respond_status(call.stream_id, 0)
    link.pump()
    assert link.messages(call) == [big]
    assert link.ended(call).code == c.SC_OK
    # h2 saw (and acknowledged) larger windows advertised by grpcpy
    assert link.server.conn.remote_settings.initial_window_size > 65535
    assert link.server.terminated is None


def test_server_request_stream_ends_mid_message():
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Collect")
    cl.send_raw(sid, grpc_frame(b"whole") + grpc_frame(b"cut off")[:7], end=True)
    link.pump()
    st = cl.streams[sid]
    got = st.trailers if st.trailers is not None else st.headers
    assert (b"grpc-status", b"13") in got
    assert app.ended[app.started[0]].code == c.SC_INTERNAL


def test_server_early_status_while_client_still_sending():
    # Status before the request is complete: the h2 client gets the whole
    # response, then RST_STREAM(NO_ERROR) (§8.1), and the server forgets the stream.
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Fail", metadata=[(b"x-code", b"7")])
    cl.send_messages(sid, [b"more"])
    link.pump()
    st = cl.streams[sid]
    assert (b"grpc-status", b"7") in st.headers and st.ended
    assert st.reset == h2.errors.ErrorCodes.NO_ERROR
    assert not link.server.streams
    assert cl.terminated is None


def test_server_padded_request_data_is_credited():
    app, link = serve(config=c.H2Config(bdp_probing=False))
    cl = link.client
    sid = cl.request(b"/t.S/Collect")
    link.pump()
    msgs = [bytes([i]) * 1000 for i in range(150)]
    pending = [grpc_frame(m) for m in msgs]
    for _ in range(1000):
        while pending and cl.conn.local_flow_control_window(sid) >= len(pending[0]) + 256:
            cl.conn.send_data(sid, pending.pop(0), pad_length=200)
        link.pump()
        if not pending:
            break
    assert not pending, "h2 ran out of window: padding was not credited"
    cl.conn.end_stream(sid)
    link.pump()
    assert_ok_response(cl.streams[sid], [b"|".join(msgs)])


def test_server_large_messages_both_ways():
    big = bytes(range(256)) * (3 * 4096)    # 3 MiB
    app, link = serve(max_receive_message_length=8 << 20)
    cl = link.client
    sid = cl.request(b"/t.S/Echo")
    cl.send_messages(sid, [big, big[::-1]], end=True)
    link.pump()
    assert_ok_response(cl.streams[sid], [big, big[::-1]])
    assert cl.terminated is None


def test_server_request_trailers_end_the_request():
    # gRPC clients send no request trailers, but HTTP/2 allows them: a
    # HEADERS block with END_STREAM after the messages is a half-close.
    app, link = serve()
    cl = link.client
    sid = cl.request(b"/t.S/Collect")
    cl.send_messages(sid, [b"a", b"b"])
    link.pump()
    cl.conn.send_headers(sid, [(b"x-trailer", b"t")], end_stream=True)
    link.pump()
    assert_ok_response(cl.streams[sid], [b"a|b"])


def test_client_goaway_fails_calls_waiting_for_a_stream_slot():
    link = ClientLink()
    link.server.conn.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    link.pump()
    first = link.client.start_call(METHOD, link.now)
    link.client.send_unary(first, b"1")
    waiting = link.client.start_call(METHOD, link.now)
    link.client.send_unary(waiting, b"2")
    link.pump()
    assert waiting.stream_id == 0 and len(link.server.conn.streams) == 1
    link.server.inject_goaway(last_stream_id=first.stream_id)
    link.pump()
    assert link.ended(waiting).code == c.SC_UNAVAILABLE
    link.server.trailers_only(first.stream_id, 0)
    link.pump()
    assert link.ended(first).code == c.SC_OK
    assert len(link.server.streams) == 1
