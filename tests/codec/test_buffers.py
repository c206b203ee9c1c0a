"""ReadBuffer, WriteBuffer and BufferPool."""
import gc

import pytest
from hypothesis import given, settings, strategies as st

from grpcpy import _cext as c


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=50), max_size=20),
       reads=st.lists(st.integers(0, 60), max_size=30))
def test_read_buffer_matches_a_flat_bytes_model(chunks, reads):
    buf = c.ReadBuffer()
    model = bytearray()
    for chunk in chunks:
        buf.feed(chunk)
        model += chunk
    assert len(buf) == len(model)
    for n in reads:
        if n > len(model):
            with pytest.raises(ValueError):
                buf.read(n)
            continue
        assert buf.read(n) == bytes(model[:n])
        del model[:n]
        assert len(buf) == len(model)


def test_read_buffer_hands_out_whole_chunks_and_single_slices():
    buf = c.ReadBuffer()
    a, b = b"a" * 100, b"b" * 100
    buf.feed(a)
    buf.feed(b)
    assert buf.read(100) is a          # the chunk itself, no copy
    assert buf.read(10) == b"b" * 10   # one slice
    assert buf.read(90) == b"b" * 90
    assert len(buf) == 0


def test_read_buffer_copies_mutable_input():
    buf = c.ReadBuffer()
    ba = bytearray(b"hello")
    buf.feed(ba)
    ba[:] = b"XXXXX"                   # the owner reuses its buffer
    buf.feed(memoryview(b"world"))
    assert buf.read(10) == b"helloworld"


def test_read_buffer_many_small_chunks_is_linear():
    buf = c.ReadBuffer()
    for i in range(20000):
        buf.feed(b"x")
        if i % 3 == 0:
            buf.skip(1)
    assert len(buf) == 20000 - 6667
    assert buf.read(len(buf)) == b"x" * (20000 - 6667)


def test_write_buffer_batches_and_takes():
    wb = c.WriteBuffer()
    for i in range(1000):
        wb.write(b"%04d" % i)
    wb.write(bytearray(b"!"))
    wb.write(memoryview(b"?"))
    out = wb.take()
    assert out == b"".join(b"%04d" % i for i in range(1000)) + b"!?"
    assert len(wb) == 0


def test_write_buffer_refuses_change_while_viewed():
    wb = c.WriteBuffer()
    wb.write(b"frame-bytes")
    view = memoryview(wb)
    assert wb.exported == 1
    assert bytes(view) == b"frame-bytes" and view.readonly
    for change in (lambda: wb.write(b"x"), wb.clear, wb.take):
        with pytest.raises(BufferError):
            change()
    assert bytes(view) == b"frame-bytes"   # nothing overwritten
    view.release()
    assert wb.exported == 0
    wb.write(b"!")
    assert wb.take() == b"frame-bytes!"


def test_write_buffer_growth_and_shrink():
    wb = c.WriteBuffer()
    big = b"z" * (6 * 1024 * 1024)
    wb.write(big)
    assert wb.take() == big
    wb.write(b"small")
    assert wb.take() == b"small"


def test_pool_recycles_but_never_under_a_reader():
    pool = c.BufferPool(max_free=2)
    wb = pool.acquire()
    wb.write(b"abc")
    view = memoryview(wb)
    with pytest.raises(BufferError):
        pool.release(wb)
    assert len(pool) == 0
    view.release()
    pool.release(wb)
    assert len(pool) == 1
    again = pool.acquire()
    assert again is wb and len(again) == 0
    for _ in range(5):
        pool.release(c.WriteBuffer())
    assert len(pool) == 2
    del again, wb
    gc.collect()
