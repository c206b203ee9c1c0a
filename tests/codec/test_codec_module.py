"""grpcpy.codec's enums agree with the values the compiled codec uses."""
import hyperframe.frame as hf

from grpcpy import codec


def test_frame_types_match_wire_values():
    # hyperframe's frame classes are the independent reference for the values
    names = {"DataFrame": "DATA", "HeadersFrame": "HEADERS", "PriorityFrame": "PRIORITY",
             "RstStreamFrame": "RST_STREAM", "SettingsFrame": "SETTINGS",
             "PushPromiseFrame": "PUSH_PROMISE", "PingFrame": "PING", "GoAwayFrame": "GOAWAY",
             "WindowUpdateFrame": "WINDOW_UPDATE", "ContinuationFrame": "CONTINUATION"}
    reference = {names[cls.__name__]: cls.type for cls in hf.FRAMES.values() if cls.__name__ in names}
    assert {t.name: t.value for t in codec.FrameType} == reference
    for t in codec.FrameType:
        assert codec.frame_type_name(t.value) == t.name


def test_error_codes_used_by_codec_errors():
    wb = codec.WriteBuffer()
    codec.write_frame(wb, codec.FrameType.PING, 0, 1, b"\x00" * 8)   # PING on a stream
    parser = codec.FrameParser()
    try:
        parser.receive(wb.take())
    except codec.FrameError as exc:
        assert exc.error_code == codec.ErrorCode.PROTOCOL_ERROR and exc.connection
    else:
        raise AssertionError("PING on stream 1 must be a connection error")
