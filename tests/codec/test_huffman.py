"""HPACK Huffman code (RFC 7541 §5.2, Appendix B).

Oracles: the worked examples of RFC 7541 Appendix C.4/C.6 and, for random
input, the reference pure-Python encoder of the `hpack` package.
"""
import pytest
from hypothesis import given, settings, strategies as st
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

from grpcpy._cext import HPACKError, huffman_decode, huffman_encode

REFERENCE = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)

# (plain, Huffman-coded hex) pairs from RFC 7541 Appendix C.4 and C.6.
RFC_EXAMPLES = [
    (b"www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"),
    (b"no-cache", "a8eb10649cbf"),
    (b"custom-key", "25a849e95ba97d7f"),
    (b"custom-value", "25a849e95bb8e8b4bf"),
    (b"302", "6402"),
    (b"private", "aec3771a4b"),
    (b"Mon, 21 Oct 2013 20:13:21 GMT", "d07abe941054d444a8200595040b8166e082a62d1bff"),
    (b"https://www.example.com", "9d29ad171863c78f0b97c8e9ae82ae43d3"),
    (b"gzip", "9bd9ab"),
    (b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
     "94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"),
    (b"", ""),
]


@pytest.mark.parametrize("plain,coded", RFC_EXAMPLES)
def test_rfc_examples(plain, coded):
    assert huffman_encode(plain).hex() == coded
    assert huffman_decode(bytes.fromhex(coded)) == plain


def test_every_byte_value_alone():
    for b in range(256):
        s = bytes([b])
        assert huffman_encode(s) == REFERENCE.encode(s)
        assert huffman_decode(huffman_encode(s)) == s


def test_accepts_bytes_like():
    coded = huffman_encode(bytearray(b"abc"))
    assert huffman_decode(memoryview(coded)) == b"abc"
    assert huffman_decode(bytearray(coded)) == b"abc"


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_round_trip_and_reference(data):
    coded = huffman_encode(data)
    assert coded == REFERENCE.encode(data)
    assert huffman_decode(coded) == data


EOS = (1 << 30) - 1  # 30 one bits


def _pack(bits, nbits):
    """Left-align nbits of bits into whole bytes, padding with 1s."""
    pad = -nbits % 8
    bits = (bits << pad) | ((1 << pad) - 1)
    return bits.to_bytes((nbits + pad) // 8, "big")


BAD = [
    # EOS as a whole symbol, alone (30 bits + 2 bits of 1 padding)
    ("eos alone", _pack(EOS, 30)),
    # 'a' (00011, 5 bits) then EOS
    ("eos after a symbol", _pack((0b00011 << 30) | EOS, 35)),
    # EOS then 'a': EOS in the middle of a string
    ("eos before a symbol", _pack((EOS << 5) | 0b00011, 35)),
    # 8 bits of 1s as padding: a whole byte of padding is too long
    ("padding of 8 bits", b"\xff"),
    # 'a' then 11 bits of 1 padding
    ("padding of 11 bits", bytes([0b00011111, 0b11111111])),
    # 'a' then padding 110 (contains a 0 bit)
    ("padding with a zero bit", bytes([0b00011110])),
    # padding of 0s
    ("zero padding", bytes([0b00011000])),
    # 'a' and a truncated 6-bit code 'A' (100001): prefix 10 then stop
    ("truncated code", bytes([0b00011100])),
]


@pytest.mark.parametrize("coded", [c for _, c in BAD], ids=[n for n, _ in BAD])
def test_rejects_invalid(coded):
    with pytest.raises(HPACKError):
        huffman_decode(coded)


@pytest.mark.parametrize("pad", range(8))
def test_every_valid_padding_length_accepted(pad):
    # Find a short string whose code ends `pad` bits before a byte boundary.
    for a in range(256):
        for b in range(256):
            s = bytes([a, b])
            nbits = REQUEST_CODES_LENGTH[a] + REQUEST_CODES_LENGTH[b]
            if -nbits % 8 == pad:
                assert huffman_decode(huffman_encode(s)) == s
                return
    pytest.fail("no two-symbol string with %d bits of padding" % pad)  # pragma: no cover
