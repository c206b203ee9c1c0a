"""HPACK Decoder: any blocks give header lists or HPACKError (after which the
connection is unusable) or HeaderListTooLarge; the dynamic table stays within
its size; whatever decodes, grpcpy's Encoder encodes back to the same list."""
from fuzz._support import Input, core


def _entry_size(e):
    return len(e[0]) + len(e[1]) + 32


def one_input(data):
    inp = Input(data)
    max_table = (0, 64, 256, 4096, 65536)[inp.byte() % 5]
    max_list = (64, 1024, 16384, 1 << 20)[inp.byte() % 4]
    dec = core.Decoder(max_table_size=max_table, max_header_list_size=max_list)
    enc = core.Encoder(max_table_size=inp.byte() * 64, huffman=bool(inp.byte() & 1))
    enc.header_table_size = max_table
    mirror = core.Decoder(max_table_size=max_table, max_header_list_size=1 << 30)
    if inp.byte() & 1:
        dec.max_table_size = inp.u16()          # lowering it obliges an update
    for block in inp.chunks():
        try:
            headers = dec.decode(block)
        except core.HPACKError:
            return
        except core.HeaderListTooLarge as exc:
            assert exc.size > max_list
            continue
        assert dec.table_size <= dec.header_table_size <= max(dec.max_table_size, max_table)
        assert dec.table_size == sum(_entry_size(e) for e in dec.table_entries)
        assert sum(_entry_size(e) for e in headers) <= max_list
        for name, value in headers:
            assert type(name) is bytes and type(value) is bytes
        for i in dec.never_indexed:
            assert 0 <= i < len(headers)
        assert mirror.decode(enc.encode(headers)) == headers, "Encoder/Decoder round trip"
