"""gRPC calls through two sans-IO cores joined in memory (client <-> server)."""
import random

import pytest

from grpcpy import _cext as c

from .pair import EchoServer, Pair, ended, events_for


def kinds(events, call):
    return [e.kind for e in events_for(events, call)]


def messages(events, call):
    return [e.data for e in events_for(events, call, c.CE_MESSAGE)]


def test_unary_metadata_and_status():
    p = Pair()
    app = EchoServer(p)
    call = p.client.start_call("/pkg.Svc/Echo", p.now, -1,
                               [("x-echo-a", "1"), ("x-echo-b-bin", b"\x00\x01\xfe\xff"), ("other", "v")])
    p.client.send_unary(call, b"hello")
    p.pump()
    app.serve()
    events = p.take_client()
    assert kinds(events, call) == [c.CE_INITIAL_METADATA, c.CE_MESSAGE, c.CE_CALL_ENDED]
    assert messages(events, call) == [b"hello"]
    end = ended(events, call)
    assert (end.code, end.details) == (c.SC_OK, "")
    assert end.metadata == (("x-echo-a", "1"), ("x-echo-b-bin", b"\x00\x01\xfe\xff"))
    [scall] = app.calls
    assert scall.method == "/pkg.Svc/Echo"
    assert ("other", "v") in scall.metadata
    assert scall.metadata[0][0] == "user-agent" and scall.metadata[0][1].startswith("grpc-python-grpcpy/")
    assert not p.client.streams and not p.server.streams


def test_server_streaming_client_streaming_bidi():
    p = Pair()
    srv = p.server
    # server streaming: one request, many responses
    call = p.client.start_call("/pkg.Svc/ServerStream", p.now)
    p.client.send_unary(call, b"n=50")
    p.pump()
    [started] = [e for e in p.server_events if e.kind == c.CE_CALL_STARTED]
    scall = started.call
    for i in range(50):
        srv.send_message(scall, b"r%d" % i)
    srv.send_status(scall, c.SC_OK)
    p.pump()
    ev = p.take_client()
    assert messages(ev, call) == [b"r%d" % i for i in range(50)]
    assert ended(ev, call).code == c.SC_OK
    p.take_server()

    # client streaming: many requests, one response after half-close
    call = p.client.start_call("/pkg.Svc/ClientStream", p.now)
    for i in range(50):
        p.client.send_message(call, b"q%d" % i)
    p.client.close_send(call)
    p.pump()
    sev = p.take_server()
    scall = sev[0].call
    assert [e.data for e in sev if e.kind == c.CE_MESSAGE] == [b"q%d" % i for i in range(50)]
    assert sev[-1].kind == c.CE_HALF_CLOSED
    srv.send_message(scall, b"total")
    srv.send_status(scall, c.SC_OK)
    p.pump()
    ev = p.take_client()
    assert messages(ev, call) == [b"total"] and ended(ev, call).code == c.SC_OK

    # bidi: ping-pong, one message at a time
    app = EchoServer(p)
    call = p.client.start_call("/pkg.Svc/Bidi", p.now)
    for i in range(20):
        p.client.send_message(call, b"ping%d" % i)
        p.pump()
        app.serve()
        assert messages(p.take_client(), call) == [b"ping%d" % i]
    p.client.close_send(call)
    p.pump()
    app.serve()
    assert ended(p.take_client(), call).code == c.SC_OK


def test_hundreds_of_interleaved_calls():
    p = Pair()
    app = EchoServer(p)
    rng = random.Random(5)
    calls = []
    for i in range(300):
        call = p.client.start_call("/pkg.Svc/Bidi", p.now)
        calls.append((call, [b"%d-%d" % (i, k) for k in range(rng.randint(0, 4))]))
    # interleave: one message of a random call at a time
    pending = {id(call): list(msgs) for call, msgs in calls}
    order = [call for call, msgs in calls for _ in msgs]
    rng.shuffle(order)
    for call in order:
        p.client.send_message(call, pending[id(call)].pop(0))
        if rng.random() < 0.1:
            p.pump()
            app.serve()
    for call, _ in calls:
        p.client.close_send(call)
    p.pump()
    app.serve()
    events = p.take_client()
    for call, msgs in calls:
        assert messages(events, call) == msgs
        assert ended(events, call).code == c.SC_OK
    assert len(app.calls) == 300
    assert not p.client.streams and not p.server.streams


def test_slow_consumer_gets_backpressure_not_buffering():
    """The server streams 8 MiB to a client that does not consume: what the
    client core holds stays within two windows (one delivered and unconsumed,
    one credited before the reader fell behind), the rest waits in the
    server's queue; once the client consumes, everything arrives."""
    p = Pair(client_config=c.H2Config(bdp_probing=False))
    call = p.client.start_call("/pkg.Svc/Download", p.now)
    p.client.send_unary(call, b"")
    p.pump()
    scall = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED][0].call
    chunk = b"z" * 16000
    for _ in range(512):
        p.server.send_message(scall, chunk)
    p.server.send_status(scall, c.SC_OK)
    p.pump()
    delivered = [e for e in p.take_client() if e.kind == c.CE_MESSAGE]
    held = sum(e.value for e in delivered)
    window = p.client.local_initial_window_size
    assert 0 < held <= 2 * window + 2 * (len(chunk) + 5)
    assert p.server.streams[scall.stream_id].pending_bytes > 7_000_000
    total = len(delivered)
    for _ in range(2000):
        for e in delivered:
            p.client.message_consumed(call, e.value)
        p.pump()
        evs = p.take_client()
        delivered = [e for e in evs if e.kind == c.CE_MESSAGE]
        total += len(delivered)
        if any(e.kind == c.CE_CALL_ENDED for e in evs):
            break
    assert total == 512
    assert call.is_done and call.code == c.SC_OK


def test_large_messages_grow_the_window_by_bdp():
    p = Pair()
    start = p.client.local_initial_window_size
    call = p.client.start_call("/pkg.Svc/Big", p.now)
    p.client.send_unary(call, b"")
    p.pump()
    scall = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED][0].call
    for _ in range(8):
        p.server.send_message(scall, b"b" * (3 << 20))
        p.pump()
        for e in p.take_client():
            if e.kind == c.CE_MESSAGE:
                p.client.message_consumed(call, e.value)
        p.now += 0.001
    assert p.client.local_initial_window_size > start


def test_client_deadline():
    p = Pair()
    call = p.client.start_call("/pkg.Svc/Slow", p.now, 2.5)
    p.client.send_unary(call, b"x")
    p.pump()
    scall = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED][0].call
    assert scall.deadline == pytest.approx(2.5, abs=1e-3)
    assert p.client.next_timer() == pytest.approx(2.5)
    p.advance(2.0)
    assert not call.is_done
    p.advance(0.6)
    end = ended(p.take_client(), call)
    assert end.code == c.SC_DEADLINE_EXCEEDED
    assert ended(p.take_server(), scall).code in (c.SC_CANCELLED, c.SC_DEADLINE_EXCEEDED)


def test_server_enforces_grpc_timeout():
    p = Pair()
    call = p.client.start_call("/pkg.Svc/Slow", p.now, 1.0)
    p.client.send_unary(call, b"x")
    p.pump()
    scall = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED][0].call
    # only the server's clock moves: its own deadline fires first
    p.now = 1.5
    p.server_events += p.server.handle_timeout(p.now)
    p.pump()
    assert ended(p.take_server(), scall).code == c.SC_DEADLINE_EXCEEDED
    assert ended(p.take_client(), call).code == c.SC_DEADLINE_EXCEEDED


def test_cancellation_both_ways():
    p = Pair()
    call = p.client.start_call("/pkg.Svc/Bidi", p.now)
    p.client.send_message(call, b"a")
    p.pump()
    scall = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED][0].call
    p.client.cancel_call(call)
    p.pump()
    assert ended(p.take_client(), call).code == c.SC_CANCELLED
    assert ended(p.take_server(), scall).code == c.SC_CANCELLED

    call = p.client.start_call("/pkg.Svc/Bidi", p.now)
    p.client.send_message(call, b"a")
    p.pump()
    scall = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED][0].call
    p.server.cancel_call(scall)
    p.pump()
    assert ended(p.take_client(), call).code == c.SC_CANCELLED
    # the connection is still good
    app = EchoServer(p)
    again = p.client.start_call("/pkg.Svc/Echo", p.now)
    p.client.send_unary(again, b"ok")
    p.pump()
    app.serve()
    assert ended(p.take_client(), again).code == c.SC_OK


def test_goaway_drain_completes_calls_in_flight():
    p = Pair()
    app = EchoServer(p)
    inflight = [p.client.start_call("/pkg.Svc/Bidi", p.now) for _ in range(5)]
    for call in inflight:
        p.client.send_message(call, b"before")
    p.pump()
    app.serve()
    p.server.start_graceful_shutdown()
    p.pump()
    late = p.client.start_call("/pkg.Svc/Echo", p.now)
    assert late.is_done and late.code == c.SC_UNAVAILABLE
    for call in inflight:
        p.client.send_message(call, b"after")
        p.client.close_send(call)
    p.pump()
    app.serve()
    events = p.take_client()
    for call in inflight:
        assert messages(events, call) == [b"before", b"after"]
        assert ended(events, call).code == c.SC_OK
    assert p.server.goaway_sent_last_id == max(call.stream_id for call in inflight)


@pytest.mark.parametrize("code", list(range(17)))
def test_every_status_and_details_survive(code):
    p = Pair()
    call = p.client.start_call("/pkg.Svc/Fail", p.now)
    p.client.send_unary(call, b"")
    p.pump()
    scall = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED][0].call
    details = "tab\tnewline\n percent% unicode ✓ é 日本"
    p.server.send_status(scall, code, details, [("why-bin", b"\xff\x00")])
    p.pump()
    end = ended(p.take_client(), call)
    assert (end.code, end.details) == (code, details)
    assert end.metadata == (("why-bin", b"\xff\x00"),)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compression_both_ways(encoding):
    p = Pair(server_kw={"compression": encoding})
    app = EchoServer(p)
    call = p.client.start_call("/pkg.Svc/Echo", p.now, compression=encoding)
    body = b"compressible " * 1000
    p.client.send_unary(call, body)
    before = p.wire_c2s
    p.pump()
    assert p.wire_c2s - before < len(body) // 5
    app.serve()
    events = p.take_client()
    assert messages(events, call) == [body]
    assert ended(events, call).code == c.SC_OK
    assert call.recv_encoding == encoding


def test_message_limits_are_resource_exhausted():
    p = Pair(server_kw={"max_receive_message_length": 1000},
             client_kw={"max_receive_message_length": 2000})
    call = p.client.start_call("/pkg.Svc/Echo", p.now)
    p.client.send_unary(call, b"x" * 1001)
    p.pump()
    end = ended(p.take_client(), call)
    assert end.code == c.SC_RESOURCE_EXHAUSTED
    p.take_server()
    # the response direction
    call = p.client.start_call("/pkg.Svc/Echo", p.now)
    p.client.send_unary(call, b"ok")
    p.pump()
    scall = [e for e in p.take_server() if e.kind == c.CE_CALL_STARTED][0].call
    p.server.send_message(scall, b"y" * 2001)
    p.server.send_status(scall, 0)
    p.pump()
    assert ended(p.take_client(), call).code == c.SC_RESOURCE_EXHAUSTED
    # a compressed bomb is stopped by the same limit after inflating
    p2 = Pair(server_kw={"max_receive_message_length": 4096})
    call = p2.client.start_call("/pkg.Svc/Echo", p2.now, compression="gzip")
    p2.client.send_unary(call, b"\x00" * (1 << 20))
    p2.pump()
    assert ended(p2.take_client(), call).code == c.SC_RESOURCE_EXHAUSTED


def test_max_concurrent_streams_queues_calls():
    p = Pair(server_config=c.H2Config(max_concurrent_streams=2))
    app = EchoServer(p)
    calls = [p.client.start_call("/pkg.Svc/Echo", p.now) for _ in range(6)]
    for call in calls:
        p.client.send_unary(call, b"q")
    p.pump()
    assert p.client.local_open == 2
    for _ in range(4):
        app.serve()
    events = p.take_client()
    assert all(ended(events, call).code == c.SC_OK for call in calls)


def test_metadata_rules():
    p = Pair()
    for bad in ([("Upper", "v")], [("k", "bad\nvalue")], [("", "v")]):
        with pytest.raises(c.MetadataError):
            c.encode_metadata(bad)
        # start_call does not raise: the call ends INTERNAL (test_call_rules.py)
        assert p.client.start_call("/pkg.Svc/Echo", p.now, -1, bad).code == c.SC_INTERNAL
    # the protocol's own headers are dropped (as grpcio drops them); other
    # "grpc-" keys are the application's; None is sent empty
    assert c.encode_metadata([("te", "x"), ("grpc-status", "0"), ("content-type", "y"), ("k", "v")]) == [(b"k", b"v")]
    assert c.encode_metadata([("grpc-foo", "x"), ("k", None)]) == [(b"grpc-foo", b"x"), (b"k", b"")]
    # -bin values: unpadded base64 on the wire, both paddings and comma-joined values accepted
    assert c.encode_metadata([("a-bin", b"\x01")]) == [(b"a-bin", b"AQ")]
    assert c.decode_metadata([(b"a-bin", b"AQ==,AQ"), (b"b", b"x")]) == (("a-bin", b"\x01"), ("a-bin", b"\x01"), ("b", "x"))


@pytest.mark.parametrize("seconds,wire", [
    (1.0, b"1000000u"), (0.5, b"500000u"), (120.0, b"120000m"), (1e-9, b"1n"),
    (100000.0, b"100000S"), (10 ** 9, b"16666667M"), (10 ** 12, b"99999999H"),
])
def test_timeout_encoding(seconds, wire):
    assert c.encode_timeout(seconds) == wire
    assert c.parse_timeout(wire) >= min(seconds, 99999999 * 3600.0) - 1e-9


@pytest.mark.parametrize("wire,seconds", [
    (b"1H", 3600.0), (b"2M", 120.0), (b"3S", 3.0), (b"4m", 0.004), (b"5u", 5e-6), (b"6n", 6e-9),
    (b"", -1.0), (b"S", -1.0), (b"123456789S", -1.0), (b"1x", -1.0), (b"-1S", -1.0), (b"1.5S", -1.0),
])
def test_timeout_parsing(wire, seconds):
    assert c.parse_timeout(wire) == pytest.approx(seconds)


def test_percent_coding_never_fails():
    for raw in (b"%", b"%4", b"%zz", b"%E2%9C", b"abc%41%", b"\xff\xfe"):
        assert isinstance(c.percent_decode(raw), str)
    assert c.percent_decode(b"%41%E2%9C%93") == "A✓"
    assert c.percent_encode("a%b\t") == b"a%25b%09"
