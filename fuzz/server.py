"""ServerConnection: the input is a program of steps - wire bytes (raw or
frames it builds) in random-sized chunks, time passing (handle_timeout), the
application's actions on the calls it was given (accept, metadata, messages,
status, cancel, consume) and connection actions (GOAWAY, shutdown, loss).

Invariants: only documented exceptions; events in order per call (nothing
after CE_CALL_ENDED, which comes once); a finished call leaves no deadline
entry behind beyond the bounded slack; the stream table stays within the
advertised limit; after connection_lost every call has ended."""
from fuzz import _wire
from fuzz._support import Input, core

MAX_STREAMS = 8


def _sids(inp, srv):
    last = srv.last_peer_stream_id
    return [1, 3, 5, last, last + 2, last + 4, 2, 0]


def one_input(data):
    inp = Input(data)
    cfg = core.H2Config(max_concurrent_streams=MAX_STREAMS, bdp_probing=bool(inp.byte() & 1),
                        initial_window_size=(65535, 1024, 1 << 20)[inp.byte() % 3],
                        max_header_list_size=(16384, 512)[inp.byte() % 2],
                        max_frame_size=16384, settings_timeout=5.0)
    srv = core.ServerConnection(cfg, max_receive_message_length=(4 << 20, 64, 0)[inp.byte() % 3],
                                max_send_message_length=(-1, 16)[inp.byte() % 2],
                                compression=(None, "gzip", "deflate")[inp.byte() % 3])
    now = 0.0
    srv.initiate(now)
    enc = core.Encoder()
    calls = []
    ended = set()
    known = set()
    messages = []
    app_codes = set()
    lost = False
    if not inp.byte() & 0x80:
        events = srv.receive_data(_wire.PREFACE + _wire.frame(4, 0, 0, b""), now)
        _wire.check_events(events, ended, known, core.CE_CALL_STARTED, "server", app_codes)
    steps = 0
    while len(inp) and steps < 200:
        steps += 1
        op = inp.byte() % 16
        pick = inp.byte() if op >= 6 else 0
        live = [c for c in calls if not c.is_done]
        call = live[pick % len(live)] if live and op >= 6 else None
        try:
            if op <= 3:
                wire = _wire.build_frame(inp, enc, _sids(inp, srv), _wire.REQUEST)
                events = []
                for chunk in inp.chunks(wire):
                    events += srv.receive_data(chunk, now)
            elif op == 4:
                events = srv.receive_data(inp.take(1 + inp.byte()), now)
            elif op == 5:
                now += inp.byte() * (0.01, 1.0, 3600.0)[inp.byte() % 3]
                events = srv.handle_timeout(now)
            elif call is None:
                events = srv.take_events()
            elif op == 6:
                rs = (None, False, True)[inp.byte() % 3]
                ws = (None, False, True)[inp.byte() % 3]
                srv.accept_call(call, None, rs, ws)
                events = srv.take_events()
            elif op == 7:
                srv.send_initial_metadata(call, [("x-m", "v")] if inp.byte() & 1 else None)
                events = srv.take_events()
            elif op == 8:
                try:
                    srv.send_message(call, bytes(inp.take(inp.byte())) * (1 + inp.byte()))
                except ValueError:
                    pass             # a second message on a unary response
                srv.write_pending(call)
                events = srv.take_events()
            elif op == 9:
                code = inp.byte() % 18          # 17: a code of the application's own
                app_codes.add(code)
                srv.send_status(call, code, ("", "done", "caf\u00e9 %")[inp.byte() % 3],
                                [("x-t", "1")] if inp.byte() & 1 else None)
                events = srv.take_events()
            elif op == 10:
                if inp.byte() & 1:
                    srv.cancel_call(call)
                else:
                    srv.cancel_by_application(call)
                events = srv.take_events()
            elif op == 11:
                if messages:
                    owner, wire_bytes = messages.pop(0)
                    srv.message_consumed(owner, wire_bytes)
                events = srv.take_events()
            elif op == 12:
                srv.set_compression(call, (None, "identity", "gzip")[inp.byte() % 3])
                events = srv.take_events()
            else:
                what = inp.byte() % 8
                if what == 0:
                    srv.close_connection(inp.byte() % 14, b"fuzz")
                elif what == 1:
                    srv.start_graceful_shutdown()
                elif what == 2:
                    srv.ping(b"12345678")
                elif what == 3:
                    srv.update_settings({4: inp.u16(), 6: inp.u16()}, now)   # INITIAL_WINDOW_SIZE, MAX_HEADER_LIST_SIZE
                elif what == 4:
                    srv.set_transport_paused(bool(inp.byte() & 1))
                elif what == 5:
                    srv.cancel_all_calls("stop")
                    lost = True
                elif what == 6:
                    srv.connection_lost("gone")
                    lost = True
                events = srv.take_events()
        except core.H2ProtocolError:
            # documented for actions on a connection that is closed
            assert srv.closed, "H2ProtocolError on an open connection"
            events = srv.take_events()
        _wire.check_events(events, ended, known, core.CE_CALL_STARTED, "server", app_codes)
        for ev in events:
            if ev.kind == core.CE_CALL_STARTED:
                calls.append(ev.call)
            elif ev.kind == core.CE_MESSAGE:
                messages.append((ev.call, ev.value))
        del messages[64:]
        srv.data_to_send()
        srv.next_timer()
        assert len(srv.streams) <= MAX_STREAMS
        live_calls = sum(1 for c in calls if not c.is_done)
        assert srv._pending_deadlines() <= live_calls + 33, "finished calls kept in the deadline heap"
        if lost:
            assert all(c.is_done for c in calls), "a call outlived connection_lost"
    events = srv.connection_lost("end")
    _wire.check_events(events, ended, known, core.CE_CALL_STARTED, "server", app_codes)
    assert all(c.is_done for c in calls)
    assert not srv.streams
