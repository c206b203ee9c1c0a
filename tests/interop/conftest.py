"""Fixtures for interop tests: the gRPC interop protos compiled with
grpcio-tools at test time, and the (client, server) implementation pairs."""
import importlib
import pathlib
import shutil
import sys
import types

import pytest

from tests.conftest import SHARED

PROTO_DIR = SHARED / "protos" / "grpc-testing"

# (client, server): grpcpy against grpcio both ways, grpcpy with itself, and
# grpcio with itself as the reference the behaviour is checked against.
PAIRS = [("grpcio", "grpcpy"), ("grpcpy", "grpcio"), ("grpcpy", "grpcpy"), ("grpcio", "grpcio")]
PAIR_IDS = ["grpcio-to-grpcpy", "grpcpy-to-grpcio", "grpcpy-to-grpcpy", "grpcio-to-grpcio"]


@pytest.fixture(scope="session")
def protos(tmp_path_factory):
    from grpc_tools import protoc

    root = tmp_path_factory.mktemp("protos")
    src = root / "src" / "proto" / "grpc" / "testing"
    src.mkdir(parents=True)
    for name in ("empty.proto", "messages.proto", "test.proto"):
        shutil.copy(PROTO_DIR / name, src / name)
    files = [str(pathlib.Path("src/proto/grpc/testing") / n) for n in ("empty.proto", "messages.proto", "test.proto")]
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(["protoc", "-I" + str(root), "-I" + str(include), "--python_out=" + str(root),
                      "--grpc_python_out=" + str(root)] + [str(root / f) for f in files])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, str(root))
    ns = types.SimpleNamespace(
        empty_pb2=importlib.import_module("src.proto.grpc.testing.empty_pb2"),
        messages_pb2=importlib.import_module("src.proto.grpc.testing.messages_pb2"),
        test_pb2_grpc=importlib.import_module("src.proto.grpc.testing.test_pb2_grpc"),
    )
    return ns


@pytest.fixture(params=PAIRS, ids=PAIR_IDS)
def pair(request):
    return request.param


@pytest.fixture(params=["uvloop", "asyncio"], autouse=True)
def loop_kind(request):
    """Every asyncio interop test runs on uvloop and on asyncio's own loop."""
    from . import service
    service.LOOP_KIND["value"] = request.param
    return request.param
