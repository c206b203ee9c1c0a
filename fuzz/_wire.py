"""Frames the connection harnesses build from fuzz choices: mostly valid
HTTP/2 and gRPC, with the fields the input picks, so the fuzzer reaches the
call logic instead of dying in the frame parser."""
import struct

from fuzz._support import core, frame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/svc/Method"),
           (b":authority", b"fuzz"), (b"content-type", b"application/grpc"), (b"te", b"trailers")]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
# field names and values the input picks from (malformed ones included)
NAMES = [b":method", b":path", b":scheme", b":authority", b":status", b"content-type", b"te",
         b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding", b"grpc-status", b"grpc-message",
         b"user-agent", b"x-meta", b"x-bin", b"", b"X-Upper", b":bogus", b"connection", b"grpc-status-details-bin"]
VALUES = [b"", b"POST", b"GET", b"/svc/Method", b"/", b"application/grpc", b"application/grpc+proto",
          b"text/html", b"trailers", b"1S", b"99999999H", b"0n", b"5m", b"12x", b"gzip", b"deflate",
          b"identity", b"snappy", b"gzip, deflate", b"0", b"1", b"4", b"16", b"17", b"-1", b"2147483648",
          b"%41%zz%", b"\xff\xfe", b"200", b"100", b"404", b"503", b"abc"]


def headers_block(inp, enc, base):
    """An HPACK block: a template (request or response, possibly cut short)
    with fields added or replaced as the input says."""
    mode = inp.byte()
    fields = list(base) if mode & 1 else []
    if mode & 2 and fields:
        del fields[inp.byte() % len(fields)]
    for _ in range(inp.byte() % 4):
        name = NAMES[inp.byte() % len(NAMES)]
        value = VALUES[inp.byte() % len(VALUES)]
        if inp.byte() & 1:
            fields = [f for f in fields if f[0] != name]
        fields.append((name, value))
    if mode & 4:
        return bytes(inp.take(inp.byte()))      # raw bytes as the block
    try:
        return enc.encode(fields)
    except (ValueError, TypeError):
        return b""


def message(inp):
    """DATA payload: gRPC messages, a declared length that may lie."""
    n = inp.byte()
    flag = inp.byte() % 3 if n & 1 else 0
    body = bytes(inp.take(inp.byte()))
    declared = len(body) if n & 2 == 0 else inp.u32() % (1 << 23)
    return struct.pack(">BI", flag, declared) + body


def build_frame(inp, enc, sids, base):
    """One frame the input chooses; `sids` are stream ids that make sense."""
    kind = inp.byte() % 16
    sid = sids[inp.byte() % len(sids)] if sids else 1
    flags = inp.byte()
    if kind <= 4:
        block = headers_block(inp, enc, base)
        fl = 0x4 | (flags & 0x1)
        if flags & 0x40 and len(block) > 1:      # split over a CONTINUATION
            cut = len(block) // 2
            return frame(1, fl & ~0x4, sid, block[:cut]) + frame(9, 0x4, sid, block[cut:])
        return frame(1, fl, sid, block)
    if kind <= 9:
        payload = message(inp) if kind <= 8 else bytes(inp.take(inp.byte()))
        return frame(0, flags & 0x1, sid, payload)
    if kind == 10:
        return frame(3, 0, sid, struct.pack(">I", inp.byte() % 14))
    if kind == 11:
        return frame(8, 0, sid if flags & 1 else 0, struct.pack(">I", (inp.u32() % (1 << 31)) or 1))
    if kind == 12:
        settings = b"".join(struct.pack(">HI", 1 + inp.byte() % 6, inp.u32()) for _ in range(inp.byte() % 3))
        return frame(4, flags & 1, 0, b"" if flags & 1 else settings)
    if kind == 13:
        return frame(6, flags & 1, 0, bytes(inp.take(8)).ljust(8, b"\x00"))
    if kind == 14:
        return frame(7, 0, 0, struct.pack(">II", sid if flags & 1 else 0x7FFFFFFF, inp.byte() % 14)
                     + bytes(inp.take(inp.byte() % 16)))
    return frame(inp.byte() % 12, flags, sid, bytes(inp.take(inp.byte())))


def check_events(events, ended, known, started_kind, role, app_codes=()):
    """Per-call event order: nothing after CE_CALL_ENDED, one end per call,
    a status in 0-16 unless the application chose another (app_codes)."""
    for ev in events:
        call = ev.call
        if call is None:
            continue
        if ev.kind == started_kind and role == "server":
            assert call not in known, "a call started twice"
            known.add(call)
        assert call not in ended, "event %r after the call ended" % (ev,)
        if ev.kind == core.CE_CALL_ENDED:
            ended.add(call)
            assert call.is_done and (0 <= ev.code <= 16 or ev.code in app_codes), repr(ev)
