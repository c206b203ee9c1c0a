# Message compression (grpc-encoding): the encodings grpcpy speaks, and a
# bounded inflate so a small compressed message cannot make us allocate more
# than the receive limit.

import zlib as _zlib

cdef tuple SUPPORTED_ENCODINGS = ("identity", "deflate", "gzip")
cdef bytes ACCEPT_ENCODING = b"identity,deflate,gzip"


cdef object _compressor(str encoding):
    if encoding == "gzip":
        return lambda data: _gzip_compress(data)
    if encoding == "deflate":
        return _zlib.compress
    return None


cdef bytes _gzip_compress(bytes data):
    cdef object c = _zlib.compressobj(6, _zlib.DEFLATED, 16 + _zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


cdef bytes _decompress(str encoding, bytes data, Py_ssize_t limit):
    """Inflate with a bound: a small compressed message cannot make us
    allocate more than the receive limit (+1 byte to detect the excess)."""
    cdef int wbits = 16 + _zlib.MAX_WBITS if encoding == "gzip" else _zlib.MAX_WBITS
    cdef object d = _zlib.decompressobj(wbits)
    cdef bytes out
    if limit < 0:
        out = d.decompress(data)
    else:
        out = d.decompress(data, limit + 1)
    if not d.eof:
        if limit >= 0 and len(out) > limit:
            raise MessageTooLarge(len(out), limit)
        raise ValueError("truncated compressed message")
    if d.unused_data:
        raise ValueError("trailing bytes after compressed message")
    return out
