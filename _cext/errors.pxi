# The codec's exceptions. Everything the codec rejects is reported as one of
# these, carrying the exact code a peer must be sent; nothing else escapes it
# (a random-bytes test in tests/codec holds it to that).


class CodecError(Exception):
    """Base of every error the codec raises for bad input."""


class FrameError(CodecError):
    """A malformed HTTP/2 frame (RFC 9113 §5.4).

    error_code  the HTTP/2 error code to send (ErrorCode value)
    stream_id   the stream the frame was on (0 for connection-level frames)
    connection  True: connection error (GOAWAY and close);
                False: stream error (RST_STREAM that stream, the connection goes on)
    """

    def __init__(self, error_code, message, stream_id=0, connection=True):
        super().__init__(message)
        self.error_code = error_code
        self.stream_id = stream_id
        self.connection = connection

    def __repr__(self):
        kind = "connection" if self.connection else "stream"
        return "FrameError(%s error 0x%x on stream %d: %s)" % (
            kind, self.error_code, self.stream_id, self.args[0])


class HPACKError(CodecError):
    """A header block that cannot be decoded: always a connection error of type
    COMPRESSION_ERROR (RFC 9113 §4.3), because the shared table is now unknown."""

    error_code = ERR_COMPRESSION_ERROR
    connection = True


class HeaderListTooLarge(CodecError):
    """The decoded header list is larger than the advertised
    SETTINGS_MAX_HEADER_LIST_SIZE. The whole block was still decoded, so the
    HPACK table is in sync and the connection can go on; the stream fails
    (gRPC: RESOURCE_EXHAUSTED, HTTP: 431)."""

    connection = False

    def __init__(self, size, limit):
        super().__init__("header list of at least %d bytes exceeds the limit of %d" % (size, limit))
        self.size = size
        self.limit = limit


class MessageError(CodecError):
    """A gRPC length-prefixed message that must fail the call.

    grpc_status  the gRPC status code number the call ends with
    """

    grpc_status = GRPC_STATUS_INTERNAL


class MessageTooLarge(MessageError):
    """The declared message length exceeds the receive limit (RESOURCE_EXHAUSTED)."""

    grpc_status = GRPC_STATUS_RESOURCE_EXHAUSTED

    def __init__(self, length, limit):
        super().__init__("received message larger than max (%d vs. %d)" % (length, limit))
        self.length = length
        self.limit = limit


class MessageFlagError(MessageError):
    """The compressed-flag byte is neither 0 nor 1 (INTERNAL)."""

    def __init__(self, flag):
        super().__init__("invalid compressed flag %d in message prefix" % flag)
        self.flag = flag
