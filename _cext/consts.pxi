# HTTP/2 constants (RFC 9113 §6, §7, §11). C-level names for the hot path; the
# Python-level enums live in grpcpy/codec.py and mirror these values.

cdef enum:
    # Frame types (§6)
    FT_DATA = 0x0
    FT_HEADERS = 0x1
    FT_PRIORITY = 0x2
    FT_RST_STREAM = 0x3
    FT_SETTINGS = 0x4
    FT_PUSH_PROMISE = 0x5
    FT_PING = 0x6
    FT_GOAWAY = 0x7
    FT_WINDOW_UPDATE = 0x8
    FT_CONTINUATION = 0x9

    # Flags
    FLAG_END_STREAM = 0x1
    FLAG_ACK = 0x1
    FLAG_END_HEADERS = 0x4
    FLAG_PADDED = 0x8
    FLAG_PRIORITY = 0x20

    # Error codes (§7)
    ERR_NO_ERROR = 0x0
    ERR_PROTOCOL_ERROR = 0x1
    ERR_INTERNAL_ERROR = 0x2
    ERR_FLOW_CONTROL_ERROR = 0x3
    ERR_SETTINGS_TIMEOUT = 0x4
    ERR_STREAM_CLOSED = 0x5
    ERR_FRAME_SIZE_ERROR = 0x6
    ERR_REFUSED_STREAM = 0x7
    ERR_CANCEL = 0x8
    ERR_COMPRESSION_ERROR = 0x9
    ERR_CONNECT_ERROR = 0xa
    ERR_ENHANCE_YOUR_CALM = 0xb
    ERR_INADEQUATE_SECURITY = 0xc
    ERR_HTTP_1_1_REQUIRED = 0xd

    # Settings identifiers (§6.5.2)
    SETTINGS_HEADER_TABLE_SIZE = 0x1
    SETTINGS_ENABLE_PUSH = 0x2
    SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
    SETTINGS_INITIAL_WINDOW_SIZE = 0x4
    SETTINGS_MAX_FRAME_SIZE = 0x5
    SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

    FRAME_HEADER_SIZE = 9
    DEFAULT_MAX_FRAME_SIZE = 16384          # 2^14, the floor every peer accepts
    MAX_MAX_FRAME_SIZE = 16777215           # 2^24 - 1
    MAX_WINDOW_SIZE = 2147483647            # 2^31 - 1
    STREAM_ID_MASK = 0x7fffffff

    # gRPC status codes the codec itself produces
    GRPC_STATUS_INTERNAL = 13
    GRPC_STATUS_RESOURCE_EXHAUSTED = 8
