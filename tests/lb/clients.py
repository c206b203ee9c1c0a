"""One client channel of either grpcpy facade behind the same blocking
calls, for the balancing tests; the aio one runs on a loop of its own thread."""
import asyncio
import threading

import grpcpy
import grpcpy.aio

WHO = "/rr.Backend/Who"
WORKERS = 4


class Failed(str):
    """A call's failure: its status code's name, with ``details``."""

    def __new__(cls, exc):
        self = super().__new__(cls, exc.code().name)
        self.details = exc.details()
        return self


class SyncClient:
    wait_for_ready = None

    def __init__(self, target, options, method=WHO):
        self.channel = grpcpy.insecure_channel(target, options=options)
        self.who = self.channel.unary_unary(method)

    def call(self, wait_for_ready=None):
        """The reply (the name of the backend that answered), or Failed."""
        try:
            return self.who(b"", timeout=10, wait_for_ready=wait_for_ready or self.wait_for_ready)
        except grpcpy.RpcError as exc:
            return Failed(exc)

    def run(self, calls, before_each=None):
        """``calls`` calls made by WORKERS threads; ``before_each(i)`` runs
        before the i-th call starts."""
        counter = iter(range(calls))
        lock = threading.Lock()
        results = []

        def work():
            while True:
                with lock:
                    i = next(counter, None)
                    if i is None:
                        return
                    if before_each is not None:
                        before_each(i)
                results.append(self.call())

        threads = [threading.Thread(target=work) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def state(self):
        with self.channel._lock:
            return self.channel._plane.state

    def close(self):
        self.channel.close()


class AioClient:
    """The aio facade on a loop of its own thread, driven with the same calls."""
    wait_for_ready = None

    def __init__(self, target, options, method=WHO):
        self.method = method
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.channel = self._do(self._make(target, options))

    async def _make(self, target, options):
        self.ch = grpcpy.aio.insecure_channel(target, options=options)
        return self.ch

    def _do(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _call(self, wait_for_ready=None):
        try:
            return await self.ch.unary_unary(self.method)(b"", timeout=10,
                                                          wait_for_ready=wait_for_ready or self.wait_for_ready)
        except grpcpy.aio.AioRpcError as exc:
            return Failed(exc)

    def call(self, wait_for_ready=None):
        return self._do(self._call(wait_for_ready))

    def state(self):
        """The channel's connectivity state (the plane's, read on the loop)."""
        async def read():
            return self.ch._plane.state
        return self._do(read())

    def run(self, calls, before_each=None):
        async def go():
            counter = iter(range(calls))
            results = []

            async def work():
                for i in counter:
                    if before_each is not None:
                        # a blocking stop, off the loop, as the sync run does under its lock
                        await self.loop.run_in_executor(None, before_each, i)
                    results.append(await self._call())

            await asyncio.gather(*(work() for _ in range(WORKERS)))
            return results
        return self._do(go())

    def close(self):
        self._do(self.ch.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
