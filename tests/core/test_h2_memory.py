"""What a peer can make the core hold, and what the core sends a peer that
stops reading: bounded by the windows, never by the peer's goodwill."""
import tracemalloc

from grpcpy import _cext as c

from .frame_factory import (
    CONTINUATION, DATA, ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, HEADERS, REFUSED_STREAM, REQUEST,
    RESPONSE, RST_STREAM, STREAM_CLOSED, Harness, events_of, parse_frames, raw, rsts,
)


def test_peer_that_never_reads_gets_no_more_than_its_windows():
    h = Harness("server")
    sids = [h.open_stream() for _ in range(3)]
    h.clear()
    chunk = b"z" * 65536
    for sid in sids:
        h.core.send_headers(sid, RESPONSE)
    for _ in range(40):                       # 2.5 MiB queued per stream
        for sid in sids:
            h.core.send_data(sid, chunk)
    frames = h.pull()
    data = [f for f in frames if f.type == DATA]
    assert sum(f.flow_length for f in data) == 65535          # the connection window, not a byte more
    assert all(f.flow_length <= 16384 for f in data)
    assert {f.stream_id for f in data} <= set(sids)
    assert h.core.send_window == 0
    assert all(h.core.local_flow_window(sid) == 0 for sid in sids)
    # more time, more data, no WINDOW_UPDATE: nothing more goes out
    for sid in sids:
        h.core.send_data(sid, chunk)
    assert h.pull() == []
    h.send(h.peer.ping())
    assert [f.type for f in h.frames if f.type == DATA] == [DATA] * len(data)


def test_peer_flooding_a_stream_is_reset_not_buffered():
    """Stream window 65535: the first 65535 bytes are delivered, the frame
    that exceeds it is a stream FLOW_CONTROL_ERROR, what follows on the
    reset stream is dropped; nothing is held for the stream."""
    h = Harness("server")
    sid = h.open_stream()
    h.clear()
    delivered = 0
    for _ in range(20):
        ev, _ = h.send(h.peer.data(sid, b"f" * 16384))
        delivered += sum(e.value for e in events_of(ev, c.EV_DATA, sid))
    assert delivered == 3 * 16384              # the 4th frame would pass 65535
    r = rsts(h.frames, sid)
    assert [f.error_code for f in r] == [FLOW_CONTROL_ERROR]
    assert sid not in h.core.streams and not h.core.closed
    assert h.core.recv_window > 0              # connection credit kept flowing
    h.expect_usable()


def test_peer_flooding_the_connection_is_a_connection_error():
    h = Harness("server", connection_window_size=65535, initial_window_size=1 << 20, max_frame_size=1 << 16)
    sid = h.open_stream()
    h.clear()
    # the core credits the connection on receipt, once a quarter is owed;
    # a peer that ignores our window and sends 65535+1 in one go is past it
    h.send(h.peer.data(sid, b"f" * 65535))
    assert not h.core.closed
    h.send(h.peer.data(sid, b"f" * 65536))
    h.expect_connection_error(FLOW_CONTROL_ERROR)


def test_header_block_assembly_is_bounded():
    h = Harness("server", max_header_block_size=1000)
    block = h.peer.block(REQUEST)
    h.send(raw(HEADERS, 0, 1, block), raw(CONTINUATION, 0, 1, b"\x00" * 600),
           raw(CONTINUATION, 0, 1, b"\x00" * 600))
    h.expect_connection_error(ENHANCE_YOUR_CALM)


def _refuse(core, peer, first, count):
    for i in range(count):
        sid = first + 2 * i
        core.receive_data(peer.headers(sid, end_stream=True))
        out = core.data_to_send()
        assert out[3] == RST_STREAM, out[:9]
    return first + 2 * count


def test_refused_streams_do_not_grow_memory():
    """Every stream refused for MAX_CONCURRENT_STREAMS is remembered as
    reset, so late frames for it are ignored; that memory is bounded
    (CLOSED_MEMORY entries), or a peer could grow it without end."""
    h = Harness("server", max_concurrent_streams=1)
    h.open_stream()                            # stream 1 holds the only slot
    h.clear()
    core, peer = h.core, h.peer
    nxt = _refuse(core, peer, 3, 3000)         # past the bound: the steady state
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _refuse(core, peer, nxt, 20000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 200_000, "refusing 20000 streams kept %d bytes" % grown
    assert not core.closed and 1 in core.streams


def test_closed_stream_memory_forgets_oldest_first():
    """The newest CLOSED_MEMORY (1024) closed streams are remembered, the
    oldest forgotten first: a late DATA frame on a stream we reset and still
    remember is discarded (§5.1 closed), one on a stream forgotten long ago
    gets STREAM_CLOSED. Checked after the memory has wrapped several times."""
    h = Harness("server", max_concurrent_streams=1)
    h.open_stream()                            # stream 1 holds the only slot
    h.clear()
    core, peer = h.core, h.peer
    first = 3
    count = 3000
    _refuse(core, peer, first, count)
    newest = first + 2 * (count - 1)
    oldest_kept = first + 2 * (count - 1024)
    forgotten = oldest_kept - 2
    for sid in (newest, oldest_kept, newest - 200):
        core.receive_data(peer.data(sid, b"late"))
        assert core.data_to_send() == b"", "late DATA on remembered stream %d was answered" % sid
    for sid in (forgotten, first):
        core.receive_data(peer.data(sid, b"late"))
        sent = parse_frames(core.data_to_send())
        assert [(f.stream_id, f.error_code) for f in rsts(sent)] == [(sid, STREAM_CLOSED)], sent
    assert not core.closed and 1 in core.streams
