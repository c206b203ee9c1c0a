# HPACK Huffman code (RFC 7541 §5.2, Appendix B).
#
# Encoding: each byte maps to (code, length) from HUFF_CODE / HUFF_LEN. Codes
# are shifted into a 64-bit register and whole bytes are emitted from its top
# as soon as 8 bits are pending; at the end the last partial byte is padded
# with 1 bits (the most significant bits of EOS). huff_encoded_len() sums the
# lengths first, so a caller can take Huffman only when it is strictly shorter.
#
# Decoding is table driven, four bits at a time. At import time the code
# table is turned into a binary tree (256 internal nodes for 257 leaves); each
# internal node is a state of a finite automaton, the root being state 0. For
# every state and every nibble, HUFF_FSM holds where the 4 bits lead:
#   next    the state after them (back at the root after a complete symbol);
#   sym     the byte completed on the way, if any (flag HF_EMIT). The shortest
#           code is 5 bits, so one nibble completes at most one symbol;
#   HF_FAIL the bits complete EOS, which must never appear in a string;
#   HF_ACCEPT the string may end here: the bits since the last symbol are at
#           most 7 and all 1s (a strict prefix of EOS), i.e. valid padding.
# A string that ends in a state without HF_ACCEPT has padding longer than 7
# bits, padding containing a 0 bit, or a truncated symbol: all rejected
# (§5.2), as is any EOS. The decoder thus costs two table look-ups per input
# byte and no Python object until the finished string.

include "hpack_tables.pxi"

cdef enum:
    HUFF_EOS = 256
    HUFF_NODES = 256          # internal nodes of a complete tree over 257 leaves
    HF_EMIT = 1
    HF_FAIL = 2
    HF_ACCEPT = 4

ctypedef struct HuffStep:
    uint8_t next
    uint8_t sym
    uint8_t flags

cdef HuffStep HUFF_FSM[HUFF_NODES][16]


cdef int _huff_build_fsm() except -1:
    # child[node][bit]: >= 0 an internal node, < -1 the leaf -2 - sym, -1 unset.
    cdef int child[HUFF_NODES][2]
    cdef uint8_t depth[HUFF_NODES]
    cdef bint ones[HUFF_NODES]          # the path from the root is all 1 bits
    cdef int nnodes = 1, sym, i, bit, node, nxt, state, nib, k
    cdef uint32_t code
    cdef uint8_t flags, out
    memset(child, 0xff, sizeof(child))  # every int becomes -1
    depth[0] = 0
    ones[0] = True
    for sym in range(HUFF_EOS + 1):
        code = HUFF_CODE[sym]
        node = 0
        for i in range(HUFF_LEN[sym] - 1, -1, -1):
            bit = (code >> i) & 1
            if i == 0:
                if child[node][bit] != -1:
                    raise RuntimeError("HPACK Huffman table is not a prefix code")
                child[node][bit] = -2 - sym
                break
            nxt = child[node][bit]
            if nxt == -1:
                if nnodes == HUFF_NODES:
                    raise RuntimeError("HPACK Huffman table has too many nodes")
                nxt = nnodes
                nnodes += 1
                child[node][bit] = nxt
                depth[nxt] = depth[node] + 1
                ones[nxt] = ones[node] and bit == 1
            elif nxt < -1:
                raise RuntimeError("HPACK Huffman table is not a prefix code")
            node = nxt
    for state in range(HUFF_NODES):
        for nib in range(16):
            node = state
            flags = 0
            out = 0
            if state >= nnodes:
                flags = HF_FAIL
            else:
                for k in range(3, -1, -1):
                    nxt = child[node][(nib >> k) & 1]
                    if nxt == -1 or nxt == -2 - HUFF_EOS:
                        flags = HF_FAIL
                        break
                    if nxt < -1:
                        out = <uint8_t>(-2 - nxt)
                        flags |= HF_EMIT
                        node = 0
                    else:
                        node = nxt
            if not (flags & HF_FAIL) and (node == 0 or (ones[node] and depth[node] <= 7)):
                flags |= HF_ACCEPT
            HUFF_FSM[state][nib].next = <uint8_t>node
            HUFF_FSM[state][nib].sym = out
            HUFF_FSM[state][nib].flags = flags
    return 0

_huff_build_fsm()


cdef inline Py_ssize_t huff_encoded_len(const unsigned char* src, Py_ssize_t n) noexcept nogil:
    """Bytes the Huffman encoding of src[:n] takes, padding included."""
    cdef uint64_t bits = 0
    cdef Py_ssize_t i
    for i in range(n):
        bits += HUFF_LEN[src[i]]
    return <Py_ssize_t>((bits + 7) >> 3)


cdef inline Py_ssize_t huff_encode(const unsigned char* src, Py_ssize_t n,
                                   unsigned char* dst) noexcept nogil:
    """Huffman-encode src[:n] into dst, which has room for huff_encoded_len()
    bytes; returns the number of bytes written."""
    # At most 7 bits stay pending between symbols and a code is at most 30
    # bits, so the register never holds more than 37 bits.
    cdef uint64_t reg = 0
    cdef unsigned int nbits = 0, length
    cdef Py_ssize_t i, o = 0
    cdef unsigned char c
    for i in range(n):
        c = src[i]
        length = HUFF_LEN[c]
        reg = (reg << length) | HUFF_CODE[c]
        nbits += length
        while nbits >= 8:
            nbits -= 8
            dst[o] = <unsigned char>(reg >> nbits)
            o += 1
    if nbits:
        dst[o] = <unsigned char>((reg << (8 - nbits)) | (0xff >> nbits))
        o += 1
    return o


cdef Py_ssize_t huff_decode(const unsigned char* src, Py_ssize_t n,
                            unsigned char* dst) except -1:
    """Decode src[:n] into dst, which needs room for huff_decoded_max(n)
    bytes; returns the decoded length or raises HPACKError."""
    cdef unsigned int state = 0
    cdef uint8_t flags = HF_ACCEPT     # the empty string is valid
    cdef Py_ssize_t i, o = 0
    cdef unsigned char c
    cdef const HuffStep* st
    for i in range(n):
        c = src[i]
        st = &HUFF_FSM[state][c >> 4]
        if st.flags & HF_FAIL:
            raise HPACKError("invalid Huffman code: EOS symbol in a string literal")
        if st.flags & HF_EMIT:
            dst[o] = st.sym
            o += 1
        st = &HUFF_FSM[st.next][c & 0xf]
        if st.flags & HF_FAIL:
            raise HPACKError("invalid Huffman code: EOS symbol in a string literal")
        if st.flags & HF_EMIT:
            dst[o] = st.sym
            o += 1
        state = st.next
        flags = st.flags
    if not (flags & HF_ACCEPT):
        raise HPACKError("invalid Huffman padding: longer than 7 bits, not all 1s, or a truncated code")
    return o


cdef inline Py_ssize_t huff_decoded_max(Py_ssize_t n) noexcept nogil:
    # The shortest code is 5 bits, so n bytes hold at most 8n/5 symbols.
    return (n * 8) // 5 + 1


def huffman_encode(data):
    """Huffman-encode a bytes-like object (RFC 7541 §5.2); returns bytes."""
    cdef Py_buffer pb
    cdef bytes out
    cdef Py_ssize_t n
    PyObject_GetBuffer(data, &pb, PyBUF_SIMPLE)
    try:
        n = huff_encoded_len(<const unsigned char*>pb.buf, pb.len)
        out = PyBytes_FromStringAndSize(NULL, n)
        huff_encode(<const unsigned char*>pb.buf, pb.len, <unsigned char*>PyBytes_AS_STRING(out))
        return out
    finally:
        PyBuffer_Release(&pb)


def huffman_decode(data):
    """Decode a Huffman-coded bytes-like object; raises HPACKError if invalid."""
    cdef Py_buffer pb
    cdef unsigned char* tmp = NULL
    cdef Py_ssize_t n
    PyObject_GetBuffer(data, &pb, PyBUF_SIMPLE)
    try:
        tmp = <unsigned char*>PyMem_Malloc(huff_decoded_max(pb.len))
        if tmp is NULL:
            raise MemoryError()
        n = huff_decode(<const unsigned char*>pb.buf, pb.len, tmp)
        return PyBytes_FromStringAndSize(<char*>tmp, n)
    finally:
        PyMem_Free(tmp)
        PyBuffer_Release(&pb)
