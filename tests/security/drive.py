"""Drivers for the security tests: a server or a client of either facade
(threaded sync, asyncio) of either implementation (grpcio, grpcpy), named
"grpcio-sync", "grpcpy-sync", "grpcio-aio", "grpcpy-aio".

Theory of operation. A server runs in the background whatever its facade:
an asyncio server gets an event loop on a thread of its own, so that every
client, of either facade, can call it from the test's thread. A client call
is one function, `call(kind, target, ...)`, which opens a channel, makes one
call of the shape asked for and closes the channel; an asyncio client runs
it on a fresh event loop. Event loops are uvloop's when it is installed
(its TLS transport is not asyncio's; grpcpy.aio.run picks it too). Calls run under a watchdog: one that has not ended
well after its own deadline fails the test as a hang instead of hanging it
(and a hang that holds the GIL, which no Python watchdog can interrupt,
ends the test process with every thread's stack, through faulthandler).

Every server answers the same four methods, one per call shape
(/T/Who unary-unary, /T/US unary-stream, /T/SU stream-unary, /T/SS
stream-stream), each with `info(context)`: what the server learnt about the
call (auth context, peer, peer identities and their key, request metadata).
"""
import asyncio
import collections
import contextlib
import faulthandler
import threading
from concurrent import futures

import grpc
import grpc.aio
import pytest

import grpcpy
import grpcpy.aio

KINDS = ("grpcio-sync", "grpcpy-sync", "grpcio-aio", "grpcpy-aio")
SYNC_SHAPES = ("unary_unary", "unary_unary.with_call", "unary_unary.future", "unary_stream",
               "stream_unary", "stream_unary.with_call", "stream_unary.future", "stream_stream")
AIO_SHAPES = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
METHOD = {"unary_unary": "/T/Who", "unary_stream": "/T/US", "stream_unary": "/T/SU", "stream_stream": "/T/SS"}
WATCHDOG = 60.0   # seconds past which a call counts as hung
# request metadata that says who the client library is, not what the call carries
_LIBRARY_METADATA = ("user-agent",)


def new_loop():
    """An event loop for a server thread: uvloop's when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def top(kind):
    """The implementation's top module (grpc or grpcpy) of a kind."""
    return grpc if kind.startswith("grpcio") else grpcpy


def is_aio(kind):
    return kind.endswith("-aio")


def info(context):
    """What a servicer learnt about its call (a repr()-able dict)."""
    return {
        "auth": {k: list(v) for k, v in context.auth_context().items()},
        "peer": context.peer(),
        "ids": context.peer_identities(),
        "key": context.peer_identity_key(),
        "md": [(k, v) for k, v in context.invocation_metadata() if k not in _LIBRARY_METADATA],
    }


def _encode(context):
    return repr(info(context)).encode()


def decode(payload):
    return eval(payload)   # noqa: S307 - our own server's repr()


def _sync_handlers(mod):
    def who(request, context):
        return _encode(context)

    def us(request, context):
        yield _encode(context)

    def su(requests, context):
        for _ in requests:
            pass
        return _encode(context)

    def ss(requests, context):
        for _ in requests:
            pass
        yield _encode(context)

    return mod.method_handlers_generic_handler("T", {
        "Who": mod.unary_unary_rpc_method_handler(who), "US": mod.unary_stream_rpc_method_handler(us),
        "SU": mod.stream_unary_rpc_method_handler(su), "SS": mod.stream_stream_rpc_method_handler(ss)})


def _aio_handlers(mod):
    async def who(request, context):
        return _encode(context)

    async def us(request, context):
        yield _encode(context)

    async def su(requests, context):
        async for _ in requests:
            pass
        return _encode(context)

    async def ss(requests, context):
        async for _ in requests:
            pass
        yield _encode(context)

    return mod.method_handlers_generic_handler("T", {
        "Who": mod.unary_unary_rpc_method_handler(who), "US": mod.unary_stream_rpc_method_handler(us),
        "SU": mod.stream_unary_rpc_method_handler(su), "SS": mod.stream_stream_rpc_method_handler(ss)})


# ---------------------------------------------------------------- servers

@contextlib.contextmanager
def serving(kind, address="127.0.0.1:0", creds=None):
    """A running server of `kind` on `address`; yields the bound port.
    `creds(top_module)` makes its server credentials (None: insecure)."""
    mod = top(kind)
    if not is_aio(kind):
        server = mod.server(futures.ThreadPoolExecutor(8))
        server.add_generic_rpc_handlers((_sync_handlers(mod),))
        port = server.add_secure_port(address, creds(mod)) if creds else server.add_insecure_port(address)
        server.start()
        try:
            yield port
        finally:
            server.stop(None)
        return
    loop = new_loop()
    box = {}
    ready = threading.Event()

    async def start():
        server = mod.aio.server()
        server.add_generic_rpc_handlers((_aio_handlers(mod),))
        box["port"] = server.add_secure_port(address, creds(mod)) if creds else server.add_insecure_port(address)
        await server.start()
        box["server"] = server

    def run():
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:   # reported to the test's thread
            box["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="aio-server-" + kind, daemon=True)
    thread.start()
    assert ready.wait(WATCHDOG), "the asyncio server did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield box["port"]
    finally:
        asyncio.run_coroutine_threadsafe(box["server"].stop(None), loop).result(WATCHDOG)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WATCHDOG)
        loop.close()


# ---------------------------------------------------------------- clients

Outcome = collections.namedtuple("Outcome", "code value")
"""code: a StatusCode name ("OK" with value the response, or the list of
responses of a response-streaming call) or "UsageError"; value: the error's
details / message otherwise."""


def call(kind, target, channel_creds=None, shape="unary_unary", options=None, timeout=10.0, credentials=None,
         metadata=None, wait_for_ready=None, request=b""):
    """One call on a fresh channel of `kind`. `channel_creds(top)` makes
    channel credentials (None: an insecure channel); `credentials(top)`
    per-call credentials."""
    mod = top(kind)
    kwargs = {"timeout": timeout}
    if metadata is not None:
        kwargs["metadata"] = metadata
    if wait_for_ready is not None:
        kwargs["wait_for_ready"] = wait_for_ready
    if credentials is not None:
        kwargs["credentials"] = credentials(mod)
    chan_creds = channel_creds(mod) if channel_creds is not None else None
    # last resort against a hang that holds the GIL (the watchdogs below then
    # cannot run): dump every thread's stack and end the test process
    faulthandler.dump_traceback_later(2 * WATCHDOG, exit=True)
    try:
        if is_aio(kind):
            return _watch_aio(_aio_call(mod, target, chan_creds, shape, options, kwargs, request))
        return _watch_sync(_sync_call, mod, target, chan_creds, shape, options, kwargs, request)
    finally:
        faulthandler.cancel_dump_traceback_later()


def _sync_call(mod, target, chan_creds, shape, options, kwargs, request):
    base, _, variant = shape.partition(".")
    channel = (mod.secure_channel(target, chan_creds, options=options) if chan_creds is not None
               else mod.insecure_channel(target, options=options))
    with channel:
        multicallable = getattr(channel, base)(METHOD[base])
        arg = request if base.startswith("unary_") else iter([request])
        try:
            if variant == "with_call":
                response, _call = multicallable.with_call(arg, **kwargs)
            elif variant == "future":
                response = multicallable.future(arg, **kwargs).result()
            else:
                response = multicallable(arg, **kwargs)
                if base.endswith("_stream"):
                    response = list(response)
        except (grpc.RpcError, grpcpy.RpcError) as exc:
            return Outcome(exc.code().name, exc.details())
    return Outcome("OK", response)


async def _aio_call(mod, target, chan_creds, shape, options, kwargs, request):
    channel = (mod.aio.secure_channel(target, chan_creds, options=options) if chan_creds is not None
               else mod.aio.insecure_channel(target, options=options))
    async with channel:
        multicallable = getattr(channel, shape)(METHOD[shape])

        async def requests():
            yield request

        arg = request if shape.startswith("unary_") else requests()
        try:
            call_ = multicallable(arg, **kwargs)
            if shape.endswith("_stream"):
                response = [m async for m in call_]
            else:
                response = await call_
        except (grpc.aio.UsageError, grpcpy.aio.UsageError) as exc:
            return Outcome("UsageError", str(exc))
        except (grpc.RpcError, grpcpy.RpcError) as exc:
            return Outcome(exc.code().name, exc.details())
    return Outcome("OK", response)


def _watch_sync(fn, *args):
    box = {}

    def run():
        try:
            box["result"] = fn(*args)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WATCHDOG)
    if thread.is_alive():
        pytest.fail("the call hung (still running after %.0f s)" % WATCHDOG)
    if "error" in box:
        raise box["error"]
    return box["result"]


def _watch_aio(coro):
    async def guarded():
        try:
            return await asyncio.wait_for(coro, WATCHDOG)
        except asyncio.TimeoutError:
            pytest.fail("the call hung (still running after %.0f s)" % WATCHDOG)
    return grpcpy.aio.run(guarded())
