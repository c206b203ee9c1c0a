"""Server.add_insecure_port: the addresses grpcio accepts, what it returns,
and what a failed bind raises."""
import os
import socket
import uuid

import grpc
import pytest

from .harness import ECHO, GRPCIO, HAS_IPV6, generic_handler, method, run

needs_ipv6 = pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")


async def _serve(impl, address):
    server = impl.aio.server()
    server.add_generic_rpc_handlers((generic_handler(impl.mod, ECHO),))
    port = server.add_insecure_port(address)
    await server.start()
    return server, port


async def _echo_via(target):
    async with GRPCIO.aio.insecure_channel(target) as channel:
        return await method(channel, "uu", "Echo")(b"hi", timeout=5)


def test_ipv4_loopback_port_zero(impl):
    async def scenario():
        server, port = await _serve(impl, "127.0.0.1:0")
        try:
            assert isinstance(port, int) and 0 < port < 65536
            assert await _echo_via("127.0.0.1:%d" % port) == b"hi"
            if HAS_IPV6:   # bound to the IPv4 loopback only
                with pytest.raises(grpc.RpcError) as info:
                    await _echo_via("ipv6:[::1]:%d" % port)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await server.stop(None)
    run(scenario())


@needs_ipv6
@pytest.mark.parametrize("host", ["localhost", "[::]"])
def test_both_loopbacks(impl, host):
    async def scenario():
        server, port = await _serve(impl, "%s:0" % host)
        try:
            assert 0 < port < 65536
            assert await _echo_via("ipv4:127.0.0.1:%d" % port) == b"hi"
            assert await _echo_via("ipv6:[::1]:%d" % port) == b"hi"
        finally:
            await server.stop(None)
    run(scenario())


@pytest.mark.parametrize("form", ["unix:", "unix://"])
def test_unix_socket(impl, form):
    path = "/tmp/grpcpy-aio-%s.sock" % uuid.uuid4().hex[:12]
    target = form + path

    async def scenario():
        server, port = await _serve(impl, target)
        try:
            assert port == 1        # what grpcio returns for a non-TCP address
            assert await _echo_via(target) == b"hi"
            assert await _echo_via("unix:" + path) == b"hi"
        finally:
            await server.stop(None)
    try:
        run(scenario())
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_bind_failure_raises_runtime_error(impl):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    busy = holder.getsockname()[1]

    async def scenario():
        server = impl.aio.server()
        try:
            with pytest.raises(RuntimeError) as info:
                server.add_insecure_port("127.0.0.1:%d" % busy)
            assert "Failed to bind" in str(info.value)
            with pytest.raises(RuntimeError):
                server.add_insecure_port("unix:/nonexistent-dir-%s/s.sock" % uuid.uuid4().hex)
        finally:
            await server.stop(None)
    try:
        run(scenario())
    finally:
        holder.close()
