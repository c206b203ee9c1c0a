"""The real grpcio-status package on grpcpy through install_as_grpc(), in a
fresh interpreter where real grpcio is never loaded; and the base servicer
classes grpcio-tools generates (set_code(UNIMPLEMENTED),
set_details('Method not implemented!'), raise NotImplementedError) answering
exactly that status on both facades."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import grpcpy
from tests.interop.conftest import protos  # noqa: F401  (fixture)

REPO = os.path.dirname(os.path.abspath(grpcpy.__file__ + "/.."))

PROGRAM = textwrap.dedent('''
    import asyncio, json, sys
    from concurrent import futures
    if sys.argv[1] == "grpcpy":
        import grpcpy
        grpcpy.install_as_grpc()
    import grpc, grpc.aio
    from grpc_status import rpc_status
    from google.rpc import code_pb2, error_details_pb2, status_pb2
    from src.proto.grpc.testing import empty_pb2, messages_pb2, test_pb2_grpc

    def rich():
        status = status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message="stock too low")
        status.details.add().Pack(error_details_pb2.PreconditionFailure(violations=[
            error_details_pb2.PreconditionFailure.Violation(type="STOCK", subject="sku/1", description="0 left")]))
        return status

    def summary(status):
        if status is None:
            return None
        failure = error_details_pb2.PreconditionFailure()
        status.details[0].Unpack(failure)
        return [status.code, status.message, failure.violations[0].subject]

    class Sync(test_pb2_grpc.TestServiceServicer):
        def UnaryCall(self, request, context):
            context.abort_with_status(rpc_status.to_status(rich()))

    class Async(test_pb2_grpc.TestServiceServicer):
        async def UnaryCall(self, request, context):
            await context.abort_with_status(rpc_status.to_status(rich()))

    def sync_client(port):
        out = {}
        with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
            stub = test_pb2_grpc.TestServiceStub(channel)
            try:
                stub.UnaryCall(messages_pb2.SimpleRequest(), timeout=10)
            except grpc.RpcError as exc:
                out["rich"] = [exc.code().name, exc.details(), summary(rpc_status.from_call(exc))]
            calls = {
                "unary": lambda: stub.EmptyCall(empty_pb2.Empty(), timeout=10),
                "server_stream": lambda: list(stub.StreamingOutputCall(
                    messages_pb2.StreamingOutputCallRequest(), timeout=10)),
                "client_stream": lambda: stub.StreamingInputCall(
                    iter([messages_pb2.StreamingInputCallRequest()]), timeout=10),
                "bidi": lambda: list(stub.FullDuplexCall(iter(()), timeout=10)),
            }
            for name, fn in calls.items():
                try:
                    fn()
                except grpc.RpcError as exc:
                    out[name] = [exc.code().name, exc.details()]
        return out

    async def aio_client(port):
        out = {}
        async with grpc.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
            stub = test_pb2_grpc.TestServiceStub(channel)
            call = stub.UnaryCall(messages_pb2.SimpleRequest(), timeout=10)
            try:
                await call
            except grpc.aio.AioRpcError:
                pass
            out["rich"] = [(await call.code()).name, await call.details(),
                           summary(await rpc_status.aio.from_call(call))]
            async def stream(call):
                return [r async for r in call]
            calls = {
                "unary": lambda: stub.EmptyCall(empty_pb2.Empty(), timeout=10),
                "server_stream": lambda: stream(stub.StreamingOutputCall(
                    messages_pb2.StreamingOutputCallRequest(), timeout=10)),
                "client_stream": lambda: stub.StreamingInputCall(
                    iter([messages_pb2.StreamingInputCallRequest()]), timeout=10),
                "bidi": lambda: stream(stub.FullDuplexCall(iter(()), timeout=10)),
            }
            for name, fn in calls.items():
                try:
                    await fn()
                except grpc.aio.AioRpcError as exc:
                    out[name] = [exc.code().name, exc.details()]
        return out

    result = {}
    server = grpc.server(futures.ThreadPoolExecutor(4))
    test_pb2_grpc.add_TestServiceServicer_to_server(Sync(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    result["sync server, sync client"] = sync_client(port)
    result["sync server, aio client"] = asyncio.run(aio_client(port))
    server.stop(None)

    async def aio_server():
        server = grpc.aio.server()
        test_pb2_grpc.add_TestServiceServicer_to_server(Async(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        result["aio server, aio client"] = await aio_client(port)
        result["aio server, sync client"] = await asyncio.get_running_loop().run_in_executor(
            None, sync_client, port)
        await server.stop(None)
    asyncio.run(aio_server())
    result["grpcio loaded"] = "grpc._cython" in sys.modules
    result["grpc module"] = type(grpc.insecure_channel("127.0.0.1:1")).__module__
    print("RESULT " + json.dumps(result))
''')

UNIMPLEMENTED = ["UNIMPLEMENTED", "Method not implemented!"]


def _run(protos_dir, tmp_path, mode):
    program = tmp_path / "status_program.py"
    program.write_text(PROGRAM)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO, protos_dir, env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(program), mode], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def _protos_root():
    for path in sys.path:
        if os.path.isdir(os.path.join(path, "src", "proto", "grpc", "testing")):
            return path
    raise AssertionError("protos not compiled")


@pytest.fixture(scope="module")
def grpcio_result(tmp_path_factory, request):
    request.getfixturevalue("protos")
    return _run(_protos_root(), tmp_path_factory.mktemp("grpcio"), "grpcio")


def test_grpcio_status_and_generated_base_servicers_on_grpcpy(protos, tmp_path, grpcio_result):  # noqa: F811
    ours = _run(_protos_root(), tmp_path, "grpcpy")
    assert ours.pop("grpcio loaded") is False
    assert ours.pop("grpc module").startswith("grpcpy.")
    assert grpcio_result.pop("grpcio loaded") is True
    rich = ["FAILED_PRECONDITION", "stock too low", [9, "stock too low", "sku/1"]]
    for pair, got in ours.items():
        assert got["rich"] == rich, pair
        for kind in ("unary", "server_stream", "client_stream", "bidi"):
            # both facades keep the details the base servicer set
            assert got[kind] == UNIMPLEMENTED, (pair, kind)
    # the reference: grpcio's sync server agrees; grpc.aio's replaces the details
    for pair in ("sync server, sync client", "sync server, aio client"):
        reference = dict(grpcio_result[pair])
        assert reference == ours[pair], pair
    aio_reference = grpcio_result["aio server, aio client"]
    assert aio_reference["rich"] == rich
    assert aio_reference["unary"][0] == "UNIMPLEMENTED" and aio_reference["unary"][1] != UNIMPLEMENTED[1]
