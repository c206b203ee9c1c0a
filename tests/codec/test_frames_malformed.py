"""Malformed frames: every rule of RFC 9113 §4-§6 the parser enforces, with
the exact error code and kind (connection or stream), and garbage input that
must produce nothing but FrameError or frames."""
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from grpcpy._cext import FrameError, FrameParser

from .frameutil import (
    CONTINUATION, DATA, END_HEADERS, ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, GOAWAY,
    HEADERS, PADDED, PING, PRIORITY, PRIORITY_FLAG, PROTOCOL_ERROR, PUSH_PROMISE, RST_STREAM, SETTINGS,
    WINDOW_UPDATE, feed, full_norm, raw, split,
)

CONN, STREAM = "connection", "stream"
EH = END_HEADERS
U32 = lambda v: v.to_bytes(4, "big")  # noqa: E731
OPEN_HEADERS = raw(HEADERS, 0, 1, b"hdr")          # a header block left open on stream 1
OPEN_PUSH = raw(PUSH_PROMISE, 0, 1, U32(2) + b"p")


def setting(ident, value):
    return ident.to_bytes(2, "big") + U32(value)


# name, raw bytes, error code, connection/stream, stream id of the error
ROWS = [
    # DATA (§6.1)
    ("data on stream 0", raw(DATA, 0, 0, b"x"), PROTOCOL_ERROR, CONN, 0),
    ("data padded, empty payload", raw(DATA, PADDED, 1), FRAME_SIZE_ERROR, CONN, 1),
    ("data pad length = payload length", raw(DATA, PADDED, 1, b"\x05abcd"), PROTOCOL_ERROR, CONN, 1),
    ("data pad length > payload", raw(DATA, PADDED, 1, b"\xff"), PROTOCOL_ERROR, CONN, 1),
    # HEADERS (§6.2)
    ("headers on stream 0", raw(HEADERS, EH, 0, b"x"), PROTOCOL_ERROR, CONN, 0),
    ("headers padded, empty payload", raw(HEADERS, EH | PADDED, 3), FRAME_SIZE_ERROR, CONN, 3),
    ("headers pad too long", raw(HEADERS, EH | PADDED, 3, b"\x05abcd"), PROTOCOL_ERROR, CONN, 3),
    ("headers priority, 4 bytes", raw(HEADERS, EH | PRIORITY_FLAG, 3, b"\0\0\0\1"), FRAME_SIZE_ERROR, CONN, 3),
    ("headers priority, empty", raw(HEADERS, EH | PRIORITY_FLAG, 3), FRAME_SIZE_ERROR, CONN, 3),
    ("headers padded+priority, short", raw(HEADERS, EH | PADDED | PRIORITY_FLAG, 3, b"\0\0\0\0\1"),
     FRAME_SIZE_ERROR, CONN, 3),
    ("headers pad exceeds what priority leaves", raw(HEADERS, EH | PADDED | PRIORITY_FLAG, 3, b"\x02" + U32(1) + b"\x0fz"),
     PROTOCOL_ERROR, CONN, 3),
    ("headers depends on itself", raw(HEADERS, EH | PRIORITY_FLAG, 3, U32(3) + b"\x0fblock"), PROTOCOL_ERROR, STREAM, 3),
    ("headers depends on itself, exclusive", raw(HEADERS, EH | PRIORITY_FLAG, 3, U32(0x80000003) + b"\x0f"),
     PROTOCOL_ERROR, STREAM, 3),
    # PRIORITY (§6.3)
    ("priority on stream 0", raw(PRIORITY, 0, 0, U32(1) + b"\x0f"), PROTOCOL_ERROR, CONN, 0),
    ("priority 4 bytes", raw(PRIORITY, 0, 5, U32(1)), FRAME_SIZE_ERROR, STREAM, 5),
    ("priority 6 bytes", raw(PRIORITY, 0, 5, U32(1) + b"\x0f\x00"), FRAME_SIZE_ERROR, STREAM, 5),
    ("priority empty", raw(PRIORITY, 0, 5), FRAME_SIZE_ERROR, STREAM, 5),
    ("priority depends on itself", raw(PRIORITY, 0, 5, U32(5) + b"\x0f"), PROTOCOL_ERROR, STREAM, 5),
    # RST_STREAM (§6.4)
    ("rst_stream on stream 0", raw(RST_STREAM, 0, 0, U32(8)), PROTOCOL_ERROR, CONN, 0),
    ("rst_stream 3 bytes", raw(RST_STREAM, 0, 1, b"\0\0\0"), FRAME_SIZE_ERROR, CONN, 1),
    ("rst_stream 5 bytes", raw(RST_STREAM, 0, 1, b"\0\0\0\0\0"), FRAME_SIZE_ERROR, CONN, 1),
    # SETTINGS (§6.5)
    ("settings on stream 1", raw(SETTINGS, 0, 1), PROTOCOL_ERROR, CONN, 1),
    ("settings ack with payload", raw(SETTINGS, 1, 0, setting(1, 0)), FRAME_SIZE_ERROR, CONN, 0),
    ("settings 7 bytes", raw(SETTINGS, 0, 0, setting(1, 0) + b"\0"), FRAME_SIZE_ERROR, CONN, 0),
    ("settings 5 bytes", raw(SETTINGS, 0, 0, b"\0" * 5), FRAME_SIZE_ERROR, CONN, 0),
    ("settings enable_push 2", raw(SETTINGS, 0, 0, setting(2, 2)), PROTOCOL_ERROR, CONN, 0),
    ("settings initial window 2^31", raw(SETTINGS, 0, 0, setting(1, 5) + setting(4, 2**31)),
     FLOW_CONTROL_ERROR, CONN, 0),
    ("settings max frame size 2^14-1", raw(SETTINGS, 0, 0, setting(5, 2**14 - 1)), PROTOCOL_ERROR, CONN, 0),
    ("settings max frame size 2^24", raw(SETTINGS, 0, 0, setting(5, 2**24)), PROTOCOL_ERROR, CONN, 0),
    # PUSH_PROMISE (§6.6)
    ("push_promise on stream 0", raw(PUSH_PROMISE, EH, 0, U32(2)), PROTOCOL_ERROR, CONN, 0),
    ("push_promise 3 bytes", raw(PUSH_PROMISE, EH, 1, b"\0\0\2"), FRAME_SIZE_ERROR, CONN, 1),
    ("push_promise padded, empty", raw(PUSH_PROMISE, EH | PADDED, 1), FRAME_SIZE_ERROR, CONN, 1),
    ("push_promise padded, no room for id", raw(PUSH_PROMISE, EH | PADDED, 1, b"\0\0\0\2"), FRAME_SIZE_ERROR, CONN, 1),
    ("push_promise pad too long", raw(PUSH_PROMISE, EH | PADDED, 1, b"\x02" + U32(2) + b"z"), PROTOCOL_ERROR, CONN, 1),
    # PING (§6.7)
    ("ping on stream 1", raw(PING, 0, 1, b"12345678"), PROTOCOL_ERROR, CONN, 1),
    ("ping 7 bytes", raw(PING, 0, 0, b"1234567"), FRAME_SIZE_ERROR, CONN, 0),
    ("ping 9 bytes", raw(PING, 1, 0, b"123456789"), FRAME_SIZE_ERROR, CONN, 0),
    # GOAWAY (§6.8)
    ("goaway on stream 1", raw(GOAWAY, 0, 1, U32(0) + U32(0)), PROTOCOL_ERROR, CONN, 1),
    ("goaway 7 bytes", raw(GOAWAY, 0, 0, b"\0" * 7), FRAME_SIZE_ERROR, CONN, 0),
    ("goaway empty", raw(GOAWAY, 0, 0), FRAME_SIZE_ERROR, CONN, 0),
    # WINDOW_UPDATE (§6.9)
    ("window_update 3 bytes, stream", raw(WINDOW_UPDATE, 0, 1, b"\0\0\1"), FRAME_SIZE_ERROR, CONN, 1),
    ("window_update 5 bytes, connection", raw(WINDOW_UPDATE, 0, 0, b"\0\0\0\1\0"), FRAME_SIZE_ERROR, CONN, 0),
    ("window_update 0 on connection", raw(WINDOW_UPDATE, 0, 0, U32(0)), PROTOCOL_ERROR, CONN, 0),
    ("window_update 0 on stream", raw(WINDOW_UPDATE, 0, 7, U32(0)), PROTOCOL_ERROR, STREAM, 7),
    ("window_update 0 but reserved bit set", raw(WINDOW_UPDATE, 0, 7, U32(0x80000000)), PROTOCOL_ERROR, STREAM, 7),
    # CONTINUATION (§6.10) and header-block sequencing
    ("continuation on stream 0", raw(CONTINUATION, EH, 0, b"x"), PROTOCOL_ERROR, CONN, 0),
    ("continuation without a block", raw(CONTINUATION, EH, 1, b"x"), PROTOCOL_ERROR, CONN, 1),
    ("continuation after a closed block", raw(HEADERS, EH, 1, b"a") + raw(CONTINUATION, EH, 1, b"x"),
     PROTOCOL_ERROR, CONN, 1),
    ("continuation on another stream", OPEN_HEADERS + raw(CONTINUATION, EH, 3, b"x"), PROTOCOL_ERROR, CONN, 3),
    ("data inside a header block", OPEN_HEADERS + raw(DATA, 0, 1, b"x"), PROTOCOL_ERROR, CONN, 1),
    ("ping inside a header block", OPEN_HEADERS + raw(PING, 0, 0, b"12345678"), PROTOCOL_ERROR, CONN, 0),
    ("headers inside a header block", OPEN_HEADERS + raw(HEADERS, EH, 1, b"x"), PROTOCOL_ERROR, CONN, 1),
    ("unknown type inside a header block", OPEN_HEADERS + raw(0x42, 0, 1, b"x"), PROTOCOL_ERROR, CONN, 1),
    ("settings inside a push_promise block", OPEN_PUSH + raw(SETTINGS, 0, 0), PROTOCOL_ERROR, CONN, 0),
    ("continuation flood", OPEN_HEADERS + raw(CONTINUATION, 0, 1) * 65, ENHANCE_YOUR_CALM, CONN, 1),
    ("header block too large", OPEN_HEADERS + raw(CONTINUATION, 0, 1, b"z" * 16384) * 16,
     ENHANCE_YOUR_CALM, CONN, 1),
    # frame size (§4.2)
    ("data over max_frame_size", raw(DATA, 0, 1, b"x" * 16385), FRAME_SIZE_ERROR, CONN, 1),
    ("settings over max_frame_size", raw(SETTINGS, 0, 0, b"\0" * 16386), FRAME_SIZE_ERROR, CONN, 0),
    ("unknown type over max_frame_size", raw(0xbb, 0, 0, b"x" * 16385), FRAME_SIZE_ERROR, CONN, 0),
    ("max-length header only", b"\xff\xff\xff\x00\x00\x00\x00\x00\x01", FRAME_SIZE_ERROR, CONN, 1),
]

PING_FRAME = raw(PING, 0, 0, b"after!!!")


@pytest.mark.parametrize("name,buf,code,kind,sid", ROWS, ids=[r[0] for r in ROWS])
@pytest.mark.parametrize("chunking", ["whole", "bytewise"])
def test_malformed(name, buf, code, kind, sid, chunking):
    parser = FrameParser()
    chunks = [buf + PING_FRAME] if chunking == "whole" else split(buf + PING_FRAME, [1])
    frames, err = feed(chunks, parser)
    if kind == CONN:
        assert err is not None, frames
        assert (err.error_code, err.connection, err.stream_id) == (code, True, sid)
        assert all(f.error is None for f in frames)
        # the parser is dead from now on
        with pytest.raises(FrameError) as again:
            parser.receive(PING_FRAME)
        assert again.value.error_code == code and again.value.connection
    else:
        assert err is None
        bad, after = frames
        assert isinstance(bad.error, FrameError)
        assert (bad.error.error_code, bad.error.connection, bad.error.stream_id) == (code, False, sid)
        assert bad.stream_id == sid
        # parsing went on: the frame after the stream error came out
        assert after.type == PING and after.data == b"after!!!" and after.error is None


def test_stream_error_headers_still_carry_their_block():
    buf = raw(HEADERS, EH | PRIORITY_FLAG | PADDED, 3, b"\x02" + U32(3) + b"\x0fBLOCK\0\0")
    (f,) = FrameParser().receive(buf)
    assert f.error.error_code == PROTOCOL_ERROR and not f.error.connection
    assert f.data == b"BLOCK" and f.depends_on == 3 and f.weight == 16 and f.pad_length == 2
    # also when the block arrives in CONTINUATION frames
    buf = raw(HEADERS, PRIORITY_FLAG, 3, U32(3) + b"\x0fBL") + raw(CONTINUATION, EH, 3, b"OCK")
    (f,) = FrameParser().receive(buf)
    assert f.error is not None and f.data == b"BLOCK" and f.end_headers


def test_frames_before_a_connection_error_are_attached():
    buf = PING_FRAME + raw(DATA, 0, 1, b"ok") + raw(DATA, 0, 0, b"x")
    with pytest.raises(FrameError) as exc:
        FrameParser().receive(buf)
    assert [f.type for f in exc.value.frames] == [PING, DATA]


def test_oversize_rejected_from_the_header_alone():
    parser = FrameParser()
    header = b"\xff\xff\xff" + bytes([DATA, 0]) + U32(1)
    assert parser.receive(header[:8]) == []
    assert parser.buffered == 8
    with pytest.raises(FrameError) as exc:
        parser.receive(header[8:])
    assert exc.value.error_code == FRAME_SIZE_ERROR and exc.value.connection
    assert parser.buffered <= 9
    with pytest.raises(FrameError):
        parser.receive(b"\0" * 1000)
    assert parser.buffered <= 9


def test_max_frame_size_boundary():
    parser = FrameParser()
    (f,) = parser.receive(raw(DATA, 0, 1, b"x" * 16384))
    assert len(f.data) == 16384
    parser = FrameParser(max_frame_size=20000)
    (f,) = parser.receive(raw(DATA, 0, 1, b"x" * 20000))
    with pytest.raises(FrameError):
        parser.receive(raw(DATA, 0, 1, b"x" * 20001))


def test_continuation_limits_are_exact_and_configurable():
    ok = OPEN_HEADERS + raw(CONTINUATION, 0, 1) * 63 + raw(CONTINUATION, EH, 1, b"!")
    (f,) = FrameParser().receive(ok)
    assert f.data == b"hdr!"
    parser = FrameParser(max_continuations=2)
    with pytest.raises(FrameError) as exc:
        parser.receive(OPEN_HEADERS + raw(CONTINUATION, 0, 1) * 3)
    assert exc.value.error_code == ENHANCE_YOUR_CALM
    # header block size: 3 + 997 = 1000 is fine, 1001 is not
    (f,) = FrameParser(max_header_block_size=1000).receive(OPEN_HEADERS + raw(CONTINUATION, EH, 1, b"z" * 997))
    assert len(f.data) == 1000
    with pytest.raises(FrameError) as exc:
        FrameParser(max_header_block_size=1000).receive(OPEN_HEADERS + raw(CONTINUATION, EH, 1, b"z" * 998))
    assert exc.value.error_code == ENHANCE_YOUR_CALM
    # a first fragment that alone exceeds the limit is refused from its header
    parser = FrameParser(max_header_block_size=100)
    with pytest.raises(FrameError) as exc:
        parser.receive(raw(HEADERS, 0, 1, b"h" * 101)[:9])
    assert exc.value.error_code == ENHANCE_YOUR_CALM


def test_padding_edges_that_are_legal():
    # pad length = payload - 1: all padding, empty data (RFC 9113 §6.1)
    (d,) = FrameParser().receive(raw(DATA, PADDED, 1, b"\x04\0\0\0\0"))
    assert d.data == b"" and d.pad_length == 4 and d.flow_length == 5
    (h,) = FrameParser().receive(raw(HEADERS, EH | PADDED | PRIORITY_FLAG, 1, b"\x02" + U32(0) + b"\0\0\0"))
    assert h.data == b"" and h.pad_length == 2
    (p,) = FrameParser().receive(raw(PUSH_PROMISE, EH | PADDED, 1, b"\x01" + U32(2) + b"\0"))
    assert p.data == b"" and p.promised_stream_id == 2


def test_settings_edges_that_are_legal():
    buf = raw(SETTINGS, 0, 0, setting(2, 0) + setting(2, 1) + setting(4, 2**31 - 1)
              + setting(5, 2**14) + setting(5, 2**24 - 1) + setting(0xffff, 2**32 - 1))
    (s,) = FrameParser().receive(buf)
    assert s.settings == [(2, 0), (2, 1), (4, 2**31 - 1), (5, 2**14), (5, 2**24 - 1), (0xffff, 2**32 - 1)]


# -- garbage ------------------------------------------------------------------

MAX_BUFFERED = 16384 + 9 + 256 * 1024


def _frame_soup(rng, n):
    """Frame-shaped garbage: plausible headers (small lengths, types around
    the known range, random flags, low stream ids) over random payloads, so
    the input reaches the per-type checks instead of dying on a huge length."""
    out = bytearray()
    for _ in range(n):
        length = rng.choice([0, 1, 4, 5, 6, 8, 9, rng.randint(0, 40), rng.randint(0, 20000)])
        ftype = rng.choice([rng.randint(0, 10), HEADERS, CONTINUATION, DATA, rng.randint(0, 255)])
        flags = rng.choice([0, END_HEADERS, rng.randint(0, 255)])
        sid = rng.choice([0, 1, 3, rng.randint(0, 2**32 - 1)])
        out += length.to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big")
        out += rng.randbytes(length)
    return bytes(out)


def check_garbage(buf, sizes, max_continuations=64):
    """Feed buf in the given chunking: only frames and connection FrameErrors,
    memory bounded, and the same outcome as feeding it whole."""
    parser = FrameParser(max_continuations=max_continuations)
    frames = []
    error = None
    for chunk in split(buf, sizes):
        try:
            frames.extend(parser.receive(chunk))
        except FrameError as exc:
            assert exc.connection is True
            frames.extend(exc.frames)
            error = exc
            break
        assert parser.buffered <= MAX_BUFFERED
    for f in frames:
        assert f.error is None or (isinstance(f.error, FrameError) and f.error.connection is False)
    whole = FrameParser(max_continuations=max_continuations)
    try:
        whole_frames = whole.receive(buf)
        whole_error = None
    except FrameError as exc:
        whole_frames = exc.frames
        whole_error = exc
    assert [full_norm(f) for f in frames] == [full_norm(f) for f in whole_frames]
    assert (error is None) == (whole_error is None)
    if error is not None:
        assert (error.error_code, error.stream_id) == (whole_error.error_code, whole_error.stream_id)
    return frames, error


GARBAGE = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@GARBAGE
@given(st.binary(max_size=2000), st.lists(st.integers(1, 50), min_size=1, max_size=6))
def test_random_bytes(buf, sizes):
    check_garbage(buf, sizes)


@GARBAGE
@given(st.randoms(use_true_random=False), st.integers(1, 30), st.lists(st.integers(1, 200), min_size=1, max_size=6))
def test_frame_shaped_garbage(rng, n, sizes):
    check_garbage(_frame_soup(rng, n), sizes, max_continuations=rng.choice([0, 2, 64]))


def test_seeded_garbage_loop():
    rng = random.Random(20240613)
    outcomes = {"frames": 0, "stream errors": 0, "connection errors": 0}
    for i in range(4000):
        if i % 2:
            buf = rng.randbytes(rng.randint(0, 600))
        else:
            buf = _frame_soup(rng, rng.randint(1, 20))
        sizes = [rng.randint(1, 64) for _ in range(rng.randint(1, 5))]
        frames, error = check_garbage(buf, sizes, max_continuations=rng.choice([1, 64]))
        outcomes["frames"] += len(frames)
        outcomes["stream errors"] += sum(f.error is not None for f in frames)
        outcomes["connection errors"] += error is not None
    # the garbage reached all three outcomes, so the loop tested something
    assert all(outcomes.values()), outcomes
