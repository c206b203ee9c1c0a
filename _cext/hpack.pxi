# HPACK header compression (RFC 7541).
#
# Theory of operation
#
# _HeaderTable is the dynamic table (§2.3.2, §4): a ring of (name, value)
# tuples in a Python list whose length is a power of two, newest entry at the
# logical end, so insertion and eviction are O(1) and index i (1 = newest) is
# one mask and one list read. Each entry is the tuple the decoder hands back,
# so an indexed field costs no allocation at all. Entries are numbered in
# insertion order (seq); the entry with seq s has dynamic index inserted - s.
# The encoder's copy also keeps two dicts, (name, value) -> seq and
# name -> seq of the newest such entry, pruned as entries are evicted.
#
# Decoder.decode() walks the block once with a C cursor. Integers (§5.1) and
# string lengths are checked against the end of the block before any read;
# Huffman strings go through the nibble automaton of huffman.pxi into a
# per-decoder scratch buffer. Static-table fields return the module's own
# tuples, dynamic ones the table's tuples. Size updates (§6.3) are accepted
# only at the start of a block, at most two of them, never above the size this
# side advertised; after max_table_size is lowered below the table's current
# maximum, the next block must open with an update down to it (§4.2). Past
# max_header_list_size the block is still decoded to its end so the table
# stays in step with the peer, only the list stops growing.
#
# Encoder.encode() first normalises the header list to bytes (so a bad item
# raises before the table is touched), then emits each field: indexed for a
# full match, else a literal, naming the header by index when the name is in
# a table. Literals are added to the table unless they are sensitive (never
# indexed, §7.1.3), known to change on every request, or too big to be worth
# the space. Strings are Huffman-coded only when that is strictly shorter.
# Header tuples that encoded without changing the table are cached with the
# table generation they were encoded at; a repeat at the same generation is a
# single dict look-up.
#
# The fields and cdef signatures of its classes: hpack.pxd.pxi.

cdef enum:
    HPACK_STATIC_LEN = 61            # entries in the static table (Appendix A)
    # Every entry costs its name and value plus 32 octets (§4.1).
    HPACK_ENTRY_OVERHEAD = 32
    # SETTINGS_HEADER_TABLE_SIZE starts at 4096 (RFC 9113 §6.5.2) until the
    # peer says otherwise, so both tables start there.
    HPACK_DEFAULT_TABLE_SIZE = 4096
    # 64 KiB of decoded headers: far above what gRPC metadata needs, small
    # enough that a compressed block cannot make a connection hold megabytes.
    HPACK_DEFAULT_MAX_HEADER_LIST = 65536
    # 5 continuation bytes carry 35 bits, enough for every 32-bit value; a
    # longer integer can only be padding or an attack.
    HPACK_INT_MAX_SHIFT = 28
    # A repeated header set is normally one per RPC method; 128 covers a busy
    # client while bounding memory. The cache is dropped whole when full.
    HPACK_CACHE_MAX = 128
    # Ring slots to start with (a power of two, doubled on demand): a gRPC
    # connection's table usually holds a dozen entries.
    HPACK_RING_INITIAL = 16

# Integers above 2^32 - 1 mean nothing in HTTP/2 (settings, lengths and
# indexes are all 32-bit), so they are rejected as malformed.
cdef int64_t HPACK_INT_LIMIT = 0xFFFFFFFF

cdef tuple _STATIC = STATIC_TABLE
cdef dict _STATIC_FULL = {}      # (name, value) -> lowest static index
cdef dict _STATIC_NAME = {}      # name -> lowest static index
for _i, _e in enumerate(STATIC_TABLE, 1):
    _STATIC_FULL.setdefault(_e, _i)
    _STATIC_NAME.setdefault(_e[0], _i)
del _i, _e

# Credentials: never indexed, so a proxy re-encoding them may not either and
# they cannot be probed through the compression context (§7.1.3).
cdef frozenset _NEVER_INDEX = frozenset([b"authorization", b"proxy-authorization", b"cookie"])
# Values that differ on every request: indexing them would only push useful
# entries out of the table.
cdef frozenset _NO_INDEX = frozenset([b"grpc-timeout", b"content-length", b"date"])


cdef inline Py_ssize_t _entry_size(tuple e):
    return PyBytes_GET_SIZE(<bytes>e[0]) + PyBytes_GET_SIZE(<bytes>e[1]) + HPACK_ENTRY_OVERHEAD


cdef inline int64_t _read_int(const unsigned char* p, Py_ssize_t n, Py_ssize_t* pos,
                              int prefix_bits) except -1:
    """Decode the integer at p[pos[0]] with an N-bit prefix (§5.1) and move
    pos past it. The caller guarantees pos[0] < n."""
    cdef Py_ssize_t i = pos[0]
    cdef int64_t mask = (1 << prefix_bits) - 1
    cdef int64_t v = p[i] & mask
    cdef int shift = 0
    cdef unsigned char b
    i += 1
    if v == mask:
        while True:
            if i >= n:
                raise HPACKError("truncated integer at the end of the header block")
            if shift > HPACK_INT_MAX_SHIFT:
                raise HPACKError("integer with too many continuation bytes")
            b = p[i]
            i += 1
            v += (<int64_t>(b & 0x7f)) << shift
            if v > HPACK_INT_LIMIT:
                raise HPACKError("integer does not fit in 32 bits")
            if not (b & 0x80):
                break
            shift += 7
    pos[0] = i
    return v


cdef inline int _write_int(WriteBuffer out, uint8_t first, int prefix_bits, uint64_t v) except -1:
    """Append v with an N-bit prefix; first holds the representation's flag bits."""
    cdef uint64_t mask = (<uint64_t>1 << prefix_bits) - 1
    cdef unsigned char tmp[12]
    cdef int k = 1
    if v < mask:
        return out.write_u8(<uint8_t>(first | v))
    tmp[0] = <unsigned char>(first | mask)
    v -= mask
    while v >= 0x80:
        tmp[k] = <unsigned char>((v & 0x7f) | 0x80)
        v >>= 7
        k += 1
    tmp[k] = <unsigned char>v
    return out.write_raw(<const char*>tmp, k + 1)


cdef inline bytes _as_bytes(object s):
    if type(s) is bytes:
        return <bytes>s
    if type(s) is str:
        return (<str>s).encode("utf-8")
    if isinstance(s, str):
        return str.encode(s, "utf-8")
    if isinstance(s, (bytes, bytearray, memoryview)):
        return bytes(s)
    raise TypeError("header names and values must be str or bytes, not %s" % type(s).__name__)


def _check_table_size(value):
    if not 0 <= value <= HPACK_INT_LIMIT:
        raise ValueError("HPACK table size must be in [0, 2**32 - 1], got %r" % (value,))
    return value


cdef class _HeaderTable:
    def __cinit__(self, Py_ssize_t max_size, bint indexed):
        self._ring = [None] * HPACK_RING_INITIAL
        self._mask = HPACK_RING_INITIAL - 1
        self._first = 0
        self._count = 0
        self._size = 0
        self._max = max_size
        self._inserted = 0
        if indexed:
            self._full = {}
            self._names = {}

    cdef inline tuple get(self, Py_ssize_t i):
        """Entry at dynamic index i, 1 <= i <= _count (1 = newest)."""
        return <tuple>self._ring[(self._first + self._count - i) & self._mask]

    cdef int _evict_one(self) except -1:
        cdef Py_ssize_t slot = self._first
        cdef tuple e = <tuple>self._ring[slot]
        cdef object seq
        self._ring[slot] = None
        self._first = (slot + 1) & self._mask
        self._count -= 1
        self._size -= _entry_size(e)
        if self._full is not None:
            # The evicted entry had seq = _inserted - (_count + 1); drop the
            # index entries that still point at it.
            seq = self._inserted - self._count - 1
            if self._full.get(e) == seq:
                del self._full[e]
            if self._names.get(e[0]) == seq:
                del self._names[e[0]]
        return 0

    cdef int resize(self, Py_ssize_t new_max) except -1:
        self._max = new_max
        while self._size > new_max:
            self._evict_one()
        return 0

    cdef int _grow(self) except -1:
        cdef Py_ssize_t cap = self._mask + 1, i
        cdef list ring = [None] * (cap * 2)
        for i in range(self._count):
            ring[i] = self._ring[(self._first + i) & self._mask]
        self._ring = ring
        self._mask = cap * 2 - 1
        self._first = 0
        return 0

    cdef int add(self, tuple e, Py_ssize_t esize) except -1:
        """Insert e (§4.4): evict from the oldest end until it fits; an entry
        larger than the whole table empties it and is not stored."""
        if esize > self._max:
            while self._count:
                self._evict_one()
            return 0
        while self._size + esize > self._max:
            self._evict_one()
        if self._count > self._mask:
            self._grow()
        self._ring[(self._first + self._count) & self._mask] = e
        self._count += 1
        self._size += esize
        if self._full is not None:
            self._full[e] = self._inserted
            self._names[e[0]] = self._inserted
        self._inserted += 1
        return 0

    cdef list entries(self):
        cdef Py_ssize_t i
        return [self.get(i) for i in range(1, self._count + 1)]


cdef class Decoder:
    """HPACK decoder: one per connection, fed every header block in order.

    Decoder(max_table_size=4096, max_header_list_size=65536)
      max_table_size        the SETTINGS_HEADER_TABLE_SIZE this side advertised
      max_header_list_size  the SETTINGS_MAX_HEADER_LIST_SIZE this side
                            advertised (name + value + 32 per field, summed)
    """

    def __cinit__(self, max_table_size=HPACK_DEFAULT_TABLE_SIZE,
                  max_header_list_size=HPACK_DEFAULT_MAX_HEADER_LIST):
        _check_table_size(max_table_size)
        if max_header_list_size < 0:
            raise ValueError("max_header_list_size must not be negative")
        self._max_table_size = max_table_size
        self._table = _HeaderTable(max_table_size, False)
        self._required = -1
        self._max_list = max_header_list_size
        self._scratch = NULL
        self._scratch_cap = 0
        self._never_indexed = ()

    def __dealloc__(self):
        PyMem_Free(self._scratch)
        self._scratch = NULL

    @property
    def max_table_size(self):
        """The SETTINGS_HEADER_TABLE_SIZE this side advertised: the largest
        size update the peer may send. Lowering it below the table's current
        maximum obliges the peer to open its next block with an update."""
        return self._max_table_size

    @max_table_size.setter
    def max_table_size(self, value):
        cdef Py_ssize_t v = _check_table_size(value)
        if v < self._table._max:
            if self._required < 0 or v < self._required:
                self._required = v
        self._max_table_size = v

    @property
    def max_header_list_size(self):
        return self._max_list

    @max_header_list_size.setter
    def max_header_list_size(self, Py_ssize_t value):
        if value < 0:
            raise ValueError("max_header_list_size must not be negative")
        self._max_list = value

    @property
    def header_table_size(self):
        """The dynamic table's current maximum size (the peer's last update)."""
        return self._table._max

    @property
    def table_size(self):
        """Octets the dynamic table holds now (§4.1)."""
        return self._table._size

    @property
    def table_entries(self):
        """The dynamic table as a list of (name, value), newest first."""
        return self._table.entries()

    @property
    def never_indexed(self):
        """Positions, in the last decoded list, of never-indexed fields."""
        return tuple(self._never_indexed)

    def decode(self, block):
        """Decode one complete header block (bytes, bytearray or memoryview)
        into a list of (name, value) bytes tuples.

        Raises HPACKError (COMPRESSION_ERROR, the connection is unusable) or
        HeaderListTooLarge (the block was fully decoded, the stream fails)."""
        cdef Py_buffer pb
        if PyBytes_CheckExact(block):
            return self._decode(<const unsigned char*>PyBytes_AS_STRING(<bytes>block),
                                PyBytes_GET_SIZE(<bytes>block))
        PyObject_GetBuffer(block, &pb, PyBUF_SIMPLE)
        try:
            return self._decode(<const unsigned char*>pb.buf, pb.len)
        finally:
            PyBuffer_Release(&pb)

    cdef inline tuple _entry(self, int64_t idx):
        if idx <= 0:
            raise HPACKError("header field index 0")
        if idx <= HPACK_STATIC_LEN:
            return <tuple>_STATIC[idx - 1]
        idx -= HPACK_STATIC_LEN
        if idx > self._table._count:
            raise HPACKError("header field index %d beyond the table (%d entries)"
                             % (idx + HPACK_STATIC_LEN, HPACK_STATIC_LEN + self._table._count))
        return self._table.get(idx)

    cdef bytes _read_string(self, const unsigned char* p, Py_ssize_t n, Py_ssize_t* pos):
        cdef Py_ssize_t i = pos[0], m, need
        cdef int64_t length
        cdef bint huff
        if i >= n:
            raise HPACKError("header block ends where a string was expected")
        huff = p[i] & 0x80
        length = _read_int(p, n, pos, 7)
        i = pos[0]
        if length > n - i:
            raise HPACKError("string length %d beyond the end of the header block" % length)
        pos[0] = i + <Py_ssize_t>length
        if not huff:
            return PyBytes_FromStringAndSize(<const char*>p + i, <Py_ssize_t>length)
        need = huff_decoded_max(<Py_ssize_t>length)
        if need > self._scratch_cap:
            PyMem_Free(self._scratch)
            self._scratch = <unsigned char*>PyMem_Malloc(need)
            if self._scratch is NULL:
                self._scratch_cap = 0
                raise MemoryError()
            self._scratch_cap = need
        m = huff_decode(p + i, <Py_ssize_t>length, self._scratch)
        return PyBytes_FromStringAndSize(<const char*>self._scratch, m)

    cdef list _decode(self, const unsigned char* p, Py_ssize_t n):
        cdef list headers = []
        cdef list never = None
        cdef Py_ssize_t pos = 0, list_size = 0, esize
        cdef int updates = 0
        cdef int64_t v, idx, smallest = -1
        cdef unsigned char b
        cdef tuple e
        cdef bytes name, value

        # Size updates: only before the first field (§4.2), at most two (the
        # smallest and the final value, §4.2), each within what we advertised.
        while pos < n and (p[pos] & 0xe0) == 0x20:
            updates += 1
            if updates > 2:
                raise HPACKError("more than two dynamic table size updates in one block")
            v = _read_int(p, n, &pos, 5)
            if v > self._max_table_size:
                raise HPACKError("dynamic table size update to %d exceeds the advertised %d"
                                 % (v, self._max_table_size))
            if smallest < 0 or v < smallest:
                smallest = v
            self._table.resize(<Py_ssize_t>v)
        if self._required >= 0:
            if smallest < 0 or smallest > self._required:
                raise HPACKError("expected a dynamic table size update to at most %d at the "
                                 "start of the block" % self._required)
            self._required = -1

        while pos < n:
            b = p[pos]
            if b & 0x80:                        # indexed field (§6.1)
                e = self._entry(_read_int(p, n, &pos, 7))
            elif b & 0x40:                      # literal, incremental indexing (§6.2.1)
                idx = _read_int(p, n, &pos, 6)
                if idx:
                    name = <bytes>self._entry(idx)[0]
                else:
                    name = self._read_string(p, n, &pos)
                value = self._read_string(p, n, &pos)
                e = (name, value)
                self._table.add(e, _entry_size(e))
            elif b & 0x20:
                raise HPACKError("dynamic table size update after a header field")
            else:                               # literal without / never indexed (§6.2.2-3)
                idx = _read_int(p, n, &pos, 4)
                if idx:
                    name = <bytes>self._entry(idx)[0]
                else:
                    name = self._read_string(p, n, &pos)
                value = self._read_string(p, n, &pos)
                e = (name, value)
                if b & 0x10:
                    if never is None:
                        never = []
                    never.append(len(headers))
            list_size += _entry_size(e)
            if list_size <= self._max_list:
                headers.append(e)
        self._never_indexed = never if never is not None else ()
        if list_size > self._max_list:
            raise HeaderListTooLarge(list_size, self._max_list)
        return headers


cdef class Encoder:
    """HPACK encoder: one per connection, its blocks sent in the order made.

    Encoder(max_table_size=4096, huffman=True)
      max_table_size  the largest dynamic table this side is willing to keep;
                      the table used is min(max_table_size, header_table_size)
      huffman         Huffman-code strings (only where strictly shorter)
    """

    def __cinit__(self, max_table_size=HPACK_DEFAULT_TABLE_SIZE, huffman=True):
        _check_table_size(max_table_size)
        self._max_table_size = max_table_size
        self._peer_size = HPACK_DEFAULT_TABLE_SIZE
        self._table = _HeaderTable(HPACK_DEFAULT_TABLE_SIZE, True)
        self._pending_min = -1
        self._huffman = bool(huffman)
        self._gen = 0
        self._cache = {}
        self._buf = WriteBuffer()
        self._apply_size()

    cdef int _apply_size(self) except -1:
        """Resize the table to min(own limit, peer's setting) now, and note the
        size update(s) the next block must start with (§4.2)."""
        cdef Py_ssize_t size = self._max_table_size
        if self._peer_size < size:
            size = self._peer_size
        if size == self._table._max:
            return 0
        if self._pending_min < 0 or size < self._pending_min:
            self._pending_min = size
        self._table.resize(size)
        self._gen += 1
        return 0

    @property
    def header_table_size(self):
        """The peer's SETTINGS_HEADER_TABLE_SIZE (default 4096)."""
        return self._peer_size

    @header_table_size.setter
    def header_table_size(self, value):
        self._peer_size = _check_table_size(value)
        self._apply_size()

    @property
    def max_table_size(self):
        return self._max_table_size

    @max_table_size.setter
    def max_table_size(self, value):
        self._max_table_size = _check_table_size(value)
        self._apply_size()

    @property
    def huffman(self):
        return self._huffman

    @property
    def table_size(self):
        """Octets the dynamic table holds now (§4.1)."""
        return self._table._size

    @property
    def table_entries(self):
        """The dynamic table as a list of (name, value), newest first."""
        return self._table.entries()

    def encode(self, headers):
        """Encode an iterable of (name, value) or (name, value, sensitive)
        (str or bytes) into one header block; returns bytes."""
        cdef object hit
        if self._pending_min < 0 and type(headers) is tuple:
            hit = self._cache_get(headers)
            if hit is not None:
                return hit
        self._buf.clear()
        self.encode_into(self._buf, headers)
        return self._buf.take()

    cdef object _cache_get(self, object headers):
        cdef object hit
        try:
            hit = self._cache.get(headers)
        except TypeError:               # an unhashable item: not cacheable
            return None
        if hit is not None and <uint64_t>(<tuple>hit)[1] == self._gen:
            return (<tuple>hit)[0]
        return None

    cdef int encode_into(self, WriteBuffer out, object headers) except -1:
        """Append the encoding of headers to out."""
        cdef bint cacheable = self._pending_min < 0 and type(headers) is tuple
        cdef object hit
        cdef list fields
        cdef Py_ssize_t start, i, nf
        cdef uint64_t gen0
        if cacheable:
            hit = self._cache_get(headers)
            if hit is not None:
                return out.write_raw(PyBytes_AS_STRING(<bytes>hit), PyBytes_GET_SIZE(<bytes>hit))
        fields = _normalize(headers)
        start = out._len
        gen0 = self._gen
        if self._pending_min >= 0:
            if self._pending_min < self._table._max:
                _write_int(out, 0x20, 5, <uint64_t>self._pending_min)
            _write_int(out, 0x20, 5, <uint64_t>self._table._max)
            self._pending_min = -1
        nf = len(fields)
        i = 0
        while i < nf:
            self._encode_field(out, <bytes>fields[i], <bytes>fields[i + 1], fields[i + 2] is True)
            i += 3
        if cacheable and self._gen == gen0:
            try:
                if len(self._cache) >= HPACK_CACHE_MAX:
                    self._cache.clear()
                self._cache[headers] = (
                    PyBytes_FromStringAndSize(out._buf + start, out._len - start), gen0)
            except TypeError:
                pass
        return 0

    cdef int _write_string(self, WriteBuffer out, bytes s) except -1:
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(s)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(s), h
        if self._huffman and n:
            h = huff_encoded_len(p, n)
            if h < n:
                _write_int(out, 0x80, 7, <uint64_t>h)
                huff_encode(p, n, <unsigned char*>out.reserve(h))
                return 0
        _write_int(out, 0, 7, <uint64_t>n)
        return out.write_raw(<const char*>p, n)

    cdef int _encode_field(self, WriteBuffer out, bytes name, bytes value, bint sensitive) except -1:
        cdef _HeaderTable t = self._table
        cdef tuple key = (name, value)
        cdef object hit
        cdef Py_ssize_t name_idx = 0, esize
        cdef uint8_t first
        cdef int prefix
        # Credentials are always sent as never-indexed literals, even where a
        # table holds the same pair: the representation itself tells proxies
        # re-encoding the block never to index them either (§7.1.3).
        if not sensitive and name in _NEVER_INDEX:
            sensitive = True
        if not sensitive:
            hit = _STATIC_FULL.get(key)
            if hit is not None:
                return _write_int(out, 0x80, 7, <uint64_t><Py_ssize_t>hit)
            hit = t._full.get(key)
            if hit is not None:
                return _write_int(out, 0x80, 7,
                                  <uint64_t>(HPACK_STATIC_LEN + t._inserted - <Py_ssize_t>hit))
        hit = _STATIC_NAME.get(name)
        if hit is not None:
            name_idx = <Py_ssize_t>hit
        else:
            hit = t._names.get(name)
            if hit is not None:
                name_idx = HPACK_STATIC_LEN + t._inserted - <Py_ssize_t>hit
        esize = PyBytes_GET_SIZE(name) + PyBytes_GET_SIZE(value) + HPACK_ENTRY_OVERHEAD
        if sensitive:
            first = 0x10
            prefix = 4
        elif name in _NO_INDEX or esize * 4 > t._max * 3:
            # An entry over 3/4 of the table would evict most of it for one field.
            first = 0x00
            prefix = 4
        else:
            first = 0x40
            prefix = 6
        _write_int(out, first, prefix, <uint64_t>name_idx)
        if not name_idx:
            self._write_string(out, name)
        self._write_string(out, value)
        if first == 0x40:
            t.add(key, esize)
            self._gen += 1
        return 0


cdef list _normalize(object headers):
    """[name, value, sensitive, ...] as bytes, bytes, bool, from the caller's
    (name, value[, sensitive]) items."""
    cdef list out = []
    cdef tuple t
    cdef Py_ssize_t k
    for h in headers:
        t = <tuple>h if type(h) is tuple else tuple(h)
        k = len(t)
        if k != 2 and k != 3:
            raise TypeError("a header must be (name, value) or (name, value, sensitive), got %r" % (h,))
        out.append(_as_bytes(t[0]))
        out.append(_as_bytes(t[1]))
        out.append(True if k == 3 and t[2] else False)
    return out
