"""Client and server interceptors written for grpc.aio, run unchanged on
grpcpy.aio (and on grpc.aio as the reference): the asyncio facades only
(`aio_pair`), on both loop kinds."""
import grpc
import grpc.aio
import pytest

from .drivers import facade_modules
from .service import ECHO_INITIAL, RPC_ERRORS, code_name, make_service, run, serving


class AddMetadata(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, key, value, log):
        self.key, self.value, self.log = key, value, log

    def _details(self, details):
        metadata = list(details.metadata or ())
        metadata.append((self.key, self.value))
        return details._replace(metadata=tuple(metadata))

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        self.log.append(("enter", self.value))
        call = await continuation(self._details(client_call_details), request)
        self.log.append(("exit", self.value))
        return call

    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        self.log.append(("stream", self.value))
        return await continuation(self._details(client_call_details), request_iterator)


class ShortCircuit(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, response):
        self.response = response

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return self.response


class CountResponses(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self):
        self.seen = 0

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        call = await continuation(client_call_details, request)

        async def counted():
            async for response in call:
                self.seen += 1
                yield response
        return counted()


class RequireToken(grpc.aio.ServerInterceptor):
    def __init__(self, deny):
        self.deny = deny

    async def intercept_service(self, continuation, handler_call_details):
        if ("x-token", "secret") in tuple(handler_call_details.invocation_metadata):
            return await continuation(handler_call_details)
        return self.deny


def _channel(h, pair, interceptors):
    caio, _ = facade_modules(pair.client)
    return caio.insecure_channel("127.0.0.1:%d" % h.port, interceptors=interceptors)


def test_client_interceptors_change_metadata_in_order(aio_pair, protos):
    async def scenario():
        async with serving(aio_pair, protos) as h:
            log = []
            chan = _channel(h, aio_pair, [AddMetadata(ECHO_INITIAL, "outer", log), AddMetadata("x-other", "inner", log)])
            stub = protos.test_pb2_grpc.TestServiceStub(chan)
            call = stub.UnaryCall(h.m.SimpleRequest(response_size=4))
            assert (ECHO_INITIAL, "outer") in tuple(await call.initial_metadata())
            assert len((await call).payload.body) == 4
            assert log == [("enter", "outer"), ("enter", "inner"), ("exit", "inner"), ("exit", "outer")]
            assert code_name(await call.code()) == "OK"
            # bidi through the interceptors (grpcio's intercepted bidi call
            # starts the RPC at the first write)
            bidi = stub.FullDuplexCall()
            await bidi.write(h.m.StreamingOutputCallRequest(response_parameters=[h.m.ResponseParameters(size=3)]))
            assert len((await bidi.read()).payload.body) == 3
            # an interceptor class implementing two kinds serves only the
            # first (unary-unary), as grpc.aio assigns them
            assert not any(entry[0] == "stream" for entry in log)
            await bidi.done_writing()
            assert code_name(await bidi.code()) == "OK"
            await chan.close()
    run(scenario())


class StreamOnly(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, log):
        self.log = log

    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        self.log.append("stream")
        return await continuation(client_call_details, request_iterator)


def test_stream_stream_interceptor(aio_pair, protos):
    async def scenario():
        async with serving(aio_pair, protos) as h:
            log = []
            chan = _channel(h, aio_pair, [StreamOnly(log)])
            stub = protos.test_pb2_grpc.TestServiceStub(chan)
            bidi = stub.FullDuplexCall()
            for size in (5, 6):
                await bidi.write(h.m.StreamingOutputCallRequest(response_parameters=[h.m.ResponseParameters(size=size)]))
                assert len((await bidi.read()).payload.body) == size
            await bidi.done_writing()
            assert code_name(await bidi.code()) == "OK"
            assert log == ["stream"]
            await chan.close()
    run(scenario())


def test_client_interceptor_may_answer_without_rpc(aio_pair, protos):
    async def scenario():
        async with serving(aio_pair, protos) as h:
            canned = h.m.SimpleResponse(username="from-interceptor")
            chan = _channel(h, aio_pair, [ShortCircuit(canned)])
            stub = protos.test_pb2_grpc.TestServiceStub(chan)
            assert (await stub.UnaryCall(h.m.SimpleRequest())).username == "from-interceptor"
            await chan.close()
    run(scenario())


def test_unary_stream_interceptor_wraps_responses(aio_pair, protos):
    async def scenario():
        async with serving(aio_pair, protos) as h:
            counter = CountResponses()
            chan = _channel(h, aio_pair, [counter])
            stub = protos.test_pb2_grpc.TestServiceStub(chan)
            call = stub.StreamingOutputCall(h.m.StreamingOutputCallRequest(
                response_parameters=[h.m.ResponseParameters(size=s) for s in (1, 2, 3)]))
            assert [len(r.payload.body) async for r in call] == [1, 2, 3]
            assert counter.seen == 3
            await chan.close()
    run(scenario())


def test_server_interceptor_can_refuse(aio_pair, protos):
    async def deny_behavior(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no token")

    deny = grpc.unary_unary_rpc_method_handler(deny_behavior)

    async def scenario():
        saio, _ = facade_modules(aio_pair.server)
        server = saio.server(interceptors=[RequireToken(deny)])
        protos.test_pb2_grpc.add_TestServiceServicer_to_server(make_service(protos, aio_pair.server), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        caio, _ = facade_modules(aio_pair.client)
        async with caio.insecure_channel("127.0.0.1:%d" % port) as chan:
            stub = protos.test_pb2_grpc.TestServiceStub(chan)
            with pytest.raises(RPC_ERRORS) as info:
                await stub.UnaryCall(protos.messages_pb2.SimpleRequest())
            assert code_name(info.value.code()) == "UNAUTHENTICATED"
            ok = await stub.UnaryCall(protos.messages_pb2.SimpleRequest(response_size=2),
                                      metadata=(("x-token", "secret"),))
            assert ok.payload.body == b"\0\0"
        await server.stop(None)
    run(scenario())
