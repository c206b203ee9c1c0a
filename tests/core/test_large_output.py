"""Large messages leave the core in pieces, without joining copies.

A message body is queued behind its 5-byte prefix without being copied into
one object with it; DATA frames gather their payload across queued chunks;
the output is handed over as pieces of about 64 KiB
(data_to_send_chunks), which data_to_send() still joins for callers that
want one object."""
import os

import hyperframe.frame as hf

from grpcpy import _cext as c

from .pair import Pair

MAX_FRAME = 16384
OUTPUT_CHUNK = 64 * 1024


def wide_open():
    """A pair whose windows take a few MiB at once (no BDP growth needed)."""
    cfg = dict(initial_window_size=8 << 20, connection_window_size=16 << 20, bdp_probing=False)
    return Pair(client_config=c.H2Config(**cfg), server_config=c.H2Config(**cfg),
                client_kw=dict(max_receive_message_length=8 << 20),
                server_kw=dict(max_receive_message_length=8 << 20))


def frames_of(data):
    out = []
    pos = 0
    while pos < len(data):
        frame, length = hf.Frame.parse_frame_header(memoryview(data[pos:pos + 9]))
        frame.parse_body(memoryview(data[pos + 9:pos + 9 + length]))
        out.append(frame)
        pos += 9 + length
    assert pos == len(data)
    return out


def test_a_large_request_leaves_in_pieces_and_arrives_whole():
    p = wide_open()
    body = os.urandom(1 << 20)
    call = p.client.start_call("/pkg.Svc/Big", p.now)
    p.client.send_unary(call, body)
    pieces = p.client.data_to_send_chunks()
    assert len(pieces) > 8
    assert all(type(piece) is bytes for piece in pieces)
    # every piece but the last is sealed once DATA filled 64 KiB: at most one
    # frame (and what preceded it) past that
    for piece in pieces[:-1]:
        assert OUTPUT_CHUNK <= len(piece) < OUTPUT_CHUNK + MAX_FRAME + 9 + 1024
    assert p.client.data_to_send_chunks() == []
    wire = b"".join(pieces)
    data = [f for f in frames_of(wire) if isinstance(f, hf.DataFrame)]
    # the prefix does not get a frame of its own: frames are full-size
    assert all(len(f.data) == MAX_FRAME for f in data[:-1])
    payload = b"".join(f.data for f in data)
    assert payload == b"\x00" + len(body).to_bytes(4, "big") + body
    assert "END_STREAM" in data[-1].flags
    events = []
    for piece in pieces:
        events += p.server.receive_data(piece, p.now)
    messages = [e.data for e in events if e.kind == c.CE_MESSAGE]
    assert messages == [body]


def test_data_to_send_still_returns_one_object():
    p = wide_open()
    body = bytes(range(256)) * 2048     # 512 KiB
    call = p.client.start_call("/pkg.Svc/Big", p.now)
    p.client.send_unary(call, body)
    out = p.client.data_to_send()
    assert type(out) is bytes and len(out) > len(body)
    assert p.client.data_to_send() == b""
    assert p.client.data_to_send_chunks() == []
    events = p.server.receive_data(out, p.now)
    assert [e.data for e in events if e.kind == c.CE_MESSAGE] == [body]


def test_large_echo_both_ways_with_small_windows():
    """Default windows: the messages go window by window; pieces and frames
    that span queued chunks reassemble exactly, in both directions."""
    p = Pair(client_kw=dict(max_receive_message_length=8 << 20),
             server_kw=dict(max_receive_message_length=8 << 20))
    bodies = [os.urandom(n) for n in (16 * 1024 - 5, 16 * 1024, 70000, 3 << 20)]
    for body in bodies:
        call = p.client.start_call("/pkg.Svc/Echo", p.now)
        p.client.send_unary(call, body)
        p.pump()
        got = None
        for ev in p.take_server():
            if ev.kind == c.CE_MESSAGE:
                got = ev.data
                p.server.message_consumed(ev.call, ev.value)
                p.server.send_message(ev.call, ev.data)
                p.server.send_status(ev.call, 0)
        assert got == body
        p.pump()
        back = [e.data for e in p.take_client() if e.kind == c.CE_MESSAGE and e.call is call]
        assert back == [body]
        assert call.is_done and call.code == c.SC_OK


def h2_pair(server_config=None):
    client = c.H2Connection(client=True)
    server = c.H2Connection(client=False, config=server_config)
    client.initiate()
    server.initiate()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    s = client.open_stream()
    client.send_headers(s.stream_id, [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/"),
                                      (b":authority", b"x")])
    return client, server, s.stream_id


def test_send_data_takes_a_tuple_of_chunks():
    client, server, sid = h2_pair()
    client.send_data(sid, (b"abc", bytearray(b"def"), memoryview(b"gh")), True)
    events = server.receive_data(client.data_to_send())
    data = [e for e in events if e.kind == c.EV_DATA]
    assert len(data) == 1
    assert data[0].data == b"abcdefgh" and data[0].end_stream


def test_queued_chunks_share_frames_when_the_window_opens():
    """Data queued while the window is shut goes out in frames filled from
    several queued chunks once it opens, not one frame per chunk."""
    client, server, sid = h2_pair(c.H2Config(initial_window_size=100, bdp_probing=False))
    client.send_data(sid, b"a" * 150)
    client.send_data(sid, b"b" * 30)
    client.send_data(sid, b"c" * 30, True)
    events = server.receive_data(client.data_to_send())
    assert [len(e.data) for e in events if e.kind == c.EV_DATA] == [100]
    server.acknowledge_received_data(sid, 100)
    client.receive_data(server.data_to_send())
    events = server.receive_data(client.data_to_send())
    data = [e for e in events if e.kind == c.EV_DATA]
    assert [e.data for e in data] == [b"a" * 50 + b"b" * 30 + b"c" * 20]
    server.acknowledge_received_data(sid, 100)
    client.receive_data(server.data_to_send())
    events = server.receive_data(client.data_to_send())
    data = [e for e in events if e.kind == c.EV_DATA]
    assert [e.data for e in data] == [b"c" * 10] and data[0].end_stream


def test_receive_data_keeps_nothing_of_a_reused_buffer():
    """The facades read into one buffer and reuse it after receive_data
    returns: DATA is parsed in place from it, so the core must have copied
    everything it keeps by then."""
    p = wide_open()
    bodies = [os.urandom(n) for n in (5, 70_000, 1 << 20, 16_384, 300_000)]
    calls = []
    for body in bodies:
        call = p.client.start_call("/pkg.Svc/Big", p.now)
        p.client.send_unary(call, body)
        calls.append(call)
    wire = p.client.data_to_send()
    buf = bytearray(40_000)
    events = []
    for i in range(0, len(wire), len(buf)):
        piece = wire[i:i + len(buf)]
        buf[:len(piece)] = piece
        events += p.server.receive_data(memoryview(buf)[:len(piece)], p.now)
        buf[:] = b"\x5a" * len(buf)
    assert [e.data for e in events if e.kind == c.CE_MESSAGE] == bodies


def test_the_window_makes_room_for_a_large_message():
    """Once a message larger than the stream window has begun, the receiver
    lets the sender send all of it without waiting for credit window by
    window (up to max_window_size)."""
    p = Pair(client_kw=dict(max_receive_message_length=8 << 20),
             server_kw=dict(max_receive_message_length=8 << 20),
             server_config=c.H2Config(bdp_probing=False))
    body = os.urandom(3 << 20)
    call = p.client.start_call("/pkg.Svc/Big", p.now)
    p.client.send_unary(call, body)
    first = p.client.data_to_send()                 # what the initial windows allow
    assert len(first) < 100_000
    p.server.receive_data(first, p.now)
    stream = p.server.streams[call.stream_id]
    assert stream.recv_window >= len(body) + 5 - 65535
    p.client.receive_data(p.server.data_to_send(), p.now)
    rest = p.client.data_to_send()                  # the rest of the message at once
    assert len(rest) > len(body) - 100_000
    events = p.server.receive_data(rest, p.now)
    assert [e.data for e in events if e.kind == c.CE_MESSAGE] == [body]


def test_a_reader_that_does_not_consume_still_gets_backpressure():
    p = Pair(client_kw=dict(max_receive_message_length=8 << 20), client_config=c.H2Config(bdp_probing=False))
    call = p.client.start_call("/pkg.Svc/Download", p.now)
    p.client.send_unary(call, b"")
    p.pump()
    scall = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED][0].call
    for _ in range(3):
        p.server.send_message(scall, os.urandom(2 << 20))
    p.pump()
    delivered = [e for e in p.take_client() if e.kind == c.CE_MESSAGE]
    assert len(delivered) == 1                       # not consumed: the rest waits
    # the client holds at most the room it made for one message and a
    # window: the third message waits at the server
    stream = p.client.streams[call.stream_id]
    assert stream.recv_window <= p.client.local_initial_window_size
    assert p.server.streams[scall.stream_id].pending_bytes > (2 << 20)
    for _ in range(50):
        for e in delivered:
            p.client.message_consumed(call, e.value)
        p.pump()
        delivered = [e for e in p.take_client() if e.kind == c.CE_MESSAGE]
        if not p.server.streams[scall.stream_id].pending_bytes:
            break
    assert not p.server.streams[scall.stream_id].pending_bytes
