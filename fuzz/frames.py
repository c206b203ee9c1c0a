"""FrameParser: any bytes, in any chunking, give the same frames as in one
piece, or one FrameError; every frame it returns is well formed."""
from fuzz._support import Input, core

MAX_STREAM_ID = 0x7FFFFFFF


def _parse(parser, chunks):
    frames = []
    error = None
    for chunk in chunks:
        try:
            frames += parser.receive(chunk)
        except core.FrameError as exc:
            frames += list(getattr(exc, "frames", ()))
            error = exc
            break
    return frames, error


def _key(f):
    return (f.type, f.flags, f.stream_id, bytes(f.data) if f.data is not None else None, f.flow_length,
            f.settings, f.error_code, f.last_stream_id, f.window_increment,
            None if f.error is None else (f.error.error_code, f.error.connection))


def one_input(data):
    inp = Input(data)
    opts = dict(max_frame_size=16384 << (inp.byte() % 3), max_continuations=1 + inp.byte() % 8,
                max_header_block_size=512 << (inp.byte() % 8))
    stream = inp.rest()
    chunked = Input(stream[::-1])        # chunk sizes from the same bytes, read backwards
    frames, error = _parse(core.FrameParser(**opts), chunked.chunks(stream))
    whole, whole_error = _parse(core.FrameParser(**opts), [stream])
    assert [_key(f) for f in frames] == [_key(f) for f in whole], "chunking changed the frames"
    assert (error is None) == (whole_error is None)
    if error is not None:
        assert error.connection and error.error_code == whole_error.error_code
    for f in frames:
        assert 0 <= f.type <= 255 and 0 <= f.stream_id <= MAX_STREAM_ID
        repr(f)
        if f.type == 0 and f.error is None:
            assert f.flow_length >= len(f.data) and f.stream_id != 0
        if f.type == 4 and f.error is None and not f.flags & 1:
            assert isinstance(f.settings, list)
