"""Large messages (64 KiB and more) are assembled in place once an eighth of
them has arrived; the result must not depend on how the bytes were cut,
which object types carried them, or what else shares the chunks."""
import os
import random

import pytest
from hypothesis import given, settings, strategies as st

from grpcpy import _cext as c

from .test_framing import chunked


def feed_all(dec, chunks):
    out = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([0, 1, 100, 64 * 1024 - 1, 64 * 1024, 200_000, 1 << 20]), min_size=1, max_size=5),
    cuts=st.lists(st.integers(1, 70_000), min_size=1, max_size=6),
    kind=st.sampled_from([bytes, bytearray, memoryview]),
    compressed=st.booleans(),
)
def test_large_and_small_messages_any_chunking(sizes, cuts, kind, compressed):
    rnd = random.Random(len(sizes) * 7 + sum(cuts))
    messages = [rnd.randbytes(n) for n in sizes]
    wire = b"".join(c.encode_message(m, compressed) for m in messages)
    dec = c.MessageDecoder(max_message_size=2 << 20)
    got = feed_all(dec, [kind(piece) for piece in chunked(wire, cuts)])
    assert got == [(int(compressed), m) for m in messages]
    assert all(type(body) is bytes for _, body in got)
    assert dec.buffered == 0 and not dec.in_message


def test_reused_buffer_chunks_do_not_leak_into_messages():
    """Chunks handed over in one bytearray that is overwritten after each
    feed (a reused read buffer): every message must hold its own bytes."""
    messages = [os.urandom(n) for n in (300_000, 10, 1 << 20, 70_000)]
    wire = b"".join(c.encode_message(m) for m in messages)
    buf = bytearray(50_000)
    dec = c.MessageDecoder(max_message_size=2 << 20)
    got = []
    for i in range(0, len(wire), len(buf)):
        piece = wire[i:i + len(buf)]
        buf[:len(piece)] = piece
        got += dec.feed(memoryview(buf)[:len(piece)])
        buf[:] = b"\xee" * len(buf)
    assert [body for _, body in got] == messages


def test_progress_of_a_large_message():
    body = os.urandom(1 << 20)
    wire = c.encode_message(body)
    dec = c.MessageDecoder()
    assert dec.feed(wire[:5]) == []
    assert dec.in_message and dec.buffered == 5
    # below an eighth: kept as chunks; beyond: assembled in place
    assert dec.feed(wire[5:100_005]) == []
    assert dec.buffered == 100_005
    assert dec.feed(wire[100_005:600_005]) == []
    assert dec.buffered == 600_005
    assert dec.feed(wire[600_005:]) == [(0, body)]
    assert dec.buffered == 0 and not dec.in_message


def test_limit_is_still_checked_at_the_prefix():
    dec = c.MessageDecoder(max_message_size=1 << 20)
    with pytest.raises(c.MessageTooLarge):
        dec.feed(c.message_prefix((1 << 20) + 1))
    with pytest.raises(c.MessageTooLarge):
        dec.feed(b"x")
