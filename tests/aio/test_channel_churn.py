"""Channels opened, used and let go in a row leave nothing behind: closed
ones, and ones dropped without close() (grpc.aio closes those when they
are collected; a connection the loop still holds must not keep them
alive)."""
import asyncio
import gc
import os

import grpc
import pytest

from .harness import ECHO, generic_handler, run

CYCLES = 200


def _rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("how", ["close", "drop"])
def test_channel_churn_leaves_nothing_behind(impl, how):
    async def scenario():
        # the peer is grpcio in both runs: what grows is the client's
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((generic_handler(grpc, ECHO),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        target = "127.0.0.1:%d" % port

        async def cycle():
            channel = impl.aio.insecure_channel(target)
            assert await channel.unary_unary("/t.S/Echo")(b"x", timeout=5) == b"x"
            if how == "close":
                await channel.close()

        def live_channels():
            gc.collect()
            return sum(1 for o in gc.get_objects() if isinstance(o, impl.aio.Channel))

        try:
            for _ in range(30):
                await cycle()
            await _settle()
            before = (live_channels(), _open_fds(), _rss_mib())
            for _ in range(CYCLES):
                await cycle()
            await _settle()
            after = (live_channels(), _open_fds(), _rss_mib())
        finally:
            await server.stop(None)
        return before, after

    (channels0, fds0, rss0), (channels1, fds1, rss1) = run(scenario(), timeout=120)
    assert channels1 <= channels0 + 2, "channels alive: %d -> %d" % (channels0, channels1)
    assert fds1 <= fds0 + 4, "open fds: %d -> %d" % (fds0, fds1)
    # a leaked channel with its connection held about 24 KiB
    assert rss1 - rss0 < 3.0, "RSS %.1f -> %.1f MiB after %d channels" % (rss0, rss1, CYCLES)


async def _settle():
    """Let closed transports finish closing (a few loop iterations)."""
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
