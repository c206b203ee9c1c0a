"""A client channel of grpcpy's sync or aio facade (or grpcio's, as the
reference) whose calls report which backend served them, read from the
"served-by" trailer the test backends set; the aio channel runs on a loop
of its own thread.  For the balancing tests that look at the spread."""
import asyncio
import threading
import time

import grpc

import grpcpy
import grpcpy.aio

ECHO = "/t.S/Echo"


class ServedByClient:
    def __init__(self, facade, target, options=None, method=ECHO):
        self.facade = facade
        if facade == "aio":
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
            self.thread.start()
            self.channel = self.run(self._make(target, options))
        else:
            self.channel = (grpc if facade == "grpcio" else grpcpy).insecure_channel(target, options)
        self.echo = self.channel.unary_unary(method)

    async def _make(self, target, options):
        return grpcpy.aio.insecure_channel(target, options)

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def outcome(self, metadata=None, wait_for_ready=True):
        """(response, served-by) of one call, or (status code name, details)."""
        if self.facade != "aio":
            try:
                response, call = self.echo.with_call(b"hi", timeout=5, metadata=metadata,
                                                     wait_for_ready=wait_for_ready)
                return response, dict(call.trailing_metadata())["served-by"]
            except (grpc.RpcError, grpcpy.RpcError) as exc:
                return exc.code().name, exc.details()

        async def one():
            call = self.echo(b"hi", timeout=5, metadata=metadata, wait_for_ready=wait_for_ready)
            try:
                response = await call
                return response, dict(await call.trailing_metadata())["served-by"]
            except grpcpy.RpcError as exc:
                return exc.code().name, exc.details()
        return self.run(one())

    def call(self, metadata=None):
        """(response, served-by) of one call that must succeed."""
        response, who = self.outcome(metadata)
        assert isinstance(response, bytes), (response, who)
        return response, who

    def served(self, n, wait_for_ready=True):
        """Who served each of n calls, or (code name, details) of a failure."""
        out = []
        for _ in range(n):
            first, second = self.outcome(wait_for_ready=wait_for_ready)
            out.append(second if isinstance(first, bytes) else (first, second))
        return out

    def close(self):
        if self.facade == "aio":
            self.run(self.channel.close())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()
        else:
            self.channel.close()


def until(predicate, timeout=10.0):
    """Poll ``predicate`` until it holds (True) or the time is up (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
