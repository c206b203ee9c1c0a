"""ClientConnection: the input is a program of steps - calls started (with
deadlines, metadata, compression, cardinality), requests sent, half-closes,
cancels, time passing, and the server's answers as frames it builds (or raw
bytes) in random-sized chunks.

Invariants: only documented exceptions; each call ends exactly once with a
status in 0-16 and nothing after it; the stream table stays within the
server's limit; after connection_lost every call has ended."""
from fuzz import _wire
from fuzz._support import Input, core

METHODS = ["/svc/Method", "/pkg.Svc/Stream", b"/raw"]


def one_input(data):
    inp = Input(data)
    cfg = core.H2Config(bdp_probing=bool(inp.byte() & 1), max_header_list_size=(16384, 256)[inp.byte() % 2],
                        settings_timeout=5.0)
    cli = core.ClientConnection(authority=b"fuzz", config=cfg,
                                max_receive_message_length=(4 << 20, 64, 0)[inp.byte() % 3],
                                max_send_message_length=(-1, 16)[inp.byte() % 2])
    now = 0.0
    cli.initiate(now)
    enc = core.Encoder()
    calls = []
    ended = set()
    known = set()
    messages = []
    half_closed = set()
    lost = False
    if not inp.byte() & 0x80:
        cli.receive_data(_wire.frame(4, 0, 0, b"") + _wire.frame(4, 1, 0, b""), now)
    steps = 0
    while len(inp) and steps < 200:
        steps += 1
        op = inp.byte() % 14
        pick = inp.byte() if 6 <= op <= 10 else 0
        live = [c for c in calls if not c.is_done]
        call = live[pick % len(live)] if live and 6 <= op <= 10 else None
        try:
            if op <= 2:
                sids = [c.stream_id for c in calls[-4:]] + [1, 0, 2, cli.next_stream_id]
                base = _wire.RESPONSE if inp.byte() & 1 else [(b"grpc-status", b"0")]
                wire = _wire.build_frame(inp, enc, sids, base)
                events = []
                for chunk in inp.chunks(wire):
                    events += cli.receive_data(chunk, now)
            elif op == 3:
                events = cli.receive_data(inp.take(1 + inp.byte()), now)
            elif op == 4:
                now += inp.byte() * (0.01, 1.0, 3600.0)[inp.byte() % 3]
                events = cli.handle_timeout(now)
            elif op == 5:
                flags = inp.byte()
                timeout = -1.0 if flags & 1 else inp.byte() * 0.1
                metadata = [("x-k", "v"), ("k-bin", b"\x00\xff")] if flags & 2 else None
                if flags & 4:
                    metadata = [("Bad Key", "v")]
                compression = (None, "gzip", "identity", "snappy")[(flags >> 3) % 4]
                new = cli.start_call(METHODS[inp.byte() % 3], now, timeout, metadata, compression,
                                     None, bool(flags & 0x20))
                calls.append(new)
                known.add(new)
                events = cli.take_events()
            elif call is None:
                events = cli.take_events()
            elif op == 6 or op == 7:
                payload = bytes(inp.take(inp.byte()))
                try:
                    if op == 6:
                        cli.send_message(call, payload)
                    else:
                        cli.send_unary(call, payload)
                except core.H2ProtocolError:
                    # documented: sending after this side's half-close
                    assert call in half_closed or cli.closed, "send refused on an open call"
                if op == 7:
                    half_closed.add(call)
                cli.write_pending(call)
                events = cli.take_events()
            elif op == 8:
                cli.close_send(call)
                half_closed.add(call)
                events = cli.take_events()
            elif op == 9:
                cli.cancel_call(call)
                events = cli.take_events()
            elif op == 10:
                if messages:
                    owner, wire_bytes = messages.pop(0)
                    cli.message_consumed(owner, wire_bytes)
                events = cli.take_events()
            else:
                what = inp.byte() % 6
                if what == 0:
                    cli.close_connection(inp.byte() % 14, b"fuzz")
                elif what == 1:
                    events = cli.cancel_all_calls("closing")
                elif what == 2:
                    cli.ping(b"abcdefgh")
                elif what == 3:
                    cli.set_transport_paused(bool(inp.byte() & 1))
                elif what == 4:
                    cli.connection_lost("gone")
                    lost = True
                events = cli.take_events() if what != 1 else events
        except core.H2ProtocolError:
            assert cli.closed, "H2ProtocolError on an open connection"
            events = cli.take_events()
        _wire.check_events(events, ended, known, None, "client")
        for ev in events:
            if ev.kind == core.CE_MESSAGE:
                messages.append((ev.call, ev.value))
        del messages[64:]
        cli.data_to_send()
        cli.next_timer()
        live_calls = sum(1 for c in calls if not c.is_done)
        assert cli._pending_deadlines() <= live_calls + 33, "finished calls kept in the deadline heap"
        if lost:
            assert all(c.is_done for c in calls), "a call outlived connection_lost"
    events = cli.connection_lost("end")
    _wire.check_events(events, ended, known, None, "client")
    assert all(c.is_done for c in calls), [c for c in calls if not c.is_done]
    assert not cli.streams
