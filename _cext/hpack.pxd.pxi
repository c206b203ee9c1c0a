# Declarations of hpack.pxi: the dynamic table, Decoder and Encoder (RFC 7541).

@cython.final
cdef class _HeaderTable:
    cdef list _ring              # entry tuples; len(_ring) is a power of two
    cdef Py_ssize_t _mask
    cdef Py_ssize_t _first       # ring slot of the oldest entry
    cdef Py_ssize_t _count
    cdef Py_ssize_t _size        # octets in use (§4.1)
    cdef Py_ssize_t _max         # maximum size set by the last size update
    cdef Py_ssize_t _inserted    # entries ever inserted
    cdef dict _full              # encoder only: (name, value) -> seq
    cdef dict _names             # encoder only: name -> seq of newest entry

    cdef inline tuple get(self, Py_ssize_t i)
    cdef int _evict_one(self) except -1
    cdef int resize(self, Py_ssize_t new_max) except -1
    cdef int _grow(self) except -1
    cdef int add(self, tuple e, Py_ssize_t esize) except -1
    cdef list entries(self)


@cython.final
cdef class Decoder:
    cdef _HeaderTable _table
    cdef Py_ssize_t _max_table_size
    cdef Py_ssize_t _required        # -1, or the size the next block must shrink to
    cdef Py_ssize_t _max_list
    cdef unsigned char* _scratch     # Huffman output, reused across strings
    cdef Py_ssize_t _scratch_cap
    cdef object _never_indexed

    cdef inline tuple _entry(self, int64_t idx)
    cdef bytes _read_string(self, const unsigned char* p, Py_ssize_t n, Py_ssize_t* pos)
    cdef list _decode(self, const unsigned char* p, Py_ssize_t n)


@cython.final
cdef class Encoder:
    cdef _HeaderTable _table
    cdef Py_ssize_t _max_table_size
    cdef Py_ssize_t _peer_size       # the peer's SETTINGS_HEADER_TABLE_SIZE
    cdef Py_ssize_t _pending_min     # -1, or smallest size since the last block
    cdef bint _huffman
    cdef uint64_t _gen               # bumped on every insert, eviction or resize
    cdef dict _cache                 # headers tuple -> (bytes, generation)
    cdef WriteBuffer _buf

    cdef int _apply_size(self) except -1
    cdef object _cache_get(self, object headers)
    cdef int encode_into(self, WriteBuffer out, object headers) except -1
    cdef int _write_string(self, WriteBuffer out, bytes s) except -1
    cdef int _encode_field(self, WriteBuffer out, bytes name, bytes value, bint sensitive) except -1
