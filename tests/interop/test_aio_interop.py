"""asyncio interop: grpcpy.aio against grpc.aio in both directions, every
test also run grpcio<->grpcio as the reference for the expected behaviour."""
import asyncio

import pytest

from .service import ECHO_INITIAL, ECHO_TRAILING, RPC_ERRORS, code_name, run, serving

STATUS_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                "UNAUTHENTICATED"]


def test_four_call_types(pair, protos):
    async def scenario():
        async with serving(pair, protos) as h:
            m = h.m
            resp = await h.stub.UnaryCall(m.SimpleRequest(response_size=10, payload=m.Payload(body=b"x" * 5)))
            assert resp.payload.body == b"\0" * 10
            assert await h.stub.EmptyCall(protos.empty_pb2.Empty()) == protos.empty_pb2.Empty()
            sizes = [1, 0, 100, 3000]
            got = [len(r.payload.body) async for r in h.stub.StreamingOutputCall(
                m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=s) for s in sizes]))]
            assert got == sizes
            requests = [m.StreamingInputCallRequest(payload=m.Payload(body=b"a" * n)) for n in (27182, 8, 1828, 45904)]
            resp = await h.stub.StreamingInputCall(iter(requests))
            assert resp.aggregated_payload_size == 74922
            call = h.stub.FullDuplexCall()
            for size in (31415, 9, 2653, 58979):
                await call.write(m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=size)]))
                assert len((await call.read()).payload.body) == size
            await call.done_writing()
            assert await call.read() is h.caio.EOF
            assert code_name(await call.code()) == "OK"
            call = h.stub.HalfDuplexCall(iter([m.StreamingOutputCallRequest(
                response_parameters=[m.ResponseParameters(size=s)]) for s in (1, 2, 3)]))
            assert [len(r.payload.body) async for r in call] == [1, 2, 3]
    run(scenario())


def test_metadata_with_binary_keys_both_ways(pair, protos):
    async def scenario():
        async with serving(pair, protos) as h:
            md = ((ECHO_INITIAL, "initial-value"), (ECHO_TRAILING, b"\x00\x01\xfe\xff trailing"), ("x-other", "v"))
            call = h.stub.UnaryCall(h.m.SimpleRequest(response_size=1), metadata=md)
            await call
            assert (ECHO_INITIAL, "initial-value") in tuple(await call.initial_metadata())
            assert (ECHO_TRAILING, b"\x00\x01\xfe\xff trailing") in tuple(await call.trailing_metadata())
            # (initial metadata is awaited before the call ends: grpcio's client
            # reports none when headers and trailers arrive in one read and
            # initial_metadata() is first awaited after that)
            call = h.stub.FullDuplexCall(metadata=md)
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
                await h.stub.UnaryCall(h.m.SimpleRequest(response_status=h.m.EchoStatus(code=number, message=details)))
            assert code_name(info.value.code()) == STATUS_NAMES[number]
            assert info.value.details() == details
            # streaming calls carry the status in trailers after messages
            call = h.stub.StreamingOutputCall(h.m.StreamingOutputCallRequest(
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
        service = None
        async with serving(pair, protos) as h:
            service = h.service
            with pytest.raises(RPC_ERRORS) as info:
                await h.stub.UnaryCall(h.m.SimpleRequest(), timeout=0.3, metadata=(("x-sleep", "5"),))
            assert code_name(info.value.code()) == "DEADLINE_EXCEEDED"
            await asyncio.wait_for(service.done.wait(), 5)
            remaining = [o[2] for o in service.observed if o[1] == "time_remaining"]
            assert remaining and 0 < remaining[0] <= 0.35
            # the handler is interrupted and its done callback runs. (Whether
            # the context then says cancelled() depends on which arrives first:
            # the server's own deadline, or the client's RST_STREAM sent at the
            # same instant; both implementations may report either.)
            assert ("UnaryCall", "interrupted") in service.observed
            assert any(o in service.observed for o in (("UnaryCall", "done"), ("UnaryCall", "cancelled")))
    run(scenario())


def test_client_cancel_seen_by_server_handler(pair, protos):
    async def scenario():
        async with serving(pair, protos) as h:
            # a handler busy in the server is interrupted by the client's cancel
            unary = h.stub.UnaryCall(h.m.SimpleRequest(), metadata=(("x-sleep", "5"),))
            for _ in range(200):
                if any(o[1] == "time_remaining" for o in h.service.observed):
                    break
                await asyncio.sleep(0.01)
            assert unary.cancel()
            with pytest.raises(asyncio.CancelledError):
                await unary
            assert unary.cancelled()
            assert code_name(await unary.code()) == "CANCELLED"
            for _ in range(200):
                if ("UnaryCall", "interrupted") in h.service.observed:
                    break
                await asyncio.sleep(0.01)
            assert ("UnaryCall", "interrupted") in h.service.observed
            # a streaming call: cancelled on the client, further reads raise
            call = h.stub.FullDuplexCall()
            await call.write(h.m.StreamingOutputCallRequest(response_parameters=[h.m.ResponseParameters(size=1)]))
            await call.read()
            assert call.cancel()
            assert call.cancelled()
            assert not call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call.read()
            # the channel is still usable
            assert (await h.stub.UnaryCall(h.m.SimpleRequest(response_size=2))).payload.body == b"\0\0"
    run(scenario())


@pytest.mark.parametrize("size", [0, 1 << 20])
def test_message_sizes_accepted(pair, protos, size):
    async def scenario():
        async with serving(pair, protos) as h:
            resp = await h.stub.UnaryCall(h.m.SimpleRequest(response_size=size, payload=h.m.Payload(body=b"q" * size)))
            assert len(resp.payload.body) == size
    run(scenario())


def test_over_4mib_is_resource_exhausted_both_directions(pair, protos):
    big = 4 * 1024 * 1024 + 1

    async def scenario():
        async with serving(pair, protos) as h:
            # request too large for the server's default 4 MiB receive limit
            with pytest.raises(RPC_ERRORS) as info:
                await h.stub.UnaryCall(h.m.SimpleRequest(payload=h.m.Payload(body=b"q" * big)))
            assert code_name(info.value.code()) == "RESOURCE_EXHAUSTED"
            # response too large for the client's default limit
            with pytest.raises(RPC_ERRORS) as info:
                await h.stub.UnaryCall(h.m.SimpleRequest(response_size=big))
            assert code_name(info.value.code()) == "RESOURCE_EXHAUSTED"
            # the channel still works
            assert (await h.stub.UnaryCall(h.m.SimpleRequest(response_size=7))).payload.body == b"\0" * 7
    run(scenario())


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compression_both_ways(pair, protos, algorithm):
    async def scenario():
        async with serving(pair, protos, server_compression=algorithm, channel_compression=algorithm) as h:
            body = b"compress me " * 5000
            resp = await h.stub.UnaryCall(h.m.SimpleRequest(response_size=len(body), payload=h.m.Payload(body=body)))
            assert len(resp.payload.body) == len(body)
            call = h.stub.FullDuplexCall()
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
            calls = [h.stub.UnaryCall(h.m.SimpleRequest(response_size=i % 50)) for i in range(1000)]
            results = await asyncio.gather(*calls)
            assert [len(r.payload.body) for r in results] == [i % 50 for i in range(1000)]
    run(scenario())


def test_unknown_method_and_service(pair, protos):
    async def scenario():
        async with serving(pair, protos) as h:
            with pytest.raises(RPC_ERRORS) as info:
                await h.stub.UnimplementedCall(protos.empty_pb2.Empty())
            assert code_name(info.value.code()) == "UNIMPLEMENTED"
            other = h.channel.unary_unary("/grpc.testing.UnimplementedService/UnimplementedCall")
            with pytest.raises(RPC_ERRORS) as info:
                await other(b"")
            assert code_name(info.value.code()) == "UNIMPLEMENTED"
    run(scenario())


def test_server_stop_with_grace_lets_calls_finish(pair, protos):
    async def scenario():
        async with serving(pair, protos) as h:
            calls = [h.stub.UnaryCall(h.m.SimpleRequest(response_size=3), metadata=(("x-sleep", "0.4"),))
                     for _ in range(5)]
            await asyncio.sleep(0.15)     # the calls are in the handlers now
            stopping = asyncio.ensure_future(h.server.stop(3))
            results = await asyncio.gather(*calls)
            assert [len(r.payload.body) for r in results] == [3] * 5
            await stopping
    run(scenario())
