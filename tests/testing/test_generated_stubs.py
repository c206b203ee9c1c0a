"""grpcpy.testing the way a user tests a servicer from grpcio-tools
generated code: add it to the in-memory server, call it through its stub."""
import asyncio

import grpcpy
import grpcpy.testing
import grpcpy.testing.aio
from tests.interop.conftest import protos  # noqa: F401  (fixture)


def _servicer(protos):  # noqa: F811
    messages = protos.messages_pb2

    class Servicer(protos.test_pb2_grpc.TestServiceServicer):
        def UnaryCall(self, request, context):
            if request.response_status.code:
                context.abort(_code(request.response_status.code), request.response_status.message)
            return messages.SimpleResponse(payload=messages.Payload(body=b"z" * request.response_size),
                                           username=dict(context.invocation_metadata()).get("user", ""))

        def StreamingOutputCall(self, request, context):
            for p in request.response_parameters:
                yield messages.StreamingOutputCallResponse(payload=messages.Payload(body=b"y" * p.size))
    return Servicer()


def _code(number):
    return {c.value[0]: c for c in grpcpy.StatusCode}[number]


def test_generated_servicer_sync(protos):  # noqa: F811
    messages = protos.messages_pb2
    with grpcpy.testing.server_and_channel() as (server, channel):
        protos.test_pb2_grpc.add_TestServiceServicer_to_server(_servicer(protos), server)
        stub = protos.test_pb2_grpc.TestServiceStub(channel)
        response = stub.UnaryCall(messages.SimpleRequest(response_size=3), metadata=(("user", "ann"),), timeout=5)
        assert (response.payload.body, response.username) == (b"zzz", "ann")
        failed = grpcpy.testing.invoke(stub.UnaryCall, messages.SimpleRequest(
            response_status=messages.EchoStatus(code=5, message="gone")), timeout=5)
        assert failed.termination()[2:] == (grpcpy.StatusCode.NOT_FOUND, "gone")
        sizes = [len(r.payload.body) for r in stub.StreamingOutputCall(messages.StreamingOutputCallRequest(
            response_parameters=[messages.ResponseParameters(size=s) for s in (1, 2)]), timeout=5)]
        assert sizes == [1, 2]
        # a method the servicer left to its generated base class
        base = grpcpy.testing.invoke(stub.FullDuplexCall, iter(()), timeout=5)
        assert (base.code, base.details) == (grpcpy.StatusCode.UNIMPLEMENTED, "Method not implemented!")


def test_generated_servicer_aio(protos):  # noqa: F811
    messages = protos.messages_pb2

    async def main():
        async with grpcpy.testing.aio.server_and_channel() as (server, channel):
            protos.test_pb2_grpc.add_TestServiceServicer_to_server(_servicer(protos), server)
            stub = protos.test_pb2_grpc.TestServiceStub(channel)
            response = await stub.UnaryCall(messages.SimpleRequest(response_size=2), timeout=5)
            assert response.payload.body == b"zz"
            base = await grpcpy.testing.aio.invoke(stub.StreamingInputCall, iter(()), timeout=5)
            assert (base.code, base.details) == (grpcpy.StatusCode.UNIMPLEMENTED, "Method not implemented!")
    asyncio.run(main())
