"""Inputs found by fuzzing the compiled core, fed as bytes to ServerConnection
and ClientConnection: each must end with the error or status the protocol
gives it, raise nothing the API does not document, and hold no memory for
calls that are over.

The peer is played by hand (grpcpy's frame writers and an HPACK encoder of
its own, tests/core/frame_factory.py), so malformed blocks can be sent.
"""
import gc
import struct
import tracemalloc

import pytest

from grpcpy import _cext as c

from .frame_factory import HEADERS, INTERNAL_ERROR, PROTOCOL_ERROR, Harness, Peer, goaways, of_type, rsts

REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/svc/Method"),
           (b":authority", b"test.local"), (b"content-type", b"application/grpc"),
           (b"te", b"trailers")]


class ServerSide(Harness):
    """A ServerConnection driven by a hand-played client (a grpc core's
    receive_data returns call events, so the handshake is played here)."""

    def __init__(self, **kw):
        Harness.__init__(self, "server", core=c.ServerConnection(**kw), handshake=False)
        self.send(self.peer.preface())
        self.send(self.peer.settings_ack())
        self.events, self.frames = [], []

    def started(self, events):
        return [e.call for e in events if e.kind == c.CE_CALL_STARTED]


class ClientSide:
    """A ClientConnection driven by a hand-played server."""

    def __init__(self, **kw):
        self.core = c.ClientConnection(authority=b"test.local", **kw)
        self.peer = Peer(client=False)
        self.now = 0.0
        self.core.initiate(self.now)
        self.peer.read(self.core.data_to_send())
        self.core.receive_data(self.peer.preface() + self.peer.settings_ack(), self.now)
        self.peer.read(self.core.data_to_send())
        self.core.take_events()


def _block_with_literal(name, value):
    """An HPACK literal field without indexing, new name (RFC 7541 §6.2.2),
    both strings raw (not Huffman): the name may be anything, empty included."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


# ---------------------------------------------------------------------------
# 1. a header field with an empty name


def test_request_with_an_empty_header_name_is_reset_protocol_error():
    srv = ServerSide()
    block = srv.peer.block(REQUEST) + _block_with_literal(b"", b"x")
    events, frames = srv.send(srv.peer.headers_raw_block(1, block, end_stream=True))
    assert not srv.started(events)
    assert [f.error_code for f in rsts(frames, 1)] == [PROTOCOL_ERROR]
    assert not goaways(frames)
    # the connection goes on: the next request is served
    events, _ = srv.send(srv.peer.headers(3, REQUEST, end_stream=True))
    assert [call.stream_id for call in srv.started(events)] == [3]


def test_request_made_only_of_an_empty_name_is_reset():
    srv = ServerSide()
    events, frames = srv.send(srv.peer.headers_raw_block(1, b"\x00\x00\x01x", end_stream=True))
    assert not srv.started(events)
    assert [f.error_code for f in rsts(frames, 1)] == [PROTOCOL_ERROR]


def test_trailers_with_an_empty_header_name_are_malformed():
    srv = ServerSide()
    events, _ = srv.send(srv.peer.headers(1, REQUEST))
    (call,) = srv.started(events)
    events, frames = srv.send(srv.peer.headers_raw_block(1, _block_with_literal(b"", b"x"), end_stream=True))
    assert [f.error_code for f in rsts(frames, 1)] == [PROTOCOL_ERROR]
    assert call.is_done
    assert [e.kind for e in events if e.call is call] == [c.CE_CALL_ENDED]


def test_response_with_an_empty_header_name_fails_the_call():
    cli = ClientSide()
    call = cli.core.start_call("/svc/Method", cli.now, -1)
    cli.core.send_unary(call, b"x")
    cli.peer.read(cli.core.data_to_send())
    block = cli.peer.block([(b":status", b"200"), (b"content-type", b"application/grpc")])
    events = cli.core.receive_data(cli.peer.headers_raw_block(1, block + _block_with_literal(b"", b"x")))
    frames = cli.peer.read(cli.core.data_to_send())
    assert call.is_done and call.code == c.SC_INTERNAL
    assert [f.error_code for f in rsts(frames, 1)] == [PROTOCOL_ERROR]
    assert [e.kind for e in events if e.call is call] == [c.CE_CALL_ENDED]


def test_metadata_decoding_skips_an_empty_name():
    assert c.decode_metadata([(b"", b"x"), (b"k", b"v")]) == (("k", "v"),)


# ---------------------------------------------------------------------------
# 2. upper-case header names (RFC 9113 §8.2.1)


@pytest.mark.parametrize("name", [b"X-Custom", b"Content-Type", b"GRPC-TIMEOUT", b":Path"])
def test_request_with_an_upper_case_header_name_is_reset(name):
    srv = ServerSide()
    headers = [h for h in REQUEST if h[0] != name.lower()] + [(name, b"v")]
    events, frames = srv.send(srv.peer.headers(1, headers, end_stream=True))
    assert not srv.started(events)
    assert [f.error_code for f in rsts(frames, 1)] == [PROTOCOL_ERROR]
    events, _ = srv.send(srv.peer.headers(3, REQUEST, end_stream=True))
    assert [call.stream_id for call in srv.started(events)] == [3]


def test_response_with_an_upper_case_header_name_fails_the_call():
    cli = ClientSide()
    call = cli.core.start_call("/svc/Method", cli.now, -1)
    cli.core.send_unary(call, b"x")
    cli.peer.read(cli.core.data_to_send())
    events = cli.core.receive_data(cli.peer.headers(
        1, [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"X-Upper", b"v")]))
    frames = cli.peer.read(cli.core.data_to_send())
    assert call.is_done and call.code == c.SC_INTERNAL
    assert [f.error_code for f in rsts(frames, 1)] == [PROTOCOL_ERROR]
    assert [e.kind for e in events if e.call is call] == [c.CE_CALL_ENDED]


def test_trailers_with_an_upper_case_header_name_fail_the_call():
    cli = ClientSide()
    call = cli.core.start_call("/svc/Method", cli.now, -1)
    cli.core.send_unary(call, b"x")
    cli.peer.read(cli.core.data_to_send())
    cli.core.receive_data(cli.peer.headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")]))
    cli.core.receive_data(cli.peer.headers(1, [(b"grpc-status", b"0"), (b"Grpc-Message", b"x")], end_stream=True))
    cli.peer.read(cli.core.data_to_send())
    assert call.is_done and call.code == c.SC_INTERNAL


def test_lower_case_names_with_digits_and_symbols_are_accepted():
    srv = ServerSide()
    events, frames = srv.send(srv.peer.headers(1, REQUEST + [(b"x-a_b.c~9!", b"v")], end_stream=True))
    assert len(srv.started(events)) == 1 and not rsts(frames)


@pytest.mark.parametrize("field", [
    (b"x-custom", b"a\x00b"), (b"x-custom", b"a\rb"), (b"x-custom", b"a\nX-Injected: 1"),
    (b"x-custom", b"\n"), (b":path", b"/svc/Method\r\n"),
    (b"connection", b"close"), (b"keep-alive", b"timeout=5"), (b"proxy-connection", b"keep-alive"),
    (b"transfer-encoding", b"chunked"), (b"upgrade", b"h2c"), (b"te", b"gzip"),
])
def test_request_with_a_bad_value_or_a_connection_specific_field_is_reset(field):
    # RFC 9113 §8.2.1 (NUL, CR, LF in a value) and §8.2.2 (connection-
    # specific fields; TE other than "trailers"): a malformed request,
    # reset PROTOCOL_ERROR; the connection serves the next one.
    srv = ServerSide()
    headers = [h for h in REQUEST if h[0] != field[0]] + [field]
    events, frames = srv.send(srv.peer.headers(1, headers, end_stream=True))
    assert not srv.started(events)
    assert [f.error_code for f in rsts(frames, 1)] == [PROTOCOL_ERROR]
    assert not goaways(frames)
    events, _ = srv.send(srv.peer.headers(3, REQUEST, end_stream=True))
    assert [call.stream_id for call in srv.started(events)] == [3]


@pytest.mark.parametrize("field", [(b"x-custom", b"a\nb"), (b"connection", b"close")])
def test_response_with_a_bad_value_or_a_connection_specific_field_fails_the_call(field):
    cli = ClientSide()
    call = cli.core.start_call("/svc/Method", cli.now, -1)
    cli.core.send_unary(call, b"x")
    cli.peer.read(cli.core.data_to_send())
    events = cli.core.receive_data(cli.peer.headers(
        1, [(b":status", b"200"), (b"content-type", b"application/grpc"), field]))
    frames = cli.peer.read(cli.core.data_to_send())
    assert call.is_done and call.code == c.SC_INTERNAL
    assert [f.error_code for f in rsts(frames, 1)] == [PROTOCOL_ERROR]


def test_values_with_spaces_tabs_and_high_bytes_are_accepted():
    # only NUL, CR and LF are refused in a value; white space at the ends
    # (seen from peers in grpc-message) and obs-text bytes pass
    srv = ServerSide()
    extra = [(b"x-a", b" padded "), (b"x-b", b"\ttab"), (b"x-c", b"\xff\x80"), (b"te", b"trailers")]
    headers = [h for h in REQUEST if h[0] != b"te"] + extra
    events, frames = srv.send(srv.peer.headers(1, headers, end_stream=True))
    assert len(srv.started(events)) == 1 and not rsts(frames)


# ---------------------------------------------------------------------------
# 3. finished calls release their memory at once


LONG_DEADLINE = [(b"grpc-timeout", b"99999999H")]


def _partial_message_streams(srv, first_sid, count, declared=4 * 1024 * 1024):
    """`count` streams, each declaring a `declared`-byte message, sending an
    eighth of it and ending mid-message (each fails INTERNAL). Their
    deadlines fall behind stream 1's (same time, armed later)."""
    sid = first_sid
    chunk = b"\x00" * (declared // 8)
    for _ in range(count):
        srv.send(srv.peer.headers(sid, REQUEST + LONG_DEADLINE))
        body = struct.pack(">BI", 0, declared) + chunk
        for pos in range(0, len(body), 16384):
            srv.send(srv.peer.data(sid, body[pos:pos + 16384]))
        srv.send(srv.peer.data(sid, b"", end_stream=True))
        srv.pull()
        sid += 2
    return sid


def test_finished_calls_behind_a_long_deadline_hold_no_memory():
    srv = ServerSide()
    events, _ = srv.send(srv.peer.headers(1, REQUEST + LONG_DEADLINE))
    (long_call,) = srv.started(events)
    srv.events = []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        # 12 calls x 4 MiB declared, 512 KiB received each: 6 MiB if kept
        _partial_message_streams(srv, 3, 12)
        ended = [e for e in srv.events if e.kind == c.CE_CALL_ENDED]
        assert len(ended) == 12 and all(e.code == c.SC_INTERNAL for e in ended)
        srv.events = []
        del ended, events
        gc.collect()
        assert srv.core.next_timer() == pytest.approx(99999999 * 3600.0)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1024 * 1024, "finished calls still hold %d bytes" % held
    assert not long_call.is_done


def test_finished_calls_with_deadlines_leave_the_timer_heap():
    srv = ServerSide()
    events, _ = srv.send(srv.peer.headers(1, REQUEST + [(b"grpc-timeout", b"99999999H")]))
    (long_call,) = srv.started(events)
    for sid in range(3, 3 + 2 * 500, 2):
        events, _ = srv.send(srv.peer.headers(sid, REQUEST + [(b"grpc-timeout", b"50S")], end_stream=True))
        (call,) = srv.started(events)
        srv.core.send_status(call, 0)
        srv.pull()
    # bounded: the heap is compacted while finished entries pile up behind the top
    assert srv.core._pending_deadlines() <= 64
    assert srv.core.next_timer() == pytest.approx(99999999 * 3600.0)
    # deadlines still fire for live calls
    events, _ = srv.send(srv.peer.headers(2001, REQUEST + [(b"grpc-timeout", b"5S")]))
    (short,) = srv.started(events)
    assert srv.core.next_timer() == pytest.approx(5.0)
    events, _ = srv.timeout(5.0)
    assert short.is_done and short.code == c.SC_DEADLINE_EXCEEDED and not long_call.is_done


# ---------------------------------------------------------------------------
# 4. trailers over max_header_list_size on an active call


def test_oversized_trailers_end_the_active_call():
    srv = ServerSide(config=c.H2Config(max_header_list_size=1024, bdp_probing=False))
    events, _ = srv.send(srv.peer.headers(1, REQUEST))
    (call,) = srv.started(events)
    owner = object()
    srv.core.accept_call(call, owner)
    events, frames = srv.send(srv.peer.headers(1, [(b"x-big", b"v" * 4000)], end_stream=True))
    assert not srv.started(events)
    assert call.is_done and call.code == c.SC_RESOURCE_EXHAUSTED
    assert [e.kind for e in events if e.call is owner] == [c.CE_CALL_ENDED]
    # the application's later actions on it are no-ops, nothing is written
    assert srv.core.send_initial_metadata(call) is False
    assert srv.core.send_status(call, 0) is False
    assert srv.core.data_to_send() == b""
    # what the client saw: the status, then the stream closed
    statuses = [h for sid, h in srv.peer.header_blocks if sid == 1]
    assert statuses and (b"grpc-status", b"8") in statuses[-1]


def test_oversized_request_headers_are_still_rejected():
    srv = ServerSide(config=c.H2Config(max_header_list_size=1024, bdp_probing=False))
    events, frames = srv.send(srv.peer.headers(1, REQUEST + [(b"x-big", b"v" * 4000)], end_stream=True))
    assert not srv.started(events)
    statuses = [h for sid, h in srv.peer.header_blocks if sid == 1]
    assert statuses and (b"grpc-status", b"8") in statuses[-1]


# ---------------------------------------------------------------------------
# 5. handle_timeout after close_connection(error)


@pytest.mark.parametrize("role", ["server", "client"])
def test_handle_timeout_after_close_connection_does_not_raise(role):
    if role == "server":
        side = ServerSide()
        events, _ = side.send(side.peer.headers(1, REQUEST + [(b"grpc-timeout", b"1S")]))
        (call,) = side.started(events)
        core = side.core
    else:
        side = ClientSide()
        core = side.core
        call = core.start_call("/svc/Method", 0.0, 1.0)
        core.data_to_send()
    core.close_connection(INTERNAL_ERROR, b"bye")
    events = core.handle_timeout(2.0)
    assert call.is_done
    assert core.next_timer() == float("inf")
    assert core.handle_timeout(3.0) == []
    out = core.data_to_send()
    assert of_type(Peer(client=role == "server").parser.receive(out), HEADERS) == []


# ---------------------------------------------------------------------------
# 6. a grpc-status that is not a small decimal


@pytest.mark.parametrize("value", [b"2147483648", b"-1", b"99999999999999999999999", b" 0", b"+0",
                                   b"0x0", b"\xff", b"", b"1_0", b"17", b"\xd9\xa0"])
@pytest.mark.parametrize("trailers_only", [False, True])
def test_odd_grpc_status_values_end_the_call_unknown(value, trailers_only):
    cli = ClientSide()
    call = cli.core.start_call("/svc/Method", cli.now, -1)
    cli.core.send_unary(call, b"x")
    cli.peer.read(cli.core.data_to_send())
    response = [(b":status", b"200"), (b"content-type", b"application/grpc")]
    if trailers_only:
        frames = cli.peer.headers(1, response + [(b"grpc-status", value)], end_stream=True)
    else:
        frames = (cli.peer.headers(1, response)
                  + cli.peer.data(1, b"\x00\x00\x00\x00\x01x")
                  + cli.peer.headers(1, [(b"grpc-status", value)], end_stream=True))
    events = cli.core.receive_data(frames)
    assert call.is_done and call.code == c.SC_UNKNOWN
    assert [e.kind for e in events if e.call is call][-1] == c.CE_CALL_ENDED


@pytest.mark.parametrize("value,code", [(b"0", c.SC_OK), (b"16", c.SC_UNAUTHENTICATED), (b"014", 14)])
def test_decimal_grpc_status_values_are_read(value, code):
    cli = ClientSide()
    call = cli.core.start_call("/svc/Method", cli.now, -1)
    cli.core.send_unary(call, b"x")
    cli.peer.read(cli.core.data_to_send())
    cli.core.receive_data(cli.peer.headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")])
                          + cli.peer.data(1, b"\x00\x00\x00\x00\x01x")
                          + cli.peer.headers(1, [(b"grpc-status", value)], end_stream=True))
    assert call.code == code


# ---------------------------------------------------------------------------
# found by the client harness: calls waiting for a stream slot


def test_connection_lost_ends_calls_waiting_for_a_stream_slot():
    cli = ClientSide()
    # the server allows no stream at all: calls wait for a slot
    cli.core.receive_data(cli.peer.settings([(0x3, 0)]))
    cli.peer.read(cli.core.data_to_send())
    cli.core.take_events()
    waiting = [cli.core.start_call("/svc/Method", cli.now, 5.0) for _ in range(3)]
    assert [call.state for call in waiting] == [0, 0, 0]        # CS_WAITING
    events = cli.core.connection_lost("gone")
    assert all(call.is_done and call.code == c.SC_UNAVAILABLE for call in waiting)
    assert sorted(e.kind for e in events if e.call in waiting) == [c.CE_CALL_ENDED] * 3
    out = cli.core.data_to_send()
    assert not (out and of_type(cli.peer.read(out), HEADERS))   # none of them started
