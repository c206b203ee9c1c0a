"""Write the seed corpora (fuzz/corpus/<harness>/): a few small inputs per
harness that already reach deep - whole calls for the connection harnesses,
real frames, header blocks and messages for the codec ones. The files are
committed; run this again after changing how a harness reads its input.

    python -m fuzz.seeds
"""
import gzip
import os
import struct

from fuzz import _wire
from fuzz._support import core, frame
from fuzz.run import corpus_dir, crash_dir


def _write(name, seeds):
    d = corpus_dir(name)
    os.makedirs(d, exist_ok=True)
    for i, data in enumerate(seeds):
        with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
            f.write(bytes(data))


def _msg(payload):
    return struct.pack(">BI", 0, len(payload)) + payload


def _conversation():
    enc = core.Encoder()
    wb = core.WriteBuffer()
    core.write_settings_frame(wb, [(4, 1 << 20)], False)
    core.write_headers_frame(wb, 1, enc.encode(_wire.REQUEST + [(b"grpc-timeout", b"1S")]), False)
    core.write_data_frame(wb, 1, _msg(b"hello"), True)
    core.write_window_update_frame(wb, 0, 1000)
    core.write_ping_frame(wb, b"12345678", False)
    core.write_headers_frame(wb, 3, enc.encode(_wire.REQUEST), True, 16384, None, 4)
    core.write_rst_stream_frame(wb, 3, 8)
    core.write_data_frame(wb, 5, b"abc", False, 3)
    core.write_goaway_frame(wb, 5, 0, b"bye")
    return wb.take()


# server programs: 6 config bytes, the preface byte (0: sent), then steps
def _headers_step(sid_index, end_stream, fields=()):
    out = [0, 0, sid_index, 1 if end_stream else 0, 1, len(fields)]
    for name, value in fields:
        out += [_wire.NAMES.index(name), _wire.VALUES.index(value), 1]
    return out + [40]                 # one chunk (size 1 + 8 * 40)


def _data_step(sid_index, payload, end_stream):
    return [0, 5, sid_index, 1 if end_stream else 0, 0, len(payload)] + list(payload) + [40]


UNARY = [0, 0, 0, 0, 0, 0, 0] + _headers_step(0, False) + _data_step(0, b"abc", True) + [
    6, 0, 1, 1,            # accept: unary request and response
    7, 0, 0,               # initial metadata
    8, 0, 3, 120, 121, 122, 0,   # a message
    9, 0, 0, 0, 0,         # status OK
]
DEADLINE = [0, 0, 0, 0, 0, 0, 0] + _headers_step(0, False, [(b"grpc-timeout", b"1S")]) + [
    6, 0, 2, 2, 8, 0, 2, 65, 66, 3,
    5, 200, 0,             # 2 s pass
] + _headers_step(1, True, [(b"grpc-encoding", b"gzip")])
STREAMING = [0, 0, 0, 0, 1, 1, 0] + _headers_step(0, False) + _data_step(0, b"x" * 20, False) + [
    11, 0, 8, 0, 30] + list(b"y" * 30) + [4] + _data_step(0, b"", True) + [10, 0, 1, 13, 0, 1, 6]


def _gzip_data_step(sid_index, end_stream):
    body = gzip.compress(b"hello " * 8)
    return [0, 5, sid_index, 1 if end_stream else 0, 1, 1, len(body)] + list(body) + [40]


COMPRESSED = [0, 0, 0, 0, 0, 1, 0] + _headers_step(0, False, [(b"grpc-encoding", b"gzip")]) \
    + _gzip_data_step(0, True) + [6, 0, 2, 2, 8, 0, 3, 97, 98, 99, 0, 9, 0, 0, 0, 0]


def _client_program(streaming=True):
    # 4 config bytes, the preface byte, then: start a call, send, answer it
    start = [5, 0x22 if streaming else 0x02, 50, 0]   # flags (cardinality, metadata), timeout 5 s, method
    send = [7, 0, 3, 1, 2, 3]                        # send_unary
    headers = [0, 1, 0, 0, 0, 1, 0, 40]              # response headers on the call's stream
    data = [0, 1, 5, 0, 0, 0, 2, 104, 105, 40]       # one message
    trailers = [0, 0, 0, 0, 1, 1, 0, 40]             # grpc-status 0 with END_STREAM
    return [0, 0, 0, 0, 0] + start + send + headers + data + [10, 0] + trailers + [4, 50, 1]


# Inputs that reproduced the core's findings (fuzz/crashes/: replayed by the
# suite like every crash input).
def _raw_headers_step(sid_index, end_stream, block):
    assert len(block) < 256
    return [0, 0, sid_index, 1 if end_stream else 0, 4, 0, len(block)] + list(block) + [40]


def _findings():
    request = core.Encoder().encode(_wire.REQUEST)
    server = {
        # a literal field with an empty name (HPACK 00 00 01 'x')
        "empty-header-name": [0] * 7 + _raw_headers_step(0, True, request + b"\x00\x00\x01x"),
        # an upper-case header name
        "upper-case-header-name": [0] * 7 + _raw_headers_step(0, True, request + b"\x00\x07X-Upper\x01v"),
        # trailers over max_header_list_size (512) on a call already accepted
        "oversized-trailers-on-active-call": [0, 0, 1, 0, 0, 0, 0] + _headers_step(0, False) + [6, 0, 0, 0]
        + _raw_headers_step(0, True, b"\x90" * 9) + [7, 0, 0, 9, 0, 0, 0, 0],
        # a deadline expiring after close_connection(error)
        "deadline-after-close-connection": [0] * 7 + _headers_step(0, False, [(b"grpc-timeout", b"1S")])
        + [13, 0, 0, 2, 5, 200, 0],
    }
    prefix = [0, 0, 0, 0, 0, 5, 0x22, 50, 0, 7, 0, 3, 1, 2, 3]
    client = {
        # trailers with grpc-status 2147483648 (outside a C int)
        "grpc-status-out-of-int": prefix + [0, 1, 0, 0, 0, 1, 0, 40]
        + [0, 0, 0, 0, 1, 3, 0, 1, _wire.NAMES.index(b"grpc-status"), _wire.VALUES.index(b"2147483648"), 1, 40],
        # response headers with an upper-case name
        "upper-case-response-header": prefix
        + [0, 1, 0, 0, 0, 1, 1, _wire.NAMES.index(b"X-Upper"), _wire.VALUES.index(b"abc"), 0, 40],
    }
    return {"server": server, "client": client}


def main():
    conv = _conversation()
    _write("frames", [[0, 0, 0] + list(conv), [1, 3, 2] + list(conv[:40]), [0, 0, 0]])
    enc = core.Encoder()
    blocks = [enc.encode(_wire.REQUEST), enc.encode(_wire.REQUEST + [(b"x-meta", b"v" * 30)]),
              enc.encode([(b":status", b"200"), (b"grpc-status", b"0")])]
    hp = [3, 2, 1, 1, 0]
    for b in blocks:
        hp += [len(b) // 4] + list(b)[: 1 + (len(b) // 4) * 4]
    _write("hpack", [hp, [3, 3, 0, 0, 0, 0, 0x82, 0x86, 0x84, 0x41, 0x8a, 0x08, 0x9d, 0x5c, 0x0b, 0x81, 0x70,
                          0xdc, 0x78, 0x0f, 0x03]])
    _write("framing", [[0] + list(_msg(b"abc") + _msg(b"") + _msg(b"x" * 300)),
                       [3] + list(_msg(b"y" * 2000)), [1, 2, 0, 0, 0, 1, 0]])
    _write("server", [UNARY, DEADLINE, STREAMING, [0, 0, 0, 0, 0, 0, 0x80, 4, 24] + list(core_preface()),
                      COMPRESSED])
    body = gzip.compress(b"hi " * 10)
    compressed = (_client_program()[:15]
                  + [0, 1, 0, 0, 0, 1, 1, _wire.NAMES.index(b"grpc-encoding"), _wire.VALUES.index(b"gzip"), 1, 40]
                  + [0, 1, 5, 0, 0, 1, 1, len(body)] + list(body) + [40] + [0, 0, 0, 0, 1, 1, 0, 40])
    _write("client", [_client_program(), _client_program(False)[:-11] + [4, 100, 1], compressed])
    for name, found in _findings().items():
        d = crash_dir(name)
        os.makedirs(d, exist_ok=True)
        for label, data in found.items():
            with open(os.path.join(d, "finding-" + label), "wb") as f:
                f.write(bytes(data))


def core_preface():
    return _wire.PREFACE + frame(4, 0, 0, b"")


if __name__ == "__main__":
    main()
