"""The server and client processes that perf/bench.py starts: one gRPC
implementation (or the raw floor) per process, serving or calling the same
three methods with raw bytes (no serializers anywhere).

    python perf/bench_peers.py server IMPL
    python perf/bench_peers.py client IMPL

bench.py drives them over stdin/stdout, one JSON object per line:

  server  prints {"port", "loop", "pid"} once listening on 127.0.0.1:<free
          port>; then answers "cpu" with its CPU seconds (user, system;
          resource.getrusage) and exits on "quit" or when stdin closes (so a
          dead harness leaves no server behind).
  client  prints {"ready", "loop"}; then for each command line
          {"scenario", "target", ...} runs one sample on a fresh channel and
          prints {"ok": true, ...figures} or {"ok": false, "error"}. The "cpu"
          scenario prints {"phase": "warm"} after its warm-up and waits for a
          "go" line, so that the harness can read the server's CPU clock at
          the start of the measured calls.

Methods (every message is raw bytes in a 5-byte length-prefixed gRPC frame):
  /bench.Bench/Unary   unary-unary echo
  /bench.Bench/Stream  unary-stream: the request is a decimal count N; the
                       server sends N messages of SMALL
  /bench.Bench/Bidi    stream-stream echo, message by message
The raw floor speaks the same 5-byte-prefixed messages over bare TCP with no
HTTP/2: flag byte 0 = echo this message, 1 = send back N messages of SMALL.
"""
import asyncio
import collections
import json
import os
import resource
import socket
import struct
import sys
import threading
import time
import traceback

IMPLS = ("grpcpy-sync", "grpcpy-aio-uvloop", "grpcpy-aio-asyncio", "grpcio-sync", "grpcio-aio", "grpclib",
         "raw-floor")
# run only when named in --only: grpcpy's channels under round_robin (one
# backend), to show what the policy's pick costs next to pick_first; and
# grpcpy with observability on, client and server (perf/observe.py):
# OpenTelemetry metrics (-otel) or Prometheus metrics (-prom)
EXTRA_IMPLS = ("grpcpy-sync-rr", "grpcpy-aio-uvloop-rr", "grpcpy-sync-otel", "grpcpy-aio-uvloop-otel",
               "grpcpy-sync-prom", "grpcpy-aio-uvloop-prom")
SYNC_IMPLS = ("grpcpy-sync", "grpcio-sync", "grpcpy-sync-rr", "grpcpy-sync-otel", "grpcpy-sync-prom")
_OBSERVE = {"-otel": "otel", "-prom": "prometheus"}


def _observed(impl):
    """Server or channel options installing impl's stats hooks."""
    from observe import stats_options
    return stats_options(_OBSERVE.get(impl[impl.rfind("-"):]))


def channel_options(impl):
    options = [("grpc.lb_policy_name", "round_robin")] if impl.endswith("-rr") else []
    return (options + _observed(impl)) or None


def server_options(impl):
    return _observed(impl) or None

SERVICE = "bench.Bench"
UNARY = "/bench.Bench/Unary"
STREAM = "/bench.Bench/Stream"
BIDI = "/bench.Bench/Bidi"
SMALL = b"0123456789abcdef"          # the small message: 16 bytes
BIG = bytes(range(256)) * 4096       # the 1 MiB message
SYNC_SERVER_THREADS = 32

perf = time.perf_counter


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def cpu_times():
    """CPU seconds of this process, every thread (getrusage: microsecond
    resolution, where os.times counts 10 ms clock ticks)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"user": ru.ru_utime, "system": ru.ru_stime}


def loop_name(loop):
    return type(loop).__module__.split(".")[0]


# The event loop each asyncio implementation runs on (bench.py's labels say it).
LOOP_OF = {"grpcpy-aio-uvloop": "uvloop", "grpcpy-aio-uvloop-rr": "uvloop", "grpcpy-aio-uvloop-otel": "uvloop",
           "grpcpy-aio-uvloop-prom": "uvloop", "grpcpy-aio-asyncio": "asyncio", "grpcio-aio": "asyncio",
           "grpclib": "uvloop", "raw-floor": "uvloop"}


def new_loop(impl):
    """The event loop each implementation runs on."""
    if LOOP_OF[impl] == "uvloop":
        import uvloop   # ImportError, not a silent asyncio loop, when it is missing
        return uvloop.new_event_loop()
    return asyncio.SelectorEventLoop()


def running_loop_name(impl):
    """The running loop's name, checked against the implementation's label:
    a sample or server on the wrong loop fails instead of being reported."""
    name = loop_name(asyncio.get_running_loop())
    if name != LOOP_OF[impl]:
        raise RuntimeError("%s runs on %s, not %s" % (impl, name, LOOP_OF[impl]))
    return name


# ---------------------------------------------------------------------------
# servers

def grpc_module(impl):
    if impl.startswith("grpcpy"):
        import grpcpy
        return grpcpy
    import grpc
    return grpc


def sync_handlers(m):
    def unary(request, context):
        return request

    def stream(request, context):
        msg = SMALL
        for _ in range(int(request)):
            yield msg

    def bidi(request_iterator, context):
        for request in request_iterator:
            yield request

    return m.method_handlers_generic_handler(SERVICE, {
        "Unary": m.unary_unary_rpc_method_handler(unary),
        "Stream": m.unary_stream_rpc_method_handler(stream),
        "Bidi": m.stream_stream_rpc_method_handler(bidi),
    })


def aio_handlers(m):
    async def unary(request, context):
        return request

    async def stream(request, context):
        msg = SMALL
        for _ in range(int(request)):
            yield msg

    async def bidi(request_iterator, context):
        async for request in request_iterator:
            yield request

    return m.method_handlers_generic_handler(SERVICE, {
        "Unary": m.unary_unary_rpc_method_handler(unary),
        "Stream": m.unary_stream_rpc_method_handler(stream),
        "Bidi": m.stream_stream_rpc_method_handler(bidi),
    })


def control_loop():
    """Answer the harness on stdin until it says quit or goes away."""
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "cpu":
            reply(cpu_times())
        elif cmd == "quit":
            break
    sys.stdout.flush()
    os._exit(0)


def serve_sync(impl):
    from concurrent import futures
    m = grpc_module(impl)
    server = m.server(futures.ThreadPoolExecutor(max_workers=SYNC_SERVER_THREADS), options=server_options(impl))
    server.add_generic_rpc_handlers((sync_handlers(m),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    reply({"port": port, "loop": None, "pid": os.getpid()})
    control_loop()


async def serve_aio(impl):
    if impl.startswith("grpcpy"):
        import grpcpy
        import grpcpy.aio as aio
        handlers = aio_handlers(grpcpy)
    else:
        import grpc
        import grpc.aio as aio
        handlers = aio_handlers(grpc)
    server = aio.server(options=server_options(impl))
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    reply({"port": port, "loop": running_loop_name(impl), "pid": os.getpid()})
    await asyncio.Event().wait()


class RawCodec:
    """grpclib codec for raw bytes: content-type application/grpc+proto, no
    (de)serialization."""
    __content_subtype__ = "proto"

    def encode(self, message, message_type):
        return message

    def decode(self, data, message_type):
        return data


def grpclib_codec():
    from grpclib.encoding.base import CodecBase
    return type("RawBytesCodec", (RawCodec, CodecBase), {})()


class GrpclibService:
    """A grpclib servicer written without code generation."""

    def __mapping__(self):
        from grpclib.const import Cardinality, Handler
        return {
            UNARY: Handler(self.unary, Cardinality.UNARY_UNARY, bytes, bytes),
            STREAM: Handler(self.stream, Cardinality.UNARY_STREAM, bytes, bytes),
            BIDI: Handler(self.bidi, Cardinality.STREAM_STREAM, bytes, bytes),
        }

    async def unary(self, stream):
        request = await stream.recv_message()
        await stream.send_message(request)

    async def stream(self, stream):
        request = await stream.recv_message()
        send, msg = stream.send_message, SMALL
        for _ in range(int(request)):
            await send(msg)

    async def bidi(self, stream):
        async for request in stream:
            await stream.send_message(request)


async def serve_grpclib(impl):
    from grpclib.server import Server
    server = Server([GrpclibService()], codec=grpclib_codec())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await server.start(sock=sock)
    reply({"port": sock.getsockname()[1], "loop": running_loop_name(impl), "pid": os.getpid()})
    await asyncio.Event().wait()


_HEADER = struct.Struct(">BI")
_pack = _HEADER.pack
_unpack_from = _HEADER.unpack_from


class RawServerProtocol(asyncio.Protocol):
    """The floor's server: 5-byte-prefixed messages, no HTTP/2."""

    def connection_made(self, transport):
        self.transport = transport
        self.buf = bytearray()
        self.can_write = asyncio.Event()
        self.can_write.set()

    def pause_writing(self):
        self.can_write.clear()

    def resume_writing(self):
        self.can_write.set()

    def data_received(self, data):
        buf = self.buf
        buf += data
        pos, end, out = 0, len(buf), []
        while end - pos >= 5:
            flag, n = _unpack_from(buf, pos)
            if end - pos - 5 < n:
                break
            msg = buf[pos + 5:pos + 5 + n]
            pos += 5 + n
            if flag == 0:
                out.append(_pack(0, n))
                out.append(msg)
            else:
                asyncio.get_running_loop().create_task(self.send_many(int(msg)))
        del buf[:pos]
        if out:
            if len(out) == 2 and len(out[1]) >= 4096:
                self.transport.writelines(out)
            else:
                self.transport.write(b"".join(out))

    async def send_many(self, count):
        # each message framed on its own, written in 64 KiB batches under
        # the transport's flow control
        out, size, msg, transport = [], 0, SMALL, self.transport
        for _ in range(count):
            out.append(_pack(0, len(msg)))
            out.append(msg)
            size += 5 + len(msg)
            if size >= 65536:
                transport.write(b"".join(out))
                out, size = [], 0
                if not self.can_write.is_set():
                    await self.can_write.wait()
        if out:
            transport.write(b"".join(out))


async def serve_raw(impl):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(RawServerProtocol, "127.0.0.1", 0)
    reply({"port": server.sockets[0].getsockname()[1], "loop": running_loop_name(impl), "pid": os.getpid()})
    await asyncio.Event().wait()


def run_server(impl):
    if impl in SYNC_IMPLS:
        return serve_sync(impl)
    threading.Thread(target=control_loop, name="control", daemon=True).start()
    loop = new_loop(impl)
    asyncio.set_event_loop(loop)
    main = {"grpclib": serve_grpclib, "raw-floor": serve_raw}.get(impl, serve_aio)
    loop.run_until_complete(main(impl))


# ---------------------------------------------------------------------------
# clients: figures shared by every implementation

def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[i]


def latency_figures(lat, elapsed):
    lat.sort()
    return {"rate": len(lat) / elapsed, "calls": len(lat), "seconds": elapsed,
            "p50_us": percentile(lat, 50) * 1e6, "p99_us": percentile(lat, 99) * 1e6}


def wait_go():
    line = sys.stdin.readline()
    if line.strip() != "go":
        raise RuntimeError("expected 'go' from the harness, got %r" % line)


def check(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r (%d bytes), expected %d bytes" % (
            what, got[:32] if isinstance(got, (bytes, bytearray)) else got,
            len(got) if isinstance(got, (bytes, bytearray)) else -1, len(want)))


# --- asyncio clients: each implementation gives the same four operations

class AioOps:
    """unary(msg) -> msg; stream(n) -> messages received; bidi() -> an async
    context manager giving (write, read); close()."""


async def grpc_aio_ops(impl, target):
    if impl.startswith("grpcpy"):
        import grpcpy.aio as aio
    else:
        import grpc.aio as aio
    ch = aio.insecure_channel(target, channel_options(impl))
    ops = AioOps()
    ops.unary = ch.unary_unary(UNARY)
    us = ch.unary_stream(STREAM)
    ss = ch.stream_stream(BIDI)

    async def stream(n):
        count = 0
        async for _ in us(b"%d" % n):
            count += 1
        return count

    class Bidi:
        async def __aenter__(self):
            self.call = ss()
            return self.call.write, self.call.read

        async def __aexit__(self, *exc):
            if exc[0] is None:
                await self.call.done_writing()
                while True:
                    m = await self.call.read()
                    if m is aio.EOF:
                        break
                code = await self.call.code()
                if code.name != "OK":
                    raise RuntimeError("bidi call ended with %s" % code)
            else:
                self.call.cancel()

    ops.stream = stream
    ops.bidi = Bidi
    ops.close = ch.close
    return ops


async def grpclib_ops(impl, target):
    from grpclib.client import Channel, StreamStreamMethod, UnaryStreamMethod, UnaryUnaryMethod
    host, port = target.rsplit(":", 1)
    ch = Channel(host, int(port), codec=grpclib_codec())
    ops = AioOps()
    ops.unary = UnaryUnaryMethod(ch, UNARY, bytes, bytes)
    us = UnaryStreamMethod(ch, STREAM, bytes, bytes)
    ss = StreamStreamMethod(ch, BIDI, bytes, bytes)

    async def stream(n):
        count = 0
        async with us.open() as st:
            await st.send_message(b"%d" % n, end=True)
            async for _ in st:
                count += 1
        return count

    class Bidi:
        async def __aenter__(self):
            self.cm = ss.open()
            st = self.st = await self.cm.__aenter__()
            return st.send_message, st.recv_message

        async def __aexit__(self, *exc):
            if exc[0] is None:
                await self.st.end()
                async for _ in self.st:
                    pass
            return await self.cm.__aexit__(*exc)

    async def close():
        ch.close()

    ops.stream = stream
    ops.bidi = Bidi
    ops.close = close
    return ops


class RawClientProtocol(asyncio.Protocol):
    """The floor's client: replies come back in order, so a FIFO of futures
    matches them to calls."""

    def __init__(self):
        self.buf = bytearray()
        self.waiters = collections.deque()
        self.expect = 0           # messages still owed to a stream(n)
        self.stream_done = None
        self.lost = None

    def connection_made(self, transport):
        self.transport = transport
        self.create_future = asyncio.get_running_loop().create_future

    def connection_lost(self, exc):
        self.lost = exc or ConnectionResetError("raw floor connection closed")
        for fut in self.waiters:
            if not fut.done():
                fut.set_exception(self.lost)

    def data_received(self, data):
        buf = self.buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 5:
            _, n = _unpack_from(buf, pos)
            if end - pos - 5 < n:
                break
            msg = buf[pos + 5:pos + 5 + n]
            pos += 5 + n
            if self.expect:
                self.expect -= 1
                if not self.expect:
                    self.stream_done.set_result(None)
            else:
                self.waiters.popleft().set_result(msg)
        del buf[:pos]

    def unary(self, msg):
        fut = self.create_future()
        self.waiters.append(fut)
        if len(msg) < 4096:
            self.transport.write(_pack(0, len(msg)) + msg)
        else:
            self.transport.writelines((_pack(0, len(msg)), msg))
        return fut

    async def write(self, msg):
        self.pending = self.unary(msg)

    def read(self):
        return self.pending

    async def stream(self, n):
        self.expect = n
        self.stream_done = self.create_future()
        req = b"%d" % n
        self.transport.write(_pack(1, len(req)) + req)
        await self.stream_done
        return n


async def raw_ops(impl, target):
    host, port = target.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(RawClientProtocol, host, int(port))
    ops = AioOps()
    ops.unary = proto.unary
    ops.stream = proto.stream

    class Bidi:
        async def __aenter__(self):
            return proto.write, proto.read

        async def __aexit__(self, *exc):
            pass

    async def close():
        proto.transport.close()

    ops.bidi = Bidi
    ops.close = close
    return ops


async def aio_sample(impl, cmd):
    running_loop_name(impl)
    make = {"grpclib": grpclib_ops, "raw-floor": raw_ops}.get(impl, grpc_aio_ops)
    ops = await make(impl, cmd["target"])
    try:
        return await AIO_SCENARIOS[cmd["scenario"]](ops, cmd)
    finally:
        await ops.close()


async def aio_warm(call, msg, n):
    for _ in range(n):
        check(await call(msg), msg, "unary echo")


async def aio_unary(ops, cmd):
    call, msg = ops.unary, SMALL
    await aio_warm(call, msg, cmd["warmup"])
    lat = []
    add = lat.append
    t_end = perf() + cmd["duration"]
    t0 = b = perf()
    while b < t_end:
        a = perf()
        await call(msg)
        b = perf()
        add(b - a)
    return latency_figures(lat, b - t0)


async def aio_unary64(ops, cmd):
    call, msg = ops.unary, SMALL
    await aio_warm(call, msg, cmd["warmup"])
    done = 0

    async def worker():
        nonlocal done
        while perf() < t_end:
            await call(msg)
            done += 1

    t_end = perf() + cmd["duration"]
    t0 = perf()
    await asyncio.gather(*[worker() for _ in range(cmd["concurrency"])])
    elapsed = perf() - t0
    return {"rate": done / elapsed, "calls": done, "seconds": elapsed}


async def aio_stream(ops, cmd):
    check(await ops.stream(100), 100, "warm-up stream")
    n = cmd["count"]
    t0 = perf()
    got = await ops.stream(n)
    elapsed = perf() - t0
    check(got, n, "messages streamed")
    return {"rate": n / elapsed, "messages": n, "seconds": elapsed}


async def aio_bidi(ops, cmd):
    msg = SMALL
    async with ops.bidi() as (write, read):
        for _ in range(cmd["warmup"]):
            await write(msg)
            check(await read(), msg, "bidi echo")
        n = 0
        t_end = perf() + cmd["duration"]
        t0 = b = perf()
        while b < t_end:
            await write(msg)
            await read()
            n += 1
            b = perf()
    return {"rate": n / (b - t0), "round_trips": n, "seconds": b - t0}


async def aio_mib(ops, cmd):
    call, msg = ops.unary, BIG
    await aio_warm(call, msg, 2)
    n = 0
    t_end = perf() + cmd["duration"]
    t0 = b = perf()
    while b < t_end or n < 3:
        await call(msg)
        n += 1
        b = perf()
    return {"rate": n * len(msg) / (1 << 20) / (b - t0), "calls": n, "seconds": b - t0}


async def aio_cpu(ops, cmd):
    call, msg = ops.unary, SMALL
    await aio_warm(call, msg, cmd["warmup"])
    reply({"phase": "warm"})
    wait_go()
    n = cmd["count"]
    c0, t0 = cpu_times(), perf()
    for _ in range(n):
        await call(msg)
    c1, t1 = cpu_times(), perf()
    return {"calls": n, "seconds": t1 - t0, "user": c1["user"] - c0["user"], "system": c1["system"] - c0["system"]}


async def aio_check(ops, cmd):
    payload = bytes.fromhex(cmd["payload"])
    check(await ops.unary(payload), payload, "unary echo of the h2load request")
    return {}


AIO_SCENARIOS = {"unary": aio_unary, "unary64": aio_unary64, "stream": aio_stream, "bidi": aio_bidi,
                 "mib": aio_mib, "cpu": aio_cpu, "check": aio_check}


# --- sync clients (grpcpy and grpc)

def sync_sample(impl, cmd):
    m = grpc_module(impl)
    ch = m.insecure_channel(cmd["target"], channel_options(impl))
    try:
        m.channel_ready_future(ch).result(timeout=10)
        return SYNC_SCENARIOS[cmd["scenario"]](ch, cmd)
    finally:
        ch.close()


def sync_warm(call, msg, n):
    for _ in range(n):
        check(call(msg), msg, "unary echo")


def sync_unary(ch, cmd):
    call, msg = ch.unary_unary(UNARY), SMALL
    sync_warm(call, msg, cmd["warmup"])
    lat = []
    add = lat.append
    t_end = perf() + cmd["duration"]
    t0 = b = perf()
    while b < t_end:
        a = perf()
        call(msg)
        b = perf()
        add(b - a)
    return latency_figures(lat, b - t0)


def sync_unary64(ch, cmd):
    call, msg = ch.unary_unary(UNARY), SMALL
    sync_warm(call, msg, cmd["warmup"])
    threads = cmd["threads"]
    counts = [0] * threads
    errors = []
    start = threading.Barrier(threads + 1)
    t_end = [0.0]

    def worker(i):
        try:
            start.wait()
            n = 0
            while perf() < t_end[0]:
                call(msg)
                n += 1
            counts[i] = n
        except BaseException as exc:  # reported, not swallowed
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    t_end[0] = perf() + cmd["duration"]
    t0 = perf()
    start.wait()
    for t in pool:
        t.join()
    elapsed = perf() - t0
    if errors:
        raise errors[0]
    return {"rate": sum(counts) / elapsed, "calls": sum(counts), "seconds": elapsed}


def sync_stream(ch, cmd):
    us = ch.unary_stream(STREAM)
    check(sum(1 for _ in us(b"100")), 100, "warm-up stream")
    n = cmd["count"]
    t0 = perf()
    got = 0
    for _ in us(b"%d" % n):
        got += 1
    elapsed = perf() - t0
    check(got, n, "messages streamed")
    return {"rate": n / elapsed, "messages": n, "seconds": elapsed}


def sync_bidi(ch, cmd):
    import queue
    q = queue.SimpleQueue()
    responses = ch.stream_stream(BIDI)(iter(q.get, None))
    put, msg = q.put, SMALL
    get = responses.__next__
    for _ in range(cmd["warmup"]):
        put(msg)
        check(get(), msg, "bidi echo")
    n = 0
    t_end = perf() + cmd["duration"]
    t0 = b = perf()
    while b < t_end:
        put(msg)
        get()
        n += 1
        b = perf()
    put(None)
    for _ in responses:
        pass
    return {"rate": n / (b - t0), "round_trips": n, "seconds": b - t0}


def sync_mib(ch, cmd):
    call, msg = ch.unary_unary(UNARY), BIG
    sync_warm(call, msg, 2)
    n = 0
    t_end = perf() + cmd["duration"]
    t0 = b = perf()
    while b < t_end or n < 3:
        call(msg)
        n += 1
        b = perf()
    return {"rate": n * len(msg) / (1 << 20) / (b - t0), "calls": n, "seconds": b - t0}


def sync_cpu(ch, cmd):
    call, msg = ch.unary_unary(UNARY), SMALL
    sync_warm(call, msg, cmd["warmup"])
    reply({"phase": "warm"})
    wait_go()
    n = cmd["count"]
    c0, t0 = cpu_times(), perf()
    for _ in range(n):
        call(msg)
    c1, t1 = cpu_times(), perf()
    return {"calls": n, "seconds": t1 - t0, "user": c1["user"] - c0["user"], "system": c1["system"] - c0["system"]}


def sync_check(ch, cmd):
    payload = bytes.fromhex(cmd["payload"])
    check(ch.unary_unary(UNARY)(payload), payload, "unary echo of the h2load request")
    return {}


SYNC_SCENARIOS = {"unary": sync_unary, "unary64": sync_unary64, "stream": sync_stream, "bidi": sync_bidi,
                  "mib": sync_mib, "cpu": sync_cpu, "check": sync_check}


def run_client(impl):
    loop = None
    if impl not in SYNC_IMPLS:
        loop = new_loop(impl)
        asyncio.set_event_loop(loop)
    reply({"ready": True, "loop": loop_name(loop) if loop else None, "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            if loop is None:
                result = sync_sample(impl, cmd)
            else:
                result = loop.run_until_complete(aio_sample(impl, cmd))
            result["ok"] = True
        except BaseException as exc:
            result = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc),
                      "traceback": traceback.format_exc()}
        reply(result)
    os._exit(0)


def watch_parent():
    """Exit when the harness that started this process is gone, even in the
    middle of a sample."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def main(argv):
    role, impl = argv
    threading.Thread(target=watch_parent, name="watch-parent", daemon=True).start()
    if impl not in IMPLS + EXTRA_IMPLS:
        raise SystemExit("unknown implementation %r (one of %s)" % (impl, ", ".join(IMPLS)))
    {"server": run_server, "client": run_client}[role](impl)


if __name__ == "__main__":
    main(sys.argv[1:])
