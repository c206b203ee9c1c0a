"""Fixtures for interop tests: the gRPC interop protos compiled with
grpcio-tools at test time, and the (client facade, server facade, loop) matrix."""
import collections
import importlib
import pathlib
import shutil
import sys
import types

import pytest

from tests.conftest import SHARED

from . import drivers, service

PROTO_DIR = SHARED / "protos" / "grpc-testing"

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


FACADES = ("grpcio-aio", "grpcpy-aio", "grpcio-sync", "grpcpy-sync")
LOOP_KINDS = ("uvloop", "asyncio")


class Pair(collections.namedtuple("Pair", "client server loop")):
    """A client facade, a server facade and the event loop the scenario runs
    on (sync clients run on one loop kind only: the loop is then just the
    place the scenario and an asyncio server live)."""


def call_pairs():
    """The (client, server) facade pairs the call-behaviour suite runs:
    every grpcpy facade against every grpcio facade both ways, grpcpy sync
    against grpcpy aio both ways, grpcpy with itself per facade, and grpcio
    with itself per facade as the reference."""
    grpcio = [f for f in FACADES if f.startswith("grpcio")]
    grpcpy = [f for f in FACADES if f.startswith("grpcpy")]
    pairs = []
    for ours in grpcpy:
        for theirs in grpcio:
            pairs += [(ours, theirs), (theirs, ours)]
    pairs += [("grpcpy-sync", "grpcpy-aio"), ("grpcpy-aio", "grpcpy-sync")]
    pairs += [(f, f) for f in grpcpy] + [(f, f) for f in grpcio]
    return pairs


def _params(pairs):
    params = []
    for client, server in pairs:
        loops = LOOP_KINDS if client.endswith("-aio") else LOOP_KINDS[:1]
        reasons = [r for r in (drivers.sync_facade_missing(client), drivers.sync_facade_missing(server)) if r]
        marks = [pytest.mark.skip(reason=reasons[0])] if reasons else []
        for loop in loops:
            suffix = "-" + loop if client.endswith("-aio") else ""
            params.append(pytest.param(Pair(client, server, loop), id="%s-to-%s%s" % (client, server, suffix),
                                       marks=marks))
    return params


@pytest.fixture(params=_params(call_pairs()))
def pair(request):
    """A Pair from the call-behaviour matrix; sets the scenario's loop."""
    service.LOOP_KIND["value"] = request.param.loop
    return request.param


AIO_PAIRS = [("grpcio-aio", "grpcpy-aio"), ("grpcpy-aio", "grpcio-aio"), ("grpcpy-aio", "grpcpy-aio"),
             ("grpcio-aio", "grpcio-aio")]


@pytest.fixture(params=_params(AIO_PAIRS))
def aio_pair(request):
    """asyncio facades only (for the grpc.aio-only API, e.g. interceptors)."""
    service.LOOP_KIND["value"] = request.param.loop
    return request.param
