"""`grpcpy demo`: a server and clients in one process, on a free port.

The server is a grpcpy.aio server on its own thread. The service is defined
inline: its messages are protobuf's well-known wrapper types, so the demo
needs no generated code. The sync client and then the asyncio client run
the four call types against it, print what came back, and time unary calls.
"""
import asyncio
import threading
import time

from google.protobuf import wrappers_pb2

import grpcpy
import grpcpy.aio

SERVICE = "grpcpy.demo.Demo"
Text = wrappers_pb2.StringValue
Number = wrappers_pb2.Int64Value


async def echo(request, context):
    return Text(value="echo: " + request.value)


async def count(request, context):
    for i in range(1, request.value + 1):
        yield Number(value=i)


async def total(request_iterator, context):
    return Number(value=sum([r.value async for r in request_iterator]))


async def chat(request_iterator, context):
    async for request in request_iterator:
        yield Text(value=request.value.upper())


def handlers():
    rpc = grpcpy
    return rpc.method_handlers_generic_handler(SERVICE, {
        "Echo": rpc.unary_unary_rpc_method_handler(echo, Text.FromString, Text.SerializeToString),
        "Count": rpc.unary_stream_rpc_method_handler(count, Number.FromString, Number.SerializeToString),
        "Total": rpc.stream_unary_rpc_method_handler(total, Number.FromString, Number.SerializeToString),
        "Chat": rpc.stream_stream_rpc_method_handler(chat, Text.FromString, Text.SerializeToString),
    })


def _methods(channel):
    return (
        channel.unary_unary("/%s/Echo" % SERVICE, Text.SerializeToString, Text.FromString),
        channel.unary_stream("/%s/Count" % SERVICE, Number.SerializeToString, Number.FromString),
        channel.stream_unary("/%s/Total" % SERVICE, Number.SerializeToString, Number.FromString),
        channel.stream_stream("/%s/Chat" % SERVICE, Text.SerializeToString, Text.FromString),
    )


class _ServerThread(threading.Thread):
    def __init__(self, use_uvloop=None):
        super().__init__(name="demo-server", daemon=True)
        self.use_uvloop = use_uvloop
        self.port = None
        self.ready = threading.Event()
        self.loop = None
        self._stop_event = None

    def run(self):
        grpcpy.aio.run(self._main(), use_uvloop=self.use_uvloop)

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        server = grpcpy.aio.server()
        server.add_generic_rpc_handlers((handlers(),))
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self.ready.set()
        await self._stop_event.wait()
        await server.stop(1)

    def stop(self):
        self.loop.call_soon_threadsafe(self._stop_event.set)
        self.join(5)


def _rate(n, seconds):
    return "%d calls in %.2f s = %.0f calls/s (%.1f us/call)" % (n, seconds, n / seconds, seconds / n * 1e6)


def sync_client(target, calls, out):
    with grpcpy.insecure_channel(target) as channel:
        echo_, count_, total_, chat_ = _methods(channel)
        out("sync  unary          Echo('hello')        -> %r" % echo_(Text(value="hello"), timeout=10).value)
        out("sync  server stream  Count(5)             -> %r" % [r.value for r in count_(Number(value=5))])
        out("sync  client stream  Total(1..10)         -> %r" % total_(Number(value=i) for i in range(1, 11)).value)
        out("sync  bidi stream    Chat('a','b','c')    -> %r" % [r.value for r in chat_(Text(value=c) for c in "abc")])
        request = Text(value="x")
        start = time.perf_counter()
        for _ in range(calls):
            echo_(request)
        out("sync  unary ping-pong: " + _rate(calls, time.perf_counter() - start))


async def aio_client(target, calls, out):
    async with grpcpy.aio.insecure_channel(target) as channel:
        echo_, count_, total_, chat_ = _methods(channel)
        out("aio   unary          Echo('hello')        -> %r" % (await echo_(Text(value="hello"), timeout=10)).value)
        out("aio   server stream  Count(5)             -> %r" % [r.value async for r in count_(Number(value=5))])
        out("aio   client stream  Total(1..10)         -> %r" % (await total_(Number(value=i) for i in range(1, 11))).value)
        call = chat_()
        replies = []
        for c in "abc":
            await call.write(Text(value=c))
            replies.append((await call.read()).value)
        await call.done_writing()
        out("aio   bidi stream    Chat('a','b','c')    -> %r (status %s)" % (replies, (await call.code()).name))
        request = Text(value="x")
        start = time.perf_counter()
        for _ in range(calls):
            await echo_(request)
        out("aio   unary ping-pong: " + _rate(calls, time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(max(1, calls // 64)):
            await asyncio.gather(*[echo_(request) for _ in range(64)])
        n = max(1, calls // 64) * 64
        out("aio   unary, 64 in flight: " + _rate(n, time.perf_counter() - start))


def run(calls=2000, out=print, use_uvloop=None):
    """use_uvloop: as for grpcpy.aio.run (None: uvloop when it is installed)."""
    server = _ServerThread(use_uvloop)
    server.start()
    if not server.ready.wait(10):
        raise RuntimeError("the demo server did not start")
    target = "127.0.0.1:%d" % server.port
    out("grpcpy %s demo: grpcpy.aio server on %s (loop: %s)" % (
        grpcpy.__version__, target, type(server.loop).__module__.split(".")[0]))
    try:
        sync_client(target, calls, out)
        grpcpy.aio.run(aio_client(target, calls, out), use_uvloop=use_uvloop)
    finally:
        server.stop()
    out("demo finished: every call type worked through both APIs")
    return 0
