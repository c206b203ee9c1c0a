"""grpcpy's HTTP/2 frame codec checked against hyperframe, both ways.

For random frames of all ten types: serialized by hyperframe, grpcpy must
parse the same fields hyperframe does; serialized by grpcpy, hyperframe must
parse the same fields, and the bytes must equal hyperframe's where the two
encodings are fully determined by the fields. Every stream is also fed in
random chunkings (1-byte chunks included) and must give the same frames.
"""
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from grpcpy._cext import (
    Frame,
    FrameParser,
    WriteBuffer,
    write_continuation_frame,
    write_data_frame,
    write_frame,
    write_goaway_frame,
    write_headers_frame,
    write_ping_frame,
    write_priority_frame,
    write_push_promise_frame,
    write_rst_stream_frame,
    write_settings_frame,
    write_window_update_frame,
)

from .framegen import chunked, recorded_grpc_stream
from .frameutil import (
    CONTINUATION, DATA, END_HEADERS, HEADERS, PADDED, PRIORITY_FLAG, PUSH_PROMISE, SETTINGS,
    build, feed, full_norm, gp_norm, hf_norm, hf_parse_all, raw, split,
)

STREAM = st.integers(1, 2**31 - 1)
U32 = st.integers(0, 2**32 - 1)
BLOB = st.binary(max_size=300)
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _flags(*pairs):
    return [name for name, on in pairs if on]


# Each strategy yields (hyperframe bytes, grpcpy bytes or None). grpcpy bytes
# are None when the grpcpy writers cannot express that exact frame (a PADDED
# flag with zero padding: the writers pad only when pad_length > 0).

@st.composite
def padding(draw):
    padded = draw(st.booleans())
    return padded, (draw(st.integers(0, 255)) if padded else 0)


@st.composite
def data_frames(draw):
    sid, data, end = draw(STREAM), draw(BLOB), draw(st.booleans())
    padded, pad = draw(padding())
    hf = DataFrame(sid, data=data, pad_length=pad, flags=_flags(("END_STREAM", end), ("PADDED", padded)))
    gp = build(write_data_frame, sid, data, end, pad) if padded == (pad > 0) else None
    return hf.serialize(), gp


@st.composite
def priorities(draw, sid):
    dep = draw(st.integers(0, 2**31 - 1).filter(lambda d: d != sid))
    return dep, draw(st.integers(1, 256)), draw(st.booleans())


@st.composite
def headers_frames(draw):
    sid, block, end = draw(STREAM), draw(BLOB), draw(st.booleans())
    padded, pad = draw(padding())
    prio = draw(st.none() | priorities(sid))
    if padded and pad and not block and prio is None:
        # hyperframe rejects padding that leaves an empty block (it compares
        # the pad length with the bytes after the pad-length byte, >=), which
        # RFC 9113 §6.2 allows; keep to frames both accept.
        block = b"\x00"
    kw = {}
    if prio is not None:
        kw = dict(depends_on=prio[0], stream_weight=prio[1] - 1, exclusive=prio[2])
    hf = HeadersFrame(sid, data=block, pad_length=pad, flags=_flags(
        ("END_STREAM", end), ("END_HEADERS", True), ("PADDED", padded), ("PRIORITY", prio is not None)), **kw)
    gp = None
    if padded == (pad > 0):
        gp = build(write_headers_frame, sid, block, end_stream=end, priority=prio, pad_length=pad)
    return hf.serialize(), gp


@st.composite
def priority_frames(draw):
    sid = draw(STREAM)
    dep, weight, excl = draw(priorities(sid))
    hf = PriorityFrame(sid, depends_on=dep, stream_weight=weight - 1, exclusive=excl)
    return hf.serialize(), build(write_priority_frame, sid, dep, weight, excl)


@st.composite
def rst_stream_frames(draw):
    sid, code = draw(STREAM), draw(U32)
    return RstStreamFrame(sid, error_code=code).serialize(), build(write_rst_stream_frame, sid, code)


SETTING_VALUES = {
    2: st.integers(0, 1),
    4: st.integers(0, 2**31 - 1),
    5: st.integers(2**14, 2**24 - 1),
}


@st.composite
def settings_frames(draw):
    if draw(st.booleans()):
        return SettingsFrame(0, flags=["ACK"]).serialize(), build(write_settings_frame, ack=True)
    # hyperframe keeps settings in a dict and writes identifiers as one byte
    # (masked with 0xFF), so: distinct identifiers below 256.
    ids = draw(st.lists(st.integers(0, 255), unique=True, max_size=12))
    pairs = [(i, draw(SETTING_VALUES.get(i, U32))) for i in ids]
    return SettingsFrame(0, settings=dict(pairs)).serialize(), build(write_settings_frame, pairs)


@st.composite
def push_promise_frames(draw):
    sid, block = draw(STREAM), draw(BLOB)
    # hyperframe only accepts even, non-zero promised ids (server-initiated).
    promised = 2 * draw(st.integers(1, 2**30 - 1))
    padded, pad = draw(padding())
    hf = PushPromiseFrame(sid, promised_stream_id=promised, data=block, pad_length=pad,
                          flags=_flags(("END_HEADERS", True), ("PADDED", padded)))
    gp = build(write_push_promise_frame, sid, promised, block, pad_length=pad) if padded == (pad > 0) else None
    return hf.serialize(), gp


@st.composite
def ping_frames(draw):
    opaque, ack = draw(st.binary(min_size=8, max_size=8)), draw(st.booleans())
    return PingFrame(0, opaque_data=opaque, flags=_flags(("ACK", ack))).serialize(), build(write_ping_frame, opaque, ack)


@st.composite
def goaway_frames(draw):
    last, code, debug = draw(st.integers(0, 2**31 - 1)), draw(U32), draw(BLOB)
    hf = GoAwayFrame(0, last_stream_id=last, error_code=code, additional_data=debug)
    return hf.serialize(), build(write_goaway_frame, last, code, debug)


@st.composite
def window_update_frames(draw):
    sid, inc = draw(st.integers(0, 2**31 - 1)), draw(st.integers(1, 2**31 - 1))
    return WindowUpdateFrame(sid, window_increment=inc).serialize(), build(write_window_update_frame, sid, inc)


@st.composite
def header_blocks(draw):
    """HEADERS or PUSH_PROMISE without END_HEADERS, then CONTINUATION frames.
    The grpcpy side writes the same block split at the same max_frame_size."""
    ftype = draw(st.sampled_from([HEADERS, PUSH_PROMISE]))
    sid = draw(STREAM)
    max_size = draw(st.integers(6, 40))
    n_cont = draw(st.integers(1, 6))
    block = draw(st.binary(min_size=max_size * n_cont - 5, max_size=max_size * (n_cont + 1) - 5))
    # the first frame carries max_size payload bytes: 4 of them are the
    # promised id for PUSH_PROMISE, 5 the priority fields for HEADERS with
    # priority.
    prio = draw(st.none() | priorities(sid)) if ftype == HEADERS else None
    promised = 2 * draw(st.integers(1, 2**30 - 1))
    end = draw(st.booleans()) if ftype == HEADERS else False
    overhead = 4 if ftype == PUSH_PROMISE else (5 if prio else 0)
    first = max_size - overhead
    if first >= len(block):
        block += b"\x00" * (first + 1 - len(block))
    frags = [block[:first]] + [block[i:i + max_size] for i in range(first, len(block), max_size)]
    if ftype == HEADERS:
        kw = {}
        if prio is not None:
            kw = dict(depends_on=prio[0], stream_weight=prio[1] - 1, exclusive=prio[2])
        head = HeadersFrame(sid, data=frags[0], flags=_flags(("END_STREAM", end), ("PRIORITY", prio is not None)), **kw)
        gp = build(write_headers_frame, sid, block, end_stream=end, max_frame_size=max_size, priority=prio)
    else:
        head = PushPromiseFrame(sid, promised_stream_id=promised, data=frags[0])
        gp = build(write_push_promise_frame, sid, promised, block, max_frame_size=max_size)
    hf = head.serialize()
    for i, frag in enumerate(frags[1:], 1):
        hf += ContinuationFrame(sid, data=frag, flags=_flags(("END_HEADERS", i == len(frags) - 1))).serialize()
    return hf, gp


ANY_FRAME = st.one_of(
    data_frames(), headers_frames(), priority_frames(), rst_stream_frames(), settings_frames(),
    push_promise_frames(), ping_frames(), goaway_frames(), window_update_frames(), header_blocks(),
)
PER_TYPE = {
    "DATA": data_frames(), "HEADERS": headers_frames(), "PRIORITY": priority_frames(),
    "RST_STREAM": rst_stream_frames(), "SETTINGS": settings_frames(),
    "PUSH_PROMISE": push_promise_frames(), "PING": ping_frames(), "GOAWAY": goaway_frames(),
    "WINDOW_UPDATE": window_update_frames(), "CONTINUATION": header_blocks(),
}


def hf_assembled(buf):
    """hyperframe's frames with CONTINUATION fragments joined onto the frame
    that opened the block (what grpcpy's parser returns), as field dicts."""
    out = []
    for f in hf_parse_all(buf):
        d = hf_norm(f)
        if f.type == CONTINUATION:
            out[-1]["data"] += d["data"]
            out[-1]["flags"] |= d["flags"] & END_HEADERS
        else:
            out.append(d)
    return out


def gp_parse(buf, sizes=None, kinds=(bytes,)):
    frames, err = feed(split(buf, sizes or [len(buf) or 1]), kinds=kinds)
    assert err is None, err
    assert all(f.error is None for f in frames)
    return [gp_norm(f) for f in frames]


def check_pair(hf_bytes, gp_bytes):
    expected = hf_assembled(hf_bytes)
    assert gp_parse(hf_bytes) == expected
    if gp_bytes is not None:
        assert gp_bytes == hf_bytes
        assert hf_assembled(gp_bytes) == expected
        assert gp_parse(gp_bytes) == expected


@pytest.mark.parametrize("name", sorted(PER_TYPE))
def test_each_type_both_ways(name):
    @EXAMPLES
    @given(PER_TYPE[name])
    def run(pair):
        check_pair(*pair)
    run()


@EXAMPLES
@given(st.lists(ANY_FRAME, min_size=1, max_size=8),
       st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_streams_in_random_chunkings(pairs, sizes):
    hf_bytes = b"".join(p[0] for p in pairs)
    expected = hf_assembled(hf_bytes)
    assert gp_parse(hf_bytes) == expected
    assert gp_parse(hf_bytes, sizes, kinds=(bytes, bytearray, memoryview)) == expected
    assert gp_parse(hf_bytes, [1]) == expected
    gp_bytes = b"".join(p[1] for p in pairs if p[1] is not None)
    assert gp_parse(gp_bytes, sizes) == hf_assembled(gp_bytes)


def test_continuation_writer_matches_hyperframe():
    for frag in (b"", b"x", bytes(range(256))):
        for end in (False, True):
            hf = ContinuationFrame(7, data=frag, flags=_flags(("END_HEADERS", end))).serialize()
            assert build(write_continuation_frame, 7, frag, end) == hf
            (parsed,) = hf_parse_all(hf)
            assert parsed.data == frag and ("END_HEADERS" in parsed.flags) == end


# -- header block assembly ---------------------------------------------------

@EXAMPLES
@given(STREAM, st.lists(st.binary(max_size=50), min_size=1, max_size=20),
       st.lists(st.integers(1, 30), min_size=1, max_size=6), st.booleans())
def test_header_block_assembly(sid, fragments, sizes, end_stream):
    buf = raw(HEADERS, 0x1 if end_stream else 0, sid, fragments[0])
    for i, frag in enumerate(fragments[1:], 1):
        buf += raw(CONTINUATION, END_HEADERS if i == len(fragments) - 1 else 0, sid, frag)
    if len(fragments) == 1:
        buf = raw(HEADERS, (0x1 if end_stream else 0) | END_HEADERS, sid, fragments[0])
    ping = raw(6, 0, 0, b"12345678")
    for chunking in (sizes, [1], [len(buf) + 9]):
        parser = FrameParser()
        frames, err = feed(split(buf + ping, chunking), parser)
        assert err is None
        assert [f.type for f in frames] == [HEADERS, 6]
        (h, _) = frames
        assert h.data == b"".join(fragments)
        assert h.stream_id == sid
        assert h.end_headers and h.flags & END_HEADERS
        assert h.end_stream == end_stream
        assert parser.buffered == 0 and not parser.in_header_block


def test_header_block_is_held_until_end_headers():
    parser = FrameParser()
    assert parser.receive(raw(HEADERS, 0, 1, b"abc")) == []
    assert parser.in_header_block and parser.buffered == 3
    assert parser.receive(raw(CONTINUATION, 0, 1, b"de")) == []
    assert parser.buffered == 5
    (f,) = parser.receive(raw(CONTINUATION, END_HEADERS, 1, b"f"))
    assert f.type == HEADERS and f.data == b"abcdef"
    assert not parser.in_header_block and parser.buffered == 0


def test_write_headers_splits_at_max_frame_size():
    block = bytes(range(256)) * 200  # 51200 bytes
    buf = build(write_headers_frame, 5, block, end_stream=True, max_frame_size=16384)
    frames = hf_parse_all(buf)
    assert [type(f).__name__ for f in frames] == ["HeadersFrame"] + ["ContinuationFrame"] * 3
    assert [len(f.data) for f in frames] == [16384, 16384, 16384, 2048]
    assert "END_STREAM" in frames[0].flags and "END_HEADERS" not in frames[0].flags
    assert ["END_HEADERS" in f.flags for f in frames] == [False, False, False, True]
    (f,) = FrameParser().receive(buf)
    assert f.data == block and f.end_stream


# -- the parser's own behaviour ------------------------------------------------

def test_fields_and_helpers():
    buf = (build(write_data_frame, 3, b"hello", end_stream=True, pad_length=4)
           + build(write_settings_frame, [(1, 4096), (0x99, 7), (1, 0)])
           + build(write_settings_frame, ack=True)
           + build(write_ping_frame, b"abcdefgh", ack=True))
    d, s, sa, p = FrameParser().receive(buf)
    assert isinstance(d, Frame)
    assert (d.type, d.stream_id, d.data, d.pad_length, d.flow_length) == (DATA, 3, b"hello", 4, 10)
    assert d.end_stream and d.padded and not d.end_headers and not d.ack and d.priority is None
    # order kept, duplicates and unknown identifiers kept
    assert s.settings == [(1, 4096), (0x99, 7), (1, 0)] and not s.ack
    assert sa.ack and sa.settings == []
    assert p.ack and p.data == b"abcdefgh" and p.settings is None
    assert "DATA" in repr(d) and "SETTINGS" in repr(s)


def test_reserved_bits_are_masked():
    buf = (raw(DATA, 0, 0x80000003, b"x")
           + raw(8, 0, 0x80000000, (0x80000000 | 77).to_bytes(4, "big"))
           + raw(7, 0, 0, (0x80000000 | 9).to_bytes(4, "big") + b"\0\0\0\0"))
    d, w, g = FrameParser().receive(buf)
    assert d.stream_id == 3
    assert w.stream_id == 0 and w.window_increment == 77
    assert g.last_stream_id == 9


def test_priority_exclusive_bit():
    (p,) = FrameParser().receive(raw(2, 0, 5, (0x80000000 | 3).to_bytes(4, "big") + b"\xff"))
    assert p.priority == (3, 256, True)


def test_unknown_types_are_skipped_and_not_buffered():
    ping = raw(6, 0, 0, b"12345678")
    buf = raw(0x20, 0xff, 1, b"z" * 5000) + ping + raw(0xfa, 0, 0, b"") + ping
    assert [f.type for f in FrameParser().receive(buf)] == [6, 6]
    parser = FrameParser()
    out = []
    for chunk in split(buf, [100]):
        out += parser.receive(chunk)
        assert parser.buffered <= 9  # the skipped payload is never kept
    assert [f.type for f in out] == [6, 6]


def test_empty_and_odd_chunks():
    buf = recorded_grpc_stream(20)
    parser = FrameParser()
    out = []
    for chunk in split(buf, [1, 9, 10, 100]):
        out += parser.receive(b"")
        out += parser.receive(chunk)
    assert [full_norm(f) for f in out] == [full_norm(f) for f in FrameParser().receive(buf)]


def test_straddling_frame_keeps_only_what_it_needs():
    big = build(write_data_frame, 1, b"q" * 10000)
    ping = raw(6, 0, 0, b"12345678")
    parser = FrameParser()
    assert parser.receive(big[:4]) == [] and parser.buffered == 4
    assert parser.receive(big[4:5000]) == [] and parser.buffered == 5000
    (d, p) = parser.receive(big[5000:] + ping)
    assert d.data == b"q" * 10000 and p.type == 6 and parser.buffered == 0


def test_max_frame_size_setting():
    parser = FrameParser(max_frame_size=2**20)
    (d,) = parser.receive(build(write_data_frame, 1, b"x" * 100000))
    assert len(d.data) == 100000
    parser.max_frame_size = 16384
    assert parser.max_frame_size == 16384
    for bad in (16383, 2**24, -1):
        with pytest.raises(ValueError):
            parser.max_frame_size = bad
        with pytest.raises(ValueError):
            FrameParser(max_frame_size=bad)


def test_grpc_stream_matches_hyperframe():
    buf = recorded_grpc_stream(300)
    expected = hf_assembled(buf)
    got, err = feed(chunked(buf, 16384))
    assert err is None
    assert [gp_norm(f) for f in got] == expected
    got, err = feed(chunked(buf, 7), kinds=(memoryview,))
    assert [gp_norm(f) for f in got] == expected


# -- writer argument checks ------------------------------------------------------

BAD_WRITES = [
    (write_data_frame, (0, b"x"), {}),
    (write_data_frame, (-1, b"x"), {}),
    (write_data_frame, (2**31, b"x"), {}),
    (write_data_frame, (1, b"x"), {"pad_length": 256}),
    (write_data_frame, (1, b"x" * 2**24), {}),
    (write_headers_frame, (0, b"x"), {}),
    (write_headers_frame, (1, b"x"), {"priority": (1, 16, False)}),
    (write_headers_frame, (1, b"x"), {"priority": (3, 0, False)}),
    (write_headers_frame, (1, b"x"), {"priority": (3, 257, False)}),
    (write_headers_frame, (1, b"x"), {"max_frame_size": 0}),
    (write_headers_frame, (1, b"x"), {"max_frame_size": 100, "pad_length": 100}),
    (write_push_promise_frame, (1, 0, b"x"), {}),
    (write_priority_frame, (3, 3), {}),
    (write_priority_frame, (0, 3), {}),
    (write_priority_frame, (1, 3, 0), {}),
    (write_rst_stream_frame, (0, 8), {}),
    (write_rst_stream_frame, (1, 2**32), {}),
    (write_settings_frame, ([(1, 1)],), {"ack": True}),
    (write_settings_frame, ([(2, 2)],), {}),
    (write_settings_frame, ([(4, 2**31)],), {}),
    (write_settings_frame, ([(5, 100)],), {}),
    (write_settings_frame, ([(70000, 1)],), {}),
    (write_ping_frame, (b"1234567",), {}),
    (write_goaway_frame, (-1, 0), {}),
    (write_window_update_frame, (1, 0), {}),
    (write_window_update_frame, (1, 2**31), {}),
    (write_frame, (256, 0, 0, b""), {}),
]


@pytest.mark.parametrize("fn,args,kwargs", BAD_WRITES)
def test_writers_reject_bad_arguments(fn, args, kwargs):
    wb = WriteBuffer()
    with pytest.raises(ValueError):
        fn(wb, *args, **kwargs)
    assert len(wb) == 0  # nothing half-written


def test_writers_accept_any_bytes_like_and_report_size():
    wb = WriteBuffer()
    n = write_data_frame(wb, 1, bytearray(b"abc"))
    n += write_data_frame(wb, 1, memoryview(b"xxdefxx")[2:5])
    n += write_goaway_frame(wb, 0, 0, bytearray(b"dbg"))
    assert n == len(wb)
    a, b, g = FrameParser().receive(wb.take())
    assert (a.data, b.data, g.data) == (b"abc", b"def", b"dbg")
    with pytest.raises(TypeError):
        write_data_frame(None, 1, b"x")
