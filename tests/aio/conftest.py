"""Fixtures for the grpcpy.aio API-surface tests.

Each test runs against grpc.aio (the reference) and grpcpy.aio: `impl` is
the implementation under test; the peer on the other side of the wire is
always grpcio. Every test also runs on uvloop and on asyncio's own loop.
"""
import pytest

from . import harness


@pytest.fixture(params=["grpcio", "grpcpy"])
def impl(request):
    return harness.IMPLS[request.param]


@pytest.fixture(params=["uvloop", "asyncio"], autouse=True)
def loop_kind(request):
    harness.LOOP_KIND["value"] = request.param
    return request.param
