"""grpcpy.health offers what code written for grpcio-health-checking uses,
and its messages live beside that package's in one process."""
import asyncio
import json
import subprocess
import sys
from concurrent import futures

import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health as grpcio_health
from grpc_health.v1 import health_pb2 as grpcio_pb
from grpc_health.v1 import health_pb2_grpc as grpcio_pb_grpc

import grpcpy
import grpcpy.aio
from grpcpy import health
from grpcpy.health import health_pb2, health_pb2_grpc


def test_the_names_grpcio_health_checking_code_uses():
    for name in ("HealthServicer", "SERVICE_NAME", "OVERALL_HEALTH", "aio"):
        assert hasattr(health.health, name) and hasattr(grpcio_health, name)
    assert health.health.SERVICE_NAME == grpcio_health.SERVICE_NAME == "grpc.health.v1.Health"
    assert health.OVERALL_HEALTH == grpcio_health.OVERALL_HEALTH == ""
    assert health.health.aio.HealthServicer is health.aio.HealthServicer
    for name in ("HealthStub", "HealthServicer", "add_HealthServicer_to_server"):
        assert hasattr(health_pb2_grpc, name) and hasattr(grpcio_pb_grpc, name)
    for name in ("HealthCheckRequest", "HealthCheckResponse", "HealthListRequest", "HealthListResponse"):
        assert hasattr(health_pb2, name) and hasattr(grpcio_pb, name)
    for status in ("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"):
        assert getattr(health_pb2.HealthCheckResponse, status) == getattr(grpcio_pb.HealthCheckResponse, status)
    assert health.HealthServicer is health.health.HealthServicer
    assert health.add_HealthServicer_to_server is health_pb2_grpc.add_HealthServicer_to_server
    assert issubclass(health.HealthServicer, health_pb2_grpc.HealthServicer)
    assert issubclass(health.aio.HealthServicer, health_pb2_grpc.HealthServicer)
    # grpcio's sync servicer's signature
    health.HealthServicer(experimental_non_blocking=True, experimental_thread_pool=None)


def test_same_descriptors_as_grpcio_health_checking():
    ours = descriptor_pb2.FileDescriptorProto()
    health_pb2.DESCRIPTOR.CopyToProto(ours)
    theirs = descriptor_pb2.FileDescriptorProto()
    grpcio_pb.DESCRIPTOR.CopyToProto(theirs)
    for proto in (ours, theirs):
        proto.ClearField("name")
        proto.ClearField("options")
        for message in list(proto.message_type) + [n for m in proto.message_type for n in m.nested_type]:
            for field in message.field:
                field.ClearField("json_name")
    assert ours == theirs
    assert health_pb2.DESCRIPTOR.name == "grpc/health/v1/health.proto"


def test_messages_load_beside_grpcio_health_checking_in_either_order():
    code = """
import json, sys
first, second = sys.argv[1:]
import importlib
a = importlib.import_module(first)
b = importlib.import_module(second)
m = a.HealthListResponse()
m.statuses["x"].status = a.HealthCheckResponse.NOT_SERVING
back = b.HealthListResponse.FromString(m.SerializeToString())
print(json.dumps([back.statuses["x"].status, a.HealthCheckResponse is not b.HealthCheckResponse]))
"""
    for order in (("grpcpy.health.health_pb2", "grpc_health.v1.health_pb2"),
                  ("grpc_health.v1.health_pb2", "grpcpy.health.health_pb2")):
        out = subprocess.run([sys.executable, "-c", code, *order], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == [2, True]


class _OnlyCheck(health_pb2_grpc.HealthServicer):
    def Check(self, request, context):
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


class _OnlyCheckAio(health_pb2_grpc.HealthServicer):
    async def Check(self, request, context):
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@pytest.mark.parametrize("facade", ["sync", "aio"])
def test_a_hand_written_servicer_on_the_base_class(facade):
    """Methods left to the base class answer UNIMPLEMENTED 'Method not
    implemented!' on both facades."""
    async def scenario(server, port):
        async with grpcpy.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
            stub = health.HealthStub(channel)
            assert (await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)).status == 1
            with pytest.raises(grpcpy.aio.AioRpcError) as info:
                await stub.List(health_pb2.HealthListRequest(), timeout=10)
            assert (info.value.code(), info.value.details()) == (
                grpcpy.StatusCode.UNIMPLEMENTED, "Method not implemented!")
            call = stub.Watch(health_pb2.HealthCheckRequest(), timeout=10)
            with pytest.raises(grpcpy.aio.AioRpcError) as info:
                await call.read()
            assert (info.value.code(), info.value.details()) == (
                grpcpy.StatusCode.UNIMPLEMENTED, "Method not implemented!")

    async def main():
        if facade == "sync":
            server = grpcpy.server(futures.ThreadPoolExecutor(2))
            health.add_HealthServicer_to_server(_OnlyCheck(), server)
            port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            try:
                await scenario(server, port)
            finally:
                server.stop(None)
        else:
            server = grpcpy.aio.server()
            health.add_HealthServicer_to_server(_OnlyCheckAio(), server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            try:
                await scenario(server, port)
            finally:
                await server.stop(None)

    asyncio.run(main())
