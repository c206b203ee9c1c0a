"""Shared helpers for the frame tests: hyperframe as the independent oracle,
field normalisation for both codecs, and chunked feeding."""
from hyperframe.frame import Frame as HFrame

from grpcpy._cext import FrameError, FrameParser, WriteBuffer, write_frame

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

PROTOCOL_ERROR = 0x1
FLOW_CONTROL_ERROR = 0x3
FRAME_SIZE_ERROR = 0x6
ENHANCE_YOUR_CALM = 0xB


def build(fn, *args, **kwargs):
    """Run one grpcpy writer on a fresh WriteBuffer and return the bytes."""
    wb = WriteBuffer()
    fn(wb, *args, **kwargs)
    return wb.take()


def raw(ftype, flags, stream_id, payload=b""):
    """One frame exactly as given (for malformed input)."""
    return build(write_frame, ftype, flags, stream_id, payload)


def hf_parse_all(buf):
    """Parse a whole byte string with hyperframe, the way its users do."""
    frames = []
    i = 0
    while i < len(buf):
        frame, length = HFrame.parse_frame_header(memoryview(buf[i:i + 9]))
        frame.parse_body(memoryview(buf[i + 9:i + 9 + length]))
        frames.append(frame)
        i += 9 + length
    assert i == len(buf)
    return frames


def hf_flag_byte(frame):
    bits = 0
    for name, bit in frame.defined_flags:
        if name in frame.flags:
            bits |= bit
    return bits


def hf_norm(f):
    """hyperframe frame -> the comparable field dict."""
    t = f.type
    d = {"type": t, "stream_id": f.stream_id, "flags": hf_flag_byte(f)}
    if t == DATA:
        d.update(data=f.data, pad_length=f.pad_length, flow_length=f.flow_controlled_length)
    elif t in (HEADERS, PUSH_PROMISE):
        d.update(data=f.data, pad_length=f.pad_length)
        if t == PUSH_PROMISE:
            d["promised_stream_id"] = f.promised_stream_id
        if t == HEADERS and "PRIORITY" in f.flags:
            d.update(depends_on=f.depends_on, weight=f.stream_weight + 1, exclusive=f.exclusive)
    elif t == PRIORITY:
        d.update(depends_on=f.depends_on, weight=f.stream_weight + 1, exclusive=f.exclusive)
    elif t == RST_STREAM:
        d["error_code"] = f.error_code
    elif t == SETTINGS:
        d["settings"] = list(f.settings.items())
    elif t == PING:
        d["data"] = f.opaque_data
    elif t == GOAWAY:
        d.update(last_stream_id=f.last_stream_id, error_code=f.error_code, data=f.additional_data)
    elif t == WINDOW_UPDATE:
        d["window_increment"] = f.window_increment
    elif t == CONTINUATION:
        d["data"] = f.data
    return d


def gp_norm(f):
    """grpcpy Frame -> the same comparable field dict."""
    t = f.type
    d = {"type": t, "stream_id": f.stream_id, "flags": f.flags}
    if t == DATA:
        d.update(data=f.data, pad_length=f.pad_length, flow_length=f.flow_length)
    elif t in (HEADERS, PUSH_PROMISE):
        d.update(data=f.data, pad_length=f.pad_length)
        if t == PUSH_PROMISE:
            d["promised_stream_id"] = f.promised_stream_id
        if t == HEADERS and f.flags & PRIORITY_FLAG:
            d.update(depends_on=f.depends_on, weight=f.weight, exclusive=f.exclusive)
    elif t == PRIORITY:
        d.update(depends_on=f.depends_on, weight=f.weight, exclusive=f.exclusive)
    elif t == RST_STREAM:
        d["error_code"] = f.error_code
    elif t == SETTINGS:
        d["settings"] = list(f.settings)
    elif t == PING:
        d["data"] = f.data
    elif t == GOAWAY:
        d.update(last_stream_id=f.last_stream_id, error_code=f.error_code, data=f.data)
    elif t == WINDOW_UPDATE:
        d["window_increment"] = f.window_increment
    return d


def full_norm(f):
    """Every public field of a grpcpy Frame, error included (for comparing
    two grpcpy parses of the same bytes)."""
    err = None
    if f.error is not None:
        err = (f.error.error_code, f.error.stream_id, f.error.connection)
    return (f.type, f.flags, f.stream_id, f.data, f.pad_length, f.flow_length, f.depends_on,
            f.weight, f.exclusive, f.error_code, f.last_stream_id, f.window_increment,
            f.promised_stream_id, f.settings, err)


def split(data, sizes):
    """Cut data into chunks of the given sizes (cycled; 0 means an empty
    chunk), the last chunk taking whatever is left."""
    chunks = []
    i = 0
    k = 0
    while i < len(data):
        n = sizes[k % len(sizes)] if sizes else len(data)
        k += 1
        chunks.append(data[i:i + n])
        i += n
    return chunks


def feed(chunks, parser=None, kinds=(bytes,)):
    """Feed chunks to a parser (converting each to one of kinds in turn);
    return (frames, error): error is the FrameError that stopped it or None."""
    parser = parser or FrameParser()
    frames = []
    for i, chunk in enumerate(chunks):
        kind = kinds[i % len(kinds)]
        try:
            frames.extend(parser.receive(kind(chunk)))
        except FrameError as exc:
            frames.extend(exc.frames)
            return frames, exc
    return frames, None
