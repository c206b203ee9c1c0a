"""grpcpy.stats: what hooks see of real calls, both facades, with grpcio as
the peer on the other side (grpcpy client -> grpcio server; grpcio client ->
grpcpy server) and grpcpy on both sides."""
import asyncio
import gzip
import json
import threading
import time
from concurrent import futures

import grpc as grpcio
import pytest

import grpcpy
import grpcpy.aio
from grpcpy import stats

SERVICE = "test.Stats"
PAYLOAD = b"x" * 3000          # compresses well: wire sizes differ from sizes


class Recorder(stats.Hook):
    """Every event, in order, as plain tuples."""

    def __init__(self, messages=True):
        self.messages = messages
        self.events = []
        self.lock = threading.Lock()

    def add(self, *event):
        with self.lock:
            self.events.append(event)

    def client_call(self, info):
        self.add("client_call", info.method, info.registered, info.kind, info.target)
        hook = self

        class Call(stats.ClientCallStats):
            def attempt(self, number, transparent, previous, metadata):
                hook.add("attempt", number, transparent, previous)

                class Attempt(stats.AttemptStats):
                    def headers_in(self, metadata):
                        hook.add("a_headers_in", number)

                    def message_out(self, size, wire_size):
                        hook.add("a_message_out", number, size, wire_size)

                    def message_in(self, size, wire_size):
                        hook.add("a_message_in", number, size, wire_size)

                    def end(self, code, details, trailing, totals):
                        hook.add("a_end", number, code, totals.sent_messages, totals.sent_bytes,
                                 totals.received_messages, totals.received_bytes)
                return Attempt()

            def end(self, code, details, trailing, totals):
                hook.add("c_end", code, totals.attempts, totals.retries, totals.transparent_retries,
                         totals.sent_messages, totals.received_messages)
        return Call()

    def server_call(self, info):
        self.add("server_call", info.method, info.registered, info.kind, info.peer is not None)
        hook = self

        class Call(stats.ServerCallStats):
            def handler_enter(self):
                hook.add("s_enter", threading.current_thread().name)
                return "token"

            def handler_exit(self, token):
                hook.add("s_exit", token)

            def headers_out(self, metadata):
                hook.add("s_headers_out")

            def message_in(self, size, wire_size):
                hook.add("s_message_in", size, wire_size)

            def message_out(self, size, wire_size):
                hook.add("s_message_out", size, wire_size)

            def end(self, code, details, trailing, totals):
                hook.add("s_end", code, totals.sent_messages, totals.sent_bytes, totals.received_messages,
                         totals.received_bytes)
        return Call()

    def kinds(self, prefix):
        return [e for e in self.events if e[0].startswith(prefix)]


# -- servers: grpcio's, grpcpy's sync and aio, each with the same methods ------------

def _unary(request, context):
    if request == b"fail":
        context.abort(grpcio.StatusCode.NOT_FOUND if not isinstance(context, grpcpy.ServicerContext)
                      else grpcpy.StatusCode.NOT_FOUND, "no such thing")
    return request


def _stream(request, context):
    for _ in range(3):
        yield request


def _handlers(module):
    return module.method_handlers_generic_handler(SERVICE, {
        "Unary": module.unary_unary_rpc_method_handler(_unary),
        "Stream": module.unary_stream_rpc_method_handler(_stream),
    })


class _Server:
    def __init__(self, kind, hook=None):
        self.kind = kind
        options = [] if hook is None else [(stats.OPTION, hook)]
        if kind == "grpcio":
            self.server = grpcio.server(futures.ThreadPoolExecutor(4))
            self.server.add_generic_rpc_handlers((_handlers(grpcio),))
        else:
            self.server = grpcpy.server(futures.ThreadPoolExecutor(4), options=options)
            self.server.add_generic_rpc_handlers((_handlers(grpcpy),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self):
        self.server.stop(None)


@pytest.fixture
def grpcio_server():
    server = _Server("grpcio")
    yield server
    server.stop()


# -- clients ---------------------------------------------------------------------------

def _calls_sync(channel):
    unary = channel.unary_unary("/%s/Unary" % SERVICE, _registered_method=True)
    stream = channel.unary_stream("/%s/Stream" % SERVICE)
    out = [unary(PAYLOAD, timeout=10, compression=grpcpy.Compression.Gzip)]
    try:
        unary(b"fail", timeout=10)
    except grpcpy.RpcError as exc:
        out.append(exc.code())
    out.append(list(stream(b"s", timeout=10)))
    return out


def _calls_aio(target, options):
    async def run():
        async with grpcpy.aio.insecure_channel(target, options=options) as channel:
            unary = channel.unary_unary("/%s/Unary" % SERVICE, _registered_method=True)
            stream = channel.unary_stream("/%s/Stream" % SERVICE)
            out = [await unary(PAYLOAD, timeout=10, compression=grpcpy.Compression.Gzip)]
            try:
                await unary(b"fail", timeout=10)
            except grpcpy.aio.AioRpcError as exc:
                out.append(exc.code())
            out.append([m async for m in stream(b"s", timeout=10)])
            return out
    return asyncio.run(run())


def _run_client(facade, target, hook):
    options = [(stats.OPTION, hook)]
    if facade == "sync":
        with grpcpy.insecure_channel(target, options=options) as channel:
            return _calls_sync(channel)
    return _calls_aio(target, options)


def _wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("facade", ["sync", "aio"])
def test_client_hooks_against_grpcio(facade, grpcio_server):
    hook = Recorder()
    out = _run_client(facade, "127.0.0.1:%d" % grpcio_server.port, hook)
    assert out == [PAYLOAD, grpcpy.StatusCode.NOT_FOUND, [b"s"] * 3]
    target = "dns:///127.0.0.1:%d" % grpcio_server.port
    ok = grpcpy.StatusCode.OK
    ev = hook.events
    # the unary call: registered, one attempt, one message each way (the
    # request compressed with gzip: its wire size is the gzip size)
    wire = len(gzip.compress(PAYLOAD))
    assert ev[0] == ("client_call", "/test.Stats/Unary", True, "unary", target)
    assert ev[1] == ("attempt", 0, False, 0)
    assert ev[2][:3] == ("a_message_out", 0, len(PAYLOAD)) and abs(ev[2][3] - wire) < 40 and ev[2][3] < 200
    assert ev[3] == ("a_headers_in", 0)
    assert ev[4][:3] == ("a_message_in", 0, len(PAYLOAD))     # (grpcio answers uncompressed or gzip)
    assert ev[5][:5] == ("a_end", 0, ok, 1, ev[2][3]) and ev[5][5:] == (1, ev[4][3])
    assert ev[6] == ("c_end", ok, 1, 0, 0, 1, 1)
    # the failing call: trailers-only, so no headers and no response message
    assert ev[7] == ("client_call", "/test.Stats/Unary", True, "unary", target)
    assert ev[8:11] == [("attempt", 0, False, 0), ("a_message_out", 0, 4, 4),
                        ("a_end", 0, grpcpy.StatusCode.NOT_FOUND, 1, 4, 0, 0)]
    assert ev[11] == ("c_end", grpcpy.StatusCode.NOT_FOUND, 1, 0, 0, 1, 0)
    # the stream: not registered (no _registered_method), three messages in
    assert ev[12] == ("client_call", "/test.Stats/Stream", False, "server_stream", target)
    assert ev[13:16] == [("attempt", 0, False, 0), ("a_message_out", 0, 1, 1), ("a_headers_in", 0)]
    assert ev[16:19] == [("a_message_in", 0, 1, 1)] * 3
    assert ev[19] == ("a_end", 0, ok, 1, 1, 3, 3)
    assert ev[20] == ("c_end", ok, 1, 0, 0, 1, 3)
    assert len(ev) == 21


@pytest.mark.parametrize("facade", ["sync", "aio"])
def test_server_hooks_with_a_grpcio_client(facade):
    hook = Recorder()
    if facade == "sync":
        server = _Server("grpcpy", hook)
        stop = server.stop
        port = server.port
    else:
        port, stop = _aio_server(hook)
    try:
        with grpcio.insecure_channel("127.0.0.1:%d" % port) as channel:
            unary = channel.unary_unary("/%s/Unary" % SERVICE)
            assert unary(PAYLOAD, timeout=10, compression=grpcio.Compression.Gzip) == PAYLOAD
            with pytest.raises(grpcio.RpcError) as failed:
                unary(b"fail", timeout=10)
            assert failed.value.code() == grpcio.StatusCode.NOT_FOUND
            assert list(channel.unary_stream("/%s/Stream" % SERVICE)(b"s", timeout=10)) == [b"s"] * 3
            with pytest.raises(grpcio.RpcError) as missing:
                channel.unary_unary("/%s/Nope" % SERVICE)(b"q", timeout=10)
            assert missing.value.code() == grpcio.StatusCode.UNIMPLEMENTED
        assert _wait_for(lambda: len(hook.kinds("s_end")) == 4)
    finally:
        stop()
    ev = hook.events
    ok = grpcpy.StatusCode.OK
    calls = []
    for event in ev:
        if event[0] == "server_call":
            calls.append([event])
        else:
            calls[-1].append(event)
    # the generic handler's methods are not registered (gRFC A66: "other")
    unary, failing, stream, missing = calls
    wire = len(gzip.compress(PAYLOAD))
    assert unary[0] == ("server_call", "/test.Stats/Unary", False, "unary", True)
    names = [e[0] for e in unary]
    assert names == ["server_call", "s_message_in", "s_enter", "s_headers_out", "s_message_out", "s_exit",
                     "s_end"] or names == ["server_call", "s_message_in", "s_enter", "s_headers_out",
                                           "s_message_out", "s_end", "s_exit"]
    message_in = unary[1]
    assert message_in[1] == len(PAYLOAD) and abs(message_in[2] - wire) < 40
    end = [e for e in unary if e[0] == "s_end"][0]
    assert end[:3] == ("s_end", ok, 1) and end[4:] == (1, message_in[2])
    assert [e for e in failing if e[0] == "s_end"] == [("s_end", grpcpy.StatusCode.NOT_FOUND, 0, 0, 1, 4)]
    assert [e for e in stream if e[0] == "s_message_out"] == [("s_message_out", 1, 1)] * 3
    assert [e for e in stream if e[0] == "s_end"] == [("s_end", ok, 3, 3, 1, 1)]
    # refused at admission: begins and ends, no handler
    # (its request may have come in the same read as its headers)
    assert missing[0] == ("server_call", "/test.Stats/Nope", False, None, True)
    assert missing[1:] in ([("s_end", grpcpy.StatusCode.UNIMPLEMENTED, 0, 0, 0, 0)],
                           [("s_end", grpcpy.StatusCode.UNIMPLEMENTED, 0, 0, 1, 1)])


def _aio_server(hook):
    """A grpcpy.aio server in its own thread's loop: (port, stop)."""
    ready = threading.Event()
    box = {}

    async def unary(request, context):
        if request == b"fail":
            await context.abort(grpcpy.StatusCode.NOT_FOUND, "no such thing")
        return request

    async def stream(request, context):
        for _ in range(3):
            yield request

    async def main():
        server = grpcpy.aio.server(options=[(stats.OPTION, hook)])
        server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(SERVICE, {
            "Unary": grpcpy.unary_unary_rpc_method_handler(unary),
            "Stream": grpcpy.unary_stream_rpc_method_handler(stream),
        }),))
        box["port"] = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        box["stop"] = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        ready.set()
        await box["stop"].wait()
        await server.stop(None)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)

    def stop():
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
    return box["port"], stop


def test_a_call_that_never_reaches_a_connection_has_one_attempt():
    hook = Recorder()
    with grpcpy.insecure_channel("127.0.0.1:1", options=[(stats.OPTION, hook)]) as channel:
        with pytest.raises(grpcpy.RpcError) as failed:
            channel.unary_unary("/%s/Unary" % SERVICE)(b"q", timeout=5)
    assert failed.value.code() == grpcpy.StatusCode.UNAVAILABLE
    unavailable = grpcpy.StatusCode.UNAVAILABLE
    assert hook.events == [("client_call", "/test.Stats/Unary", False, "unary", "dns:///127.0.0.1:1"),
                           ("attempt", 0, False, 0), ("a_end", 0, unavailable, 0, 0, 0, 0),
                           ("c_end", unavailable, 1, 0, 0, 0, 0)]


def _fail_twice(grpcio_server):
    """/test.Retry/Call on the grpcio server fails its first two calls
    UNAVAILABLE; the service config that retries it (gRFC A6)."""
    failures = {"left": 2}

    class FailTwice(grpcio.GenericRpcHandler):
        def service(self, details):
            if details.method != "/test.Retry/Call":
                return None

            def handle(request, context):
                if failures["left"]:
                    failures["left"] -= 1
                    context.abort(grpcio.StatusCode.UNAVAILABLE, "try again")
                return request
            return grpcio.unary_unary_rpc_method_handler(handle)
    grpcio_server.server.add_generic_rpc_handlers((FailTwice(),))
    return {"methodConfig": [{"name": [{"service": "test.Retry"}], "retryPolicy": {
        "maxAttempts": 5, "initialBackoff": "0.01s", "maxBackoff": "0.05s", "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"]}}]}


def test_retries_are_attempts(grpcio_server):
    """A retryPolicy (gRFC A6) retrying UNAVAILABLE: the hook sees each
    attempt with grpc-previous-rpc-attempts, then the call once."""
    config = _fail_twice(grpcio_server)
    hook = Recorder(messages=False)
    options = [(stats.OPTION, hook), ("grpc.service_config", json.dumps(config))]
    with grpcpy.insecure_channel("127.0.0.1:%d" % grpcio_server.port, options=options) as channel:
        assert channel.unary_unary("/test.Retry/Call")(b"q", timeout=10) == b"q"
    unavailable, ok = grpcpy.StatusCode.UNAVAILABLE, grpcpy.StatusCode.OK
    assert [e for e in hook.events if e[0] != "a_headers_in"][1:] == [
        ("attempt", 0, False, 0), ("a_end", 0, unavailable, 1, 1, 0, 0),
        ("attempt", 1, False, 1), ("a_end", 1, unavailable, 1, 1, 0, 0),
        ("attempt", 2, False, 2), ("a_end", 2, ok, 1, 1, 1, 1),
        ("c_end", ok, 3, 2, 0, 1, 1)]


def test_a_hook_that_raises_never_fails_a_call(grpcio_server, caplog):
    class Broken(stats.Hook):
        def client_call(self, info):
            class Call(stats.ClientCallStats):
                def attempt(self, *args):
                    raise RuntimeError("broken hook")
            return Call()
    hook = Recorder()
    options = [(stats.OPTION, [Broken(), hook])]
    with grpcpy.insecure_channel("127.0.0.1:%d" % grpcio_server.port, options=options) as channel:
        unary = channel.unary_unary("/%s/Unary" % SERVICE)
        assert unary(b"a", timeout=10) == b"a"
        assert unary(b"b", timeout=10) == b"b"
    assert len(hook.kinds("c_end")) == 2
    assert "broken hook" in caplog.text


def test_global_hooks_apply_to_channels_and_servers_made_afterwards():
    hook = Recorder()
    before = grpcpy.insecure_channel("127.0.0.1:1")
    stats.register_global(hook)
    try:
        server = _Server("grpcpy")
        during = grpcpy.insecure_channel("127.0.0.1:%d" % server.port)
    finally:
        stats.deregister_global(hook)
    after = grpcpy.insecure_channel("127.0.0.1:%d" % server.port)
    try:
        assert before._stats_hooks == () and after._stats_hooks == ()
        assert during.unary_unary("/%s/Unary" % SERVICE)(b"q", timeout=10) == b"q"
        assert after.unary_unary("/%s/Unary" % SERVICE)(b"q", timeout=10) == b"q"
        assert _wait_for(lambda: len(hook.kinds("s_end")) == 2)
        assert len(hook.kinds("c_end")) == 1
    finally:
        for channel in (before, during, after):
            channel.close()
        server.stop()


def test_bad_hook_option_is_refused():
    with pytest.raises(TypeError, match="grpcpy.stats_hooks"):
        grpcpy.insecure_channel("127.0.0.1:1", options=[(stats.OPTION, object())])


def test_a_transparent_retry_is_an_attempt():
    """A stream above a GOAWAY's last-stream-id was never processed: the
    channel sends it again on a new connection (gRFC A6), and the hook sees
    that second attempt marked transparent."""
    from ..retry.h2server import RefusingServer
    server = RefusingServer("goaway")
    hook = Recorder(messages=False)
    try:
        with grpcpy.insecure_channel(server.target, options=[(stats.OPTION, hook)]) as channel:
            assert channel.unary_unary("/retry.Flaky/Unary")(b"once", timeout=10) == b"ok:once"
    finally:
        server.close()
    attempts = [e for e in hook.events if e[0] == "attempt"]
    assert attempts == [("attempt", 0, False, 0), ("attempt", 1, True, 0)]
    ends = [e for e in hook.events if e[0] == "a_end"]
    assert [e[:2] for e in ends] == [("a_end", 0), ("a_end", 1)] and ends[1][2] == grpcpy.StatusCode.OK
    assert hook.events[-1] == ("c_end", grpcpy.StatusCode.OK, 2, 0, 1, 1, 1)


def test_hedged_attempts_end_before_the_call(grpcio_server):
    """hedgingPolicy: the first request is held by the server, a hedge sent
    50 ms later is answered; every attempt ends (the loser CANCELLED)
    before the call's end, which counts the hedges."""
    seen = []
    release = threading.Event()

    class Slow(grpcio.GenericRpcHandler):
        def service(self, details):
            if details.method != "/test.Hedge/Call":
                return None

            def handle(request, context):
                seen.append(request)
                if len(seen) == 1:
                    release.wait(5)
                return request
            return grpcio.unary_unary_rpc_method_handler(handle)
    grpcio_server.server.add_generic_rpc_handlers((Slow(),))
    config = {"methodConfig": [{"name": [{"service": "test.Hedge"}], "hedgingPolicy": {
        "maxAttempts": 2, "hedgingDelay": "0.05s", "nonFatalStatusCodes": ["UNAVAILABLE"]}}]}
    hook = Recorder(messages=False)
    options = [(stats.OPTION, hook), ("grpc.service_config", json.dumps(config))]
    try:
        with grpcpy.insecure_channel("127.0.0.1:%d" % grpcio_server.port, options=options) as channel:
            assert channel.unary_unary("/test.Hedge/Call")(b"q", timeout=10) == b"q"
    finally:
        release.set()
    ok = grpcpy.StatusCode.OK
    assert [e for e in hook.events if e[0] == "attempt"] == [("attempt", 0, False, 0), ("attempt", 1, False, 1)]
    ends = {e[1]: e[2] for e in hook.events if e[0] == "a_end"}
    assert ends == {0: grpcpy.StatusCode.CANCELLED, 1: ok}
    assert hook.events[-1] == ("c_end", ok, 2, 0, 0, 1, 1)


def test_server_handler_runs_inside_handler_enter_and_exit():
    """handler_enter runs in the handler's own thread (sync) before it, and
    handler_exit after it, so a tracing context attached there is the
    handler's."""
    import contextvars
    current = contextvars.ContextVar("current", default=None)
    seen = []

    class Hook(stats.Hook):
        def server_call(self, info):
            class Call(stats.ServerCallStats):
                def handler_enter(self):
                    return current.set(info.method)

                def handler_exit(self, token):
                    current.reset(token)
            return Call()

    def handle(request, context):
        seen.append(current.get())
        return request
    server = grpcpy.server(futures.ThreadPoolExecutor(2), options=[(stats.OPTION, Hook())])
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "test.Ctx", {"Call": grpcpy.unary_unary_rpc_method_handler(handle)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpcio.insecure_channel("127.0.0.1:%d" % port) as channel:
            for _ in range(3):
                assert channel.unary_unary("/test.Ctx/Call")(b"q", timeout=10) == b"q"
    finally:
        server.stop(None)
    assert seen == ["/test.Ctx/Call"] * 3


@pytest.mark.parametrize("messages", [False, True], ids=["call-as-user", "observed-attempt"])
def test_a_refused_stream_sent_again_is_a_transparent_attempt(messages):
    """The server refuses the first stream (REFUSED_STREAM) before
    processing it, and the core sends the request again on the same
    connection: the hook sees attempt 0 end UNAVAILABLE and a transparent
    attempt 1 carry the call, each with its own figures."""
    from ..retry.h2server import RefusingServer
    server = RefusingServer("refuse")
    hook = Recorder(messages=messages)
    try:
        with grpcpy.insecure_channel(server.target, options=[(stats.OPTION, hook)]) as channel:
            assert channel.unary_unary("/retry.Flaky/Unary")(b"once", timeout=10) == b"ok:once"
    finally:
        server.close()
    assert [(n, what) for n, _, what in server.log] == [(0, "refused"), (0, "served")]
    ok, unavailable = grpcpy.StatusCode.OK, grpcpy.StatusCode.UNAVAILABLE
    events = [e for e in hook.events if e[0] in ("attempt", "a_end", "c_end")]
    assert events == [("attempt", 0, False, 0), ("a_end", 0, unavailable, 1, 4, 0, 0),
                      ("attempt", 1, True, 0), ("a_end", 1, ok, 1, 4, 1, 7),
                      ("c_end", ok, 2, 0, 1, 1, 1)]


class CallsOnly(stats.Hook):
    """A hook that wants calls, not attempts: the call layer then only
    counts the attempts (the first goes the everyday way)."""

    def __init__(self):
        self.ends = []

    def client_call(self, info):
        hook = self

        class Call(stats.ClientCallStats):
            def end(self, code, details, trailing, totals):
                hook.ends.append((code, totals.attempts, totals.retries, totals.transparent_retries,
                                  totals.hedges, totals.sent_messages, totals.received_messages))
        return Call()


def test_attempts_are_counted_for_hooks_that_want_only_calls(grpcio_server):
    """Retries (a retryPolicy), hedges, a transparent retry after GOAWAY and
    a refused stream the core sent again: the call's totals count them the
    same whether a hook records attempts or not."""
    from ..retry.h2server import RefusingServer
    config = _fail_twice(grpcio_server)
    ok = grpcpy.StatusCode.OK
    both = [CallsOnly(), Recorder(messages=False)]
    options = [(stats.OPTION, both), ("grpc.service_config", json.dumps(config))]
    with grpcpy.insecure_channel("127.0.0.1:%d" % grpcio_server.port, options=options) as channel:
        assert channel.unary_unary("/test.Retry/Call")(b"q", timeout=10) == b"q"
        assert channel.unary_unary("/%s/Unary" % SERVICE)(b"plain", timeout=10) == b"plain"
    assert both[0].ends == [(ok, 3, 2, 0, 0, 1, 1), (ok, 1, 0, 0, 0, 1, 1)]
    assert [e[:5] for e in both[1].events if e[0] == "c_end"] == [("c_end", ok, 3, 2, 0), ("c_end", ok, 1, 0, 0)]
    for mode in ("goaway", "refuse"):
        server = RefusingServer(mode)
        hook = CallsOnly()
        try:
            with grpcpy.insecure_channel(server.target, options=[(stats.OPTION, hook)]) as channel:
                assert channel.unary_unary("/retry.Flaky/Unary")(b"once", timeout=10) == b"ok:once"
        finally:
            server.close()
        assert hook.ends == [(ok, 2, 0, 1, 0, 1, 1)], mode


class Counting(stats.Tally):
    """A tally: its series count calls, codes and final figures."""

    def __init__(self):
        self.asked = []
        self.lock = threading.Lock()

    def series(self, info):
        self.asked.append((info.server, info.method, info.kind))
        tally = self

        class Series:
            def __init__(self):
                self.started_count = 0
                self.ends = []

            def started(self, call):
                with tally.lock:
                    self.started_count += 1

            def ended(self, call, code, duration):
                with tally.lock:
                    self.ends.append((code, call.figures(), duration > 0))
        series = Series()
        self.made = getattr(self, "made", {})
        self.made[info.server, info.method] = series
        return series


@pytest.mark.parametrize("facade", ["sync", "aio"])
def test_a_tally_is_asked_once_per_method_and_told_of_each_call(facade):
    tally = Counting()
    if facade == "sync":
        server = _Server("grpcpy", tally)
        stop, port = server.stop, server.port
    else:
        port, stop = _aio_server(tally)
    try:
        with grpcpy.insecure_channel("127.0.0.1:%d" % port, options=[(stats.OPTION, tally)]) as channel:
            unary = channel.unary_unary("/%s/Unary" % SERVICE)
            for _ in range(3):
                assert unary(b"abc", timeout=10) == b"abc"
            with pytest.raises(grpcpy.RpcError):
                unary(b"fail", timeout=10)
            assert list(channel.unary_stream("/%s/Stream" % SERVICE)(b"s", timeout=10)) == [b"s"] * 3
            for _ in range(2):
                with pytest.raises(grpcpy.RpcError):
                    channel.unary_unary("/%s/Nope" % SERVICE)(b"q", timeout=10)
        assert _wait_for(lambda: len(tally.made[True, "/test.Stats/Unary"].ends) == 4
                         and len(tally.made[True, "/test.Stats/Nope"].ends) >= 1)
    finally:
        stop()
    ok, not_found = grpcpy.StatusCode.OK, grpcpy.StatusCode.NOT_FOUND
    # asked once per side and method; a server method with no handler on every call
    assert sorted(tally.asked, key=repr) == sorted([
        (False, "/test.Stats/Unary", "unary"), (False, "/test.Stats/Stream", "server_stream"),
        (False, "/test.Stats/Nope", "unary"), (True, "/test.Stats/Unary", "unary"),
        (True, "/test.Stats/Stream", "server_stream"), (True, "/test.Stats/Nope", None),
        (True, "/test.Stats/Nope", None)], key=repr)
    for side in (False, True):
        unary = tally.made[side, "/test.Stats/Unary"]
        assert unary.started_count == 4
        assert [end[0] for end in unary.ends] == [ok, ok, ok, not_found]
        sent_or_received = [(f[0], f[2]) for _, f, _ in unary.ends]
        assert sent_or_received[:3] == [(1, 1)] * 3, sent_or_received
        assert all(positive for _, _, positive in unary.ends)
        stream = tally.made[side, "/test.Stats/Stream"]
        assert [(end[0], end[1][0], end[1][2]) for end in stream.ends] == [
            (ok, 1, 3) if not side else (ok, 3, 1)]
