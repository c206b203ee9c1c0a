"""The call-behaviour suite: every scenario runs through a client driver
(drivers.py) for each pair of the facade matrix (conftest.py): grpcpy's aio
and sync facades against grpcio's both ways and against each other, with
grpcio<->grpcio per facade as the reference for the expected behaviour."""
import asyncio

import pytest

from .service import ECHO_INITIAL, ECHO_TRAILING, RPC_ERRORS, code_name, run, serving, until

STATUS_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                "UNAUTHENTICATED"]


def test_four_call_types(pair, protos):
    async def scenario():
        async with serving(pair, protos) as h:
            m, drv = h.m, h.drv
            resp = await drv.unary("UnaryCall", m.SimpleRequest(response_size=10, payload=m.Payload(body=b"x" * 5)))
            assert resp.payload.body == b"\0" * 10
            assert await drv.unary("EmptyCall", protos.empty_pb2.Empty()) == protos.empty_pb2.Empty()
            sizes = [1, 0, 100, 3000]
            got = [len(r.payload.body) async for r in drv.server_stream("StreamingOutputCall",
                   m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=s) for s in sizes]))]
            assert got == sizes
            requests = [m.StreamingInputCallRequest(payload=m.Payload(body=b"a" * n)) for n in (27182, 8, 1828, 45904)]
            resp = await drv.client_stream("StreamingInputCall", requests)
            assert resp.aggregated_payload_size == 74922
            call = drv.bidi("FullDuplexCall")
            for size in (31415, 9, 2653, 58979):
                await call.write(m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=size)]))
                assert len((await call.read()).payload.body) == size
            await call.done_writing()
            assert await call.read() is drv.EOF
            assert code_name(await call.code()) == "OK"
            call = drv.bidi("HalfDuplexCall", requests=[m.StreamingOutputCallRequest(
                response_parameters=[m.ResponseParameters(size=s)]) for s in (1, 2, 3)])
            assert [len(r.payload.body) async for r in call] == [1, 2, 3]
    run(scenario())


def test_metadata_with_binary_keys_both_ways(pair, protos):
    async def scenario():
        async with serving(pair, protos) as h:
            md = ((ECHO_INITIAL, "initial-value"), (ECHO_TRAILING, b"\x00\x01\xfe\xff trailing"), ("x-other", "v"))
            call = h.drv.unary_call("UnaryCall", h.m.SimpleRequest(response_size=1), metadata=md)
            await call
            assert (ECHO_INITIAL, "initial-value") in tuple(await call.initial_metadata())
            assert (ECHO_TRAILING, b"\x00\x01\xfe\xff trailing") in tuple(await call.trailing_metadata())
            # (initial metadata is awaited before the call ends: grpcio's aio
            # client reports none when headers and trailers arrive in one read
            # and initial_metadata() is first awaited after that)
            call = h.drv.bidi("FullDuplexCall", metadata=md)
            assert (ECHO_INITIAL, "initial-value") in tuple(await call.initial_metadata())
            await call.done_writing()
            assert (ECHO_TRAILING, b"\x00\x01\xfe\xff trailing") in tuple(await call.trailing_metadata())
    run(scenario())


@pytest.mark.parametrize("number", range(1, 17))
def test_every_status_code_with_awkward_details(pair, protos, number):
    details = "tab\there, newline\nthere, percent %41, non-ASCII: ✓ é 日本語"

    async def scenario():
        async with serving(pair, protos) as h:
            with pytest.raises(RPC_ERRORS) as info:
                await h.drv.unary("UnaryCall", h.m.SimpleRequest(
                    response_status=h.m.EchoStatus(code=number, message=details)))
            assert code_name(info.value.code()) == STATUS_NAMES[number]
            assert info.value.details() == details
            # streaming calls carry the status in trailers after messages
            call = h.drv.server_stream("StreamingOutputCall", h.m.StreamingOutputCallRequest(
                response_parameters=[h.m.ResponseParameters(size=3)],
                response_status=h.m.EchoStatus(code=number, message=details)))
            assert len((await call.read()).payload.body) == 3
            with pytest.raises(RPC_ERRORS) as info:
                await call.read()
            assert code_name(info.value.code()) == STATUS_NAMES[number]
            assert info.value.details() == details
    run(scenario())


def test_deadline_seen_by_both_sides(pair, protos):
    async def scenario():
        async with serving(pair, protos) as h:
            observed = h.service.observed
            with pytest.raises(RPC_ERRORS) as info:
                await h.drv.unary("UnaryCall", h.m.SimpleRequest(), timeout=0.3, metadata=(("x-sleep", "5"),))
            assert code_name(info.value.code()) == "DEADLINE_EXCEEDED"
            ended = (("UnaryCall", "done"), ("UnaryCall", "cancelled"))
            await until(lambda: ("UnaryCall", "interrupted") in observed and any(o in observed for o in ended))
            remaining = [o[2] for o in observed if o[1] == "time_remaining"]
            assert remaining and 0 < remaining[0] <= 0.35
            # the handler is interrupted and the call's end is seen. (Whether
            # the server then says cancelled depends on which arrives first:
            # the server's own deadline, or the client's RST_STREAM sent at the
            # same instant; both implementations may report either.)
            assert ("UnaryCall", "interrupted") in observed
            assert any(o in observed for o in ended)
    run(scenario())


def test_client_cancel_seen_by_server_handler(pair, protos):
    async def scenario():
        async with serving(pair, protos) as h:
            drv, observed = h.drv, h.service.observed
            # a handler busy in the server is interrupted by the client's cancel
            unary = drv.unary_call("UnaryCall", h.m.SimpleRequest(), metadata=(("x-sleep", "5"),))
            await until(lambda: any(o[1] == "time_remaining" for o in observed), 2)
            assert unary.cancel()
            await drv.expect_cancelled(unary)
            assert unary.cancelled()
            assert code_name(await unary.code()) == "CANCELLED"
            await until(lambda: ("UnaryCall", "interrupted") in observed, 2)
            assert ("UnaryCall", "interrupted") in observed
            # a streaming call: cancelled on the client, further reads fail
            call = drv.bidi("FullDuplexCall")
            await call.write(h.m.StreamingOutputCallRequest(response_parameters=[h.m.ResponseParameters(size=1)]))
            await call.read()
            assert call.cancel()
            assert call.cancelled()
            assert not call.cancel()
            await drv.expect_cancelled(call)
            # the channel is still usable
            assert (await drv.unary("UnaryCall", h.m.SimpleRequest(response_size=2))).payload.body == b"\0\0"
    run(scenario())


@pytest.mark.parametrize("size", [0, 1 << 20])
def test_message_sizes_accepted(pair, protos, size):
    async def scenario():
        async with serving(pair, protos) as h:
            resp = await h.drv.unary("UnaryCall", h.m.SimpleRequest(response_size=size,
                                                                    payload=h.m.Payload(body=b"q" * size)))
            assert len(resp.payload.body) == size
    run(scenario())


def test_over_4mib_is_resource_exhausted_both_directions(pair, protos):
    big = 4 * 1024 * 1024 + 1

    async def scenario():
        async with serving(pair, protos) as h:
            # request too large for the server's default 4 MiB receive limit
            with pytest.raises(RPC_ERRORS) as info:
                await h.drv.unary("UnaryCall", h.m.SimpleRequest(payload=h.m.Payload(body=b"q" * big)))
            assert code_name(info.value.code()) == "RESOURCE_EXHAUSTED"
            # response too large for the client's default limit
            with pytest.raises(RPC_ERRORS) as info:
                await h.drv.unary("UnaryCall", h.m.SimpleRequest(response_size=big))
            assert code_name(info.value.code()) == "RESOURCE_EXHAUSTED"
            # the channel still works
            assert (await h.drv.unary("UnaryCall", h.m.SimpleRequest(response_size=7))).payload.body == b"\0" * 7
    run(scenario())


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compression_both_ways(pair, protos, algorithm):
    async def scenario():
        async with serving(pair, protos, server_compression=algorithm, channel_compression=algorithm) as h:
            body = b"compress me " * 5000
            resp = await h.drv.unary("UnaryCall", h.m.SimpleRequest(response_size=len(body),
                                                                    payload=h.m.Payload(body=body)))
            assert len(resp.payload.body) == len(body)
            call = h.drv.bidi("FullDuplexCall")
            for _ in range(3):
                await call.write(h.m.StreamingOutputCallRequest(
                    response_parameters=[h.m.ResponseParameters(size=20000)], payload=h.m.Payload(body=body)))
                assert len((await call.read()).payload.body) == 20000
            await call.done_writing()
            assert code_name(await call.code()) == "OK"
    run(scenario())


def test_thousand_concurrent_calls_on_one_channel(pair, protos):
    async def scenario():
        async with serving(pair, protos) as h:
            calls = [h.drv.unary_call("UnaryCall", h.m.SimpleRequest(response_size=i % 50)) for i in range(1000)]
            results = await asyncio.gather(*calls)
            assert [len(r.payload.body) for r in results] == [i % 50 for i in range(1000)]
    run(scenario())


def test_unknown_method_and_service(pair, protos):
    async def scenario():
        async with serving(pair, protos) as h:
            with pytest.raises(RPC_ERRORS) as info:
                await h.drv.unary("UnimplementedCall", protos.empty_pb2.Empty())
            assert code_name(info.value.code()) == "UNIMPLEMENTED"
            with pytest.raises(RPC_ERRORS) as info:
                await h.drv.raw_unary("/grpc.testing.UnimplementedService/UnimplementedCall", b"")
            assert code_name(info.value.code()) == "UNIMPLEMENTED"
    run(scenario())


def test_server_stop_with_grace_lets_calls_finish(pair, protos):
    async def scenario():
        async with serving(pair, protos) as h:
            calls = [h.drv.unary_call("UnaryCall", h.m.SimpleRequest(response_size=3), metadata=(("x-sleep", "0.4"),))
                     for _ in range(5)]
            # every call is in its handler before the stop begins (a call not
            # yet connected would meet a closed listener: a different test)
            assert await until(lambda: sum(o[1] == "time_remaining" for o in h.service.observed) == 5)
            stopping = asyncio.ensure_future(h.server.stop(3))
            results = await asyncio.gather(*calls)
            assert [len(r.payload.body) for r in results] == [3] * 5
            await stopping
    run(scenario())
