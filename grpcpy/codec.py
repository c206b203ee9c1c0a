"""The codec layer's Python face: HTTP/2 frames (RFC 9113), HPACK (RFC 7541),
gRPC message framing and buffers, all compiled in grpcpy._cext.

Everything the codec rejects raises a CodecError subclass carrying the code
to send to the peer: FrameError (HTTP/2 error code, stream or connection
error), HPACKError (COMPRESSION_ERROR), HeaderListTooLarge (the block was
decoded, the table is in sync, the stream fails), MessageTooLarge /
MessageFlagError (the gRPC status the call ends with).
"""
import enum

from grpcpy._cext import (  # noqa: F401
    BufferPool,
    CodecError,
    Decoder,
    Encoder,
    Frame,
    FrameError,
    FrameParser,
    HeaderListTooLarge,
    HPACKError,
    MessageDecoder,
    MessageError,
    MessageFlagError,
    MessageTooLarge,
    ReadBuffer,
    WriteBuffer,
    encode_message,
    frame_type_name,
    huffman_decode,
    huffman_encode,
    message_prefix,
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


class FrameType(enum.IntEnum):
    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


class Flag(enum.IntFlag):
    END_STREAM = 0x1
    ACK = 0x1
    END_HEADERS = 0x4
    PADDED = 0x8
    PRIORITY = 0x20


class ErrorCode(enum.IntEnum):
    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


class SettingCode(enum.IntEnum):
    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6
