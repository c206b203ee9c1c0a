"""MessageDecoder (gRPC 5-byte length-prefixed messages): any bytes in any
chunking give exactly the messages a plain reading of the format gives, then
MessageTooLarge or MessageFlagError where that reading finds the error (the
chunk that meets the error returns none of its messages)."""
import struct

from fuzz._support import Input, core


def _reference(stream, limit):
    out = []
    pos = 0
    while len(stream) - pos >= 5:
        flag, length = struct.unpack_from(">BI", stream, pos)
        if flag > 1:
            return out, "flag"
        if limit >= 0 and length > limit:
            return out, "size"
        if len(stream) - pos - 5 < length:
            break
        out.append((flag, stream[pos + 5:pos + 5 + length]))
        pos += 5 + length
    return out, None


def one_input(data):
    inp = Input(data)
    limit = (-1, 0, 16, 1024, 1 << 20)[inp.byte() % 5]
    dec = core.MessageDecoder(limit)
    stream = inp.rest()
    messages = []
    error = None
    for chunk in Input(stream[::-1]).chunks(stream):
        try:
            messages += dec.feed(chunk if len(chunk) & 1 else bytearray(chunk))
        except core.MessageTooLarge:
            error = "size"
            break
        except core.MessageFlagError:
            error = "flag"
            break
        assert dec.buffered >= 0 and dec.missing >= 0
    expected, expected_error = _reference(stream, limit)
    assert error == expected_error
    if error is None:
        assert messages == expected
    else:
        # the feed that meets the error returns nothing, not even the
        # messages it completed before it (the call fails either way)
        assert messages == expected[:len(messages)]
    if error is not None:       # the decoder stays failed
        try:
            dec.feed(b"\x00")
        except core.MessageError:
            pass
        else:
            raise AssertionError("a failed MessageDecoder took more input")
    for flag, payload in messages:
        assert core.encode_message(payload, bool(flag)) == struct.pack(">BI", flag, len(payload)) + payload
