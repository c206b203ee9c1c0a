"""gRPC 5-byte message framing: encoder, incremental decoder, limits."""
import random

import pytest
from hypothesis import given, settings, strategies as st

from grpcpy import _cext as c


def chunked(data, sizes):
    """Cut data into consecutive pieces whose sizes cycle through `sizes`."""
    out, i, k = [], 0, 0
    while i < len(data):
        n = max(1, sizes[k % len(sizes)])
        out.append(data[i:i + n])
        i += n
        k += 1
    return out


def test_prefix_layout():
    assert c.message_prefix(0) == b"\x00\x00\x00\x00\x00"
    assert c.message_prefix(0x01020304, True) == b"\x01\x01\x02\x03\x04"
    assert c.encode_message(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert c.encode_message(bytearray(b"xy"), compressed=True) == b"\x01\x00\x00\x00\x02xy"
    assert c.encode_message(memoryview(b"hello")[1:3]) == b"\x00\x00\x00\x00\x02el"


def test_prefix_rejects_impossible_lengths():
    with pytest.raises(ValueError):
        c.message_prefix(-1)
    with pytest.raises(ValueError):
        c.message_prefix(1 << 32)


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=12),
    sizes=st.lists(st.integers(1, 64), min_size=1, max_size=8),
    kind=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_decoder_reassembles_any_chunking(messages, sizes, kind):
    wire = b"".join(c.encode_message(m, f) for f, m in messages)
    dec = c.MessageDecoder(1 << 20)
    got = []
    for piece in chunked(wire, sizes):
        got.extend(dec.feed(kind(piece)))
    assert got == [(int(f), m) for f, m in messages]
    assert not dec.in_message
    assert dec.buffered == 0


def test_one_byte_chunks_of_large_message():
    body = bytes(random.Random(7).getrandbits(8) for _ in range(70000))
    wire = c.encode_message(body)
    dec = c.MessageDecoder()
    got = []
    for i in range(len(wire)):
        got.extend(dec.feed(wire[i:i + 1]))
        if i < len(wire) - 1:
            assert dec.in_message and got == []
    assert got == [(0, body)]


def test_whole_chunk_is_handed_out_without_copy():
    body = b"x" * 1000
    dec = c.MessageDecoder()
    dec.feed(c.message_prefix(len(body)))
    [(flag, msg)] = dec.feed(body)
    assert msg is body


def test_length_over_limit_rejected_from_prefix_alone():
    dec = c.MessageDecoder(max_message_size=1024)
    assert dec.feed(c.encode_message(b"a" * 1024)) == [(0, b"a" * 1024)]
    # Only the 5-byte prefix of a too-large message has arrived: refused now,
    # no body is waited for or buffered.
    with pytest.raises(c.MessageTooLarge) as info:
        dec.feed(c.message_prefix(1025))
    assert info.value.length == 1025 and info.value.limit == 1024
    assert info.value.grpc_status == 8  # RESOURCE_EXHAUSTED
    assert isinstance(info.value, c.MessageError) and isinstance(info.value, c.CodecError)
    assert dec.buffered == 0
    # The decoder stays failed: the call is over.
    with pytest.raises(c.MessageTooLarge):
        dec.feed(b"more")


def test_default_limit_is_grpcio_4mib():
    dec = c.MessageDecoder()
    assert dec.max_message_size == 4 * 1024 * 1024
    with pytest.raises(c.MessageTooLarge):
        dec.feed(c.message_prefix(4 * 1024 * 1024 + 1))


def test_unlimited_receive():
    dec = c.MessageDecoder(max_message_size=-1)
    dec.feed(c.message_prefix(0xFFFFFFFF))
    assert dec.in_message


def test_limit_checked_across_split_prefix():
    dec = c.MessageDecoder(max_message_size=10)
    prefix = c.message_prefix(11)
    for b in prefix[:-1]:
        assert dec.feed(bytes([b])) == []
    with pytest.raises(c.MessageTooLarge):
        dec.feed(prefix[-1:])


@pytest.mark.parametrize("flag", [2, 3, 0x80, 0xFF])
def test_bad_compressed_flag(flag):
    dec = c.MessageDecoder()
    with pytest.raises(c.MessageFlagError) as info:
        dec.feed(bytes([flag]) + b"\x00\x00\x00\x01z")
    assert info.value.flag == flag
    assert info.value.grpc_status == 13  # INTERNAL


def test_messages_before_a_bad_prefix_in_an_earlier_feed_are_delivered():
    dec = c.MessageDecoder(max_message_size=100)
    assert dec.feed(c.encode_message(b"ok")) == [(0, b"ok")]
    with pytest.raises(c.MessageTooLarge):
        dec.feed(c.message_prefix(101))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(1, 16), min_size=1, max_size=4))
def test_garbage_gives_only_message_errors(data, sizes):
    dec = c.MessageDecoder(max_message_size=64)
    for piece in chunked(data, sizes):
        try:
            for flag, msg in dec.feed(piece):
                assert flag in (0, 1) and len(msg) <= 64
        except c.MessageError:
            break
    assert dec.buffered <= 64 + 5
