# gRPC header values (PROTOCOL-HTTP2.md): grpc-message percent-encoding,
# grpc-timeout, and application metadata to and from header pairs. Pure
# functions; both roles use them.

import base64 as _base64

# Headers a gRPC peer uses for the protocol itself; never shown as metadata.
cdef frozenset RESERVED_HEADERS = frozenset([
    b"content-type", b"te", b"grpc-encoding", b"grpc-accept-encoding", b"grpc-timeout",
    b"grpc-status", b"grpc-message", b"content-length", b"connection", b"host",
    b"transfer-encoding", b"upgrade", b"keep-alive", b"proxy-connection",
])
# Metadata the application may not set: they would corrupt the protocol.
cdef frozenset FORBIDDEN_METADATA = frozenset([
    "content-type", "te", "grpc-encoding", "grpc-accept-encoding", "grpc-timeout",
    "grpc-status", "grpc-message", "content-length", "connection", "host",
    "transfer-encoding", "upgrade", "keep-alive", "proxy-connection",
])


class MetadataError(ValueError):
    """Metadata that cannot be sent (bad key, reserved key, bad value)."""


cdef bytes _HEX = b"0123456789ABCDEF"


cpdef bytes percent_encode(str message):
    """grpc-message encoding: UTF-8, then every byte outside 0x20-0x7E and
    '%' itself as %XX."""
    cdef bytes raw = message.encode("utf-8", "surrogatepass")
    cdef const unsigned char* p = raw
    cdef Py_ssize_t n = len(raw), i, j = 0
    cdef unsigned char ch
    cdef bytearray out
    for i in range(n):
        ch = p[i]
        if ch < 0x20 or ch > 0x7e or ch == 0x25:
            break
    else:
        return raw
    out = bytearray(n * 3)
    for i in range(n):
        ch = p[i]
        if ch < 0x20 or ch > 0x7e or ch == 0x25:
            out[j] = 0x25
            out[j + 1] = _HEX[ch >> 4]
            out[j + 2] = _HEX[ch & 15]
            j += 3
        else:
            out[j] = ch
            j += 1
    return bytes(out[:j])


cdef inline int _hexval(unsigned char c) noexcept:
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


cpdef str percent_decode(bytes value):
    """Inverse of percent_encode. Never fails: a '%' not followed by two hex
    digits is kept as it is, and invalid UTF-8 becomes U+FFFD."""
    cdef const unsigned char* p = value
    cdef Py_ssize_t n = len(value), i = 0, j = 0
    cdef int hi, lo
    cdef bytearray out
    if b"%" not in value:
        return value.decode("utf-8", "replace")
    out = bytearray(n)
    while i < n:
        if p[i] == 0x25 and i + 2 < n + 0 and i + 2 <= n - 1:
            hi = _hexval(p[i + 1])
            lo = _hexval(p[i + 2])
            if hi >= 0 and lo >= 0:
                out[j] = (hi << 4) | lo
                j += 1
                i += 3
                continue
        out[j] = p[i]
        j += 1
        i += 1
    return bytes(out[:j]).decode("utf-8", "replace")


cdef tuple _TIMEOUT_UNITS = ((b"n", 1e-9), (b"u", 1e-6), (b"m", 1e-3), (b"S", 1.0), (b"M", 60.0), (b"H", 3600.0))


cpdef bytes encode_timeout(double seconds):
    """grpc-timeout: at most 8 digits and a unit; the finest unit that fits,
    rounded up so the server never sees a shorter deadline than ours."""
    cdef double scale, units
    cdef int64_t value
    if seconds <= 0:
        return b"1n"
    for unit, scale in _TIMEOUT_UNITS:
        units = seconds / scale
        if units >= 99999999.0:
            continue
        value = <int64_t>units
        if value < units:
            value += 1
        return b"%d%s" % (value, unit)
    return b"99999999H"


cpdef double parse_timeout(bytes value) except -2.0:
    """Seconds from a grpc-timeout value; -1.0 if malformed."""
    cdef Py_ssize_t n = len(value)
    cdef const unsigned char* p = value
    cdef int64_t digits = 0
    cdef Py_ssize_t i
    cdef unsigned char unit
    if n < 2 or n > 9:
        return -1.0
    for i in range(n - 1):
        if p[i] < 48 or p[i] > 57:
            return -1.0
        digits = digits * 10 + (p[i] - 48)
    unit = p[n - 1]
    if unit == b"H":
        return digits * 3600.0
    if unit == b"M":
        return digits * 60.0
    if unit == b"S":
        return <double>digits
    if unit == b"m":
        return digits * 1e-3
    if unit == b"u":
        return digits * 1e-6
    if unit == b"n":
        return digits * 1e-9
    return -1.0


cdef inline bint _valid_key(str key):
    cdef Py_UCS4 ch
    if not key:
        return False
    for ch in key:
        if not (("a" <= ch <= "z") or ("0" <= ch <= "9") or ch == "-" or ch == "_" or ch == "."):
            return False
    return True


cpdef list encode_metadata(object metadata):
    """Application metadata -> header pairs. Keys: lowercase [0-9a-z-_.],
    not pseudo (the protocol's own headers are dropped); `-bin` values are
    bytes, sent as unpadded base64; other values are printable ASCII (None
    is sent empty)."""
    cdef list out = []
    cdef str key
    cdef object value
    cdef bytes raw
    if metadata is None:
        return out
    for item in metadata:
        key = item[0]
        value = item[1]
        if not _valid_key(key):
            raise MetadataError("metadata key %r is not a valid gRPC key (lowercase 0-9 a-z - _ .)" % (key,))
        if key in FORBIDDEN_METADATA:
            # headers the protocol sets itself: dropped, as grpcio drops
            # them (other "grpc-" keys are the application's and are sent)
            continue
        if key.endswith("-bin"):
            if isinstance(value, str):
                value = value.encode("latin-1")
            out.append((key.encode("ascii"), _base64.b64encode(value).rstrip(b"=")))
        else:
            if isinstance(value, bytes):
                raw = value
            elif value is None:
                raw = b""         # grpcio sends None as an empty value
            else:
                raw = (<str>value).encode("ascii", "strict") if isinstance(value, str) else str(value).encode("ascii")
            for ch in raw:
                if ch < 0x20 or ch > 0x7e:
                    raise MetadataError("metadata value for %r must be printable ASCII" % (key,))
            out.append((key.encode("ascii"), raw))
    return out


cdef bytes _b64_pad(bytes v):
    cdef Py_ssize_t m = len(v) % 4
    if m:
        return v + b"=" * (4 - m)
    return v


cpdef tuple decode_metadata(list headers):
    """Header pairs -> application metadata (tuple of (str, str|bytes)),
    without pseudo-headers and protocol headers; `-bin` values base64-decoded
    (padded or not, comma-joined values split)."""
    cdef list out = []
    cdef bytes name, value
    cdef str key
    for name, value in headers:
        if not name or name[0] == 58 or name in RESERVED_HEADERS:   # ':'
            continue
        key = name.decode("latin-1")
        if key.endswith("-bin"):
            for part in value.split(b","):
                part = part.strip()
                try:
                    out.append((key, _base64.b64decode(_b64_pad(part), validate=False)))
                except Exception:
                    out.append((key, part))
        else:
            out.append((key, value.decode("latin-1")))
    return tuple(out)
