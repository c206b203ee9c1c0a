"""grpcpy as a drop-in for legacy grpcio code and generated stubs."""
import os
import subprocess
import sys
import textwrap

import grpc
import pytest

import grpcpy
import grpcpy._utilities
from tests.interop.conftest import protos  # noqa: F401  (fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(grpcpy.__file__))))
REPO = os.path.dirname(os.path.abspath(grpcpy.__file__ + "/.."))

LEGACY_PROGRAM = textwrap.dedent('''
    # An unedited grpcio program: sync server and client, generated stubs.
    import sys
    from concurrent import futures

    import grpc
    import grpc.aio
    import grpc.experimental.aio
    from src.proto.grpc.testing import messages_pb2, test_pb2_grpc

    class Service(test_pb2_grpc.TestServiceServicer):
        def UnaryCall(self, request, context):
            context.set_trailing_metadata((("impl", sys.modules["grpc"].__name__),))
            return messages_pb2.SimpleResponse(payload=messages_pb2.Payload(body=b"x" * request.response_size))

        def StreamingOutputCall(self, request, context):
            for p in request.response_parameters:
                yield messages_pb2.StreamingOutputCallResponse(payload=messages_pb2.Payload(body=b"y" * p.size))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    test_pb2_grpc.add_TestServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = test_pb2_grpc.TestServiceStub(channel)
        response, call = stub.UnaryCall.with_call(messages_pb2.SimpleRequest(response_size=5), timeout=10)
        sizes = [len(r.payload.body) for r in stub.StreamingOutputCall(messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=s) for s in (1, 2, 3)]))]
        try:
            stub.UnimplementedCall(messages_pb2.SimpleRequest())
        except grpc.RpcError as exc:
            unimplemented = exc.code() == grpc.StatusCode.UNIMPLEMENTED
    server.stop(None)
    print("RESULT", grpc.__version__, type(channel).__module__, len(response.payload.body), sizes,
          dict(call.trailing_metadata()).get("impl"), unimplemented,
          grpc.experimental.aio.insecure_channel is grpc.aio.insecure_channel or
          grpc.experimental.aio.insecure_channel.__module__ == grpc.aio.insecure_channel.__module__)
''')


@pytest.fixture
def legacy_program(protos, tmp_path):  # noqa: F811
    path = tmp_path / "legacy_client.py"
    path.write_text(LEGACY_PROGRAM)
    return path


def _run(args, protos_root):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO, protos_root, env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable] + args, capture_output=True, text=True, env=env, timeout=120)


def _protos_root():
    for path in sys.path:
        if os.path.isdir(os.path.join(path, "src", "proto", "grpc", "testing")):
            return path
    raise AssertionError("protos not compiled")


def test_legacy_program_runs_on_grpcio_and_unchanged_on_grpcpy(legacy_program):
    root = _protos_root()
    reference = _run([str(legacy_program)], root)
    assert reference.returncode == 0, reference.stderr
    ref_fields = reference.stdout.split("RESULT ")[1].split()
    assert ref_fields[1] == "grpc._channel"

    out = _run(["-m", "grpcpy.run", str(legacy_program)], root)
    assert out.returncode == 0, out.stderr
    fields = out.stdout.split("RESULT ")[1].split()
    assert fields[0] == grpcpy.GRPCIO_COMPAT_VERSION          # the alias's version
    assert fields[1].startswith("grpcpy.")                     # really grpcpy's channel
    assert fields[2:] == ref_fields[2:]                        # same observable results


def test_grpcpy_run_module_form_and_help(tmp_path):
    mod = tmp_path / "legacy_mod.py"
    mod.write_text("import grpc, sys\nprint('MOD', grpc.__name__, type(grpc).__module__, sys.argv[1:])\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, str(tmp_path)]))
    out = subprocess.run([sys.executable, "-m", "grpcpy.run", "-m", "legacy_mod", "a", "b"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "MOD grpc grpcpy._alias ['a', 'b']" in out.stdout
    usage = subprocess.run([sys.executable, "-m", "grpcpy.run"], capture_output=True, text=True, env=env, timeout=60)
    assert usage.returncode == 2 and "python -m grpcpy.run" in usage.stdout


def test_enums_carry_grpcio_values():
    for ours, theirs in ((grpcpy.StatusCode, grpc.StatusCode), (grpcpy.ChannelConnectivity, grpc.ChannelConnectivity)):
        assert [(m.name, m.value) for m in ours] == [(m.name, m.value) for m in theirs]
    assert [(m.name, m.value) for m in grpcpy.Compression] == [(m.name, m.value) for m in grpc.Compression]
    assert grpcpy.StatusCode.OK.value == (0, "ok")


def test_version_check_of_generated_code():
    assert grpcpy.__version__ != grpcpy.GRPCIO_COMPAT_VERSION
    lower = grpcpy._utilities.first_version_is_lower
    assert lower("1.2.3", "1.10.0") and not lower("1.10.0", "1.2.3")
    assert lower("1.60.0rc1", "1.60.0") and not lower("1.60.0", "1.60.0")
    assert not lower(grpcpy.GRPCIO_COMPAT_VERSION, grpc.__version__)
    # grpcio's own helper agrees with ours
    import grpc._utilities as reference
    for a, b in (("1.2.3", "1.10.0"), ("1.85.1", "1.85.1"), ("2.0.0", "1.99.9")):
        assert lower(a, b) == reference.first_version_is_lower(a, b)


def test_install_as_grpc_in_process(monkeypatch):
    import importlib
    saved = {k: v for k, v in sys.modules.items() if k == "grpc" or k.startswith("grpc.")}
    try:
        grpcpy.install_as_grpc()
        import grpc as alias
        assert alias.__version__ == grpcpy.GRPCIO_COMPAT_VERSION
        assert alias.insecure_channel is grpcpy.insecure_channel
        assert importlib.import_module("grpc.aio") is grpcpy.aio
        assert importlib.import_module("grpc.experimental.aio") is grpcpy.aio
        assert importlib.import_module("grpc._utilities") is grpcpy._utilities
        assert alias.experimental.aio is alias.aio
    finally:
        for key in [k for k in sys.modules if k == "grpc" or k.startswith("grpc.")]:
            del sys.modules[key]
        sys.modules.update(saved)


def test_grpcpy_enums_equal_grpcio_members():
    assert grpcpy.StatusCode.NOT_FOUND == grpc.StatusCode.NOT_FOUND
    assert grpc.StatusCode.NOT_FOUND == grpcpy.StatusCode.NOT_FOUND
    assert grpcpy.StatusCode.NOT_FOUND != grpc.StatusCode.INTERNAL
    assert {grpcpy.StatusCode.UNAVAILABLE: "x"}[grpc.StatusCode.UNAVAILABLE] == "x"
    assert grpcpy.ChannelConnectivity.READY == grpc.ChannelConnectivity.READY
