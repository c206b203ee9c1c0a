"""Programs the I/O-model tests run in a process of their own (thread and
descriptor counts must not see other tests' threads; fork and gevent must
start clean). Each prints one JSON line on stdout.

    python io_programs.py dropped N     N channels dropped without close()
    python io_programs.py idle N        N idle HTTP/2 connections to a server
    python io_programs.py fork          fork with a channel in use
    python io_programs.py aio-fork      the same with an aio channel
    python io_programs.py gevent N      N greenlet calls, monkey-patched
"""
import gc
import json
import os
import sys
import threading
import time

if len(sys.argv) > 1 and sys.argv[1] == "gevent":
    from gevent import monkey
    monkey.patch_all()

import concurrent.futures  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402

import grpcpy  # noqa: E402

METHOD = "/t.S/Echo"


def fds():
    return len(os.listdir("/proc/self/fd"))


def threads():
    return threading.active_count()


def serve(workers=4):
    def echo(request, context):
        return request

    handler = grpcpy.method_handlers_generic_handler("t.S", {"Echo": grpcpy.unary_unary_rpc_method_handler(echo)})
    server = grpcpy.server(concurrent.futures.ThreadPoolExecutor(workers), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, "127.0.0.1:%d" % port


def settle(want_threads, want_fds, limit=10.0):
    """Wait (bounded) for the counts to come back down: closes finish on
    the loop and the peer, not synchronously."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        gc.collect()
        if threads() <= want_threads and fds() <= want_fds:
            break
        time.sleep(0.05)
    return threads(), fds()


def dropped(n):
    server, target = serve()
    # the loop and the server exist before the baseline
    with grpcpy.insecure_channel(target) as ch:
        ch.unary_unary(METHOD)(b"x", timeout=10)
    base_threads, base_fds = settle(0, 0, limit=1.0)
    for _ in range(n):
        ch = grpcpy.insecure_channel(target)
        assert ch.unary_unary(METHOD)(b"x", timeout=10) == b"x"
        del ch
    peak_threads, peak_fds = threads(), fds()
    end_threads, end_fds = settle(base_threads, base_fds)
    server.stop(None)
    return {"base_threads": base_threads, "base_fds": base_fds, "peak_threads": peak_threads,
            "peak_fds": peak_fds, "threads": end_threads, "fds": end_fds}


def _preface():
    # the client preface and an empty SETTINGS frame: an HTTP/2 connection
    return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def idle(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * n + 200 and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * n + 1000), hard))
    server, target = serve()
    with grpcpy.insecure_channel(target) as ch:
        ch.unary_unary(METHOD)(b"x", timeout=10)
    base_threads, base_fds = settle(0, 0, limit=1.0)
    host, port = target.split(":")
    clients = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        s.sendall(_preface())
        clients.append(s)
    end = time.monotonic() + 30
    while len(server._connections) < n and time.monotonic() < end:
        time.sleep(0.05)
    # every connection answered with the server's SETTINGS
    answered = 0
    for s in clients:
        s.settimeout(10)
        if s.recv(9):
            answered += 1
    connected = len(server._connections)
    with grpcpy.insecure_channel(target) as ch:
        works = ch.unary_unary(METHOD)(b"y", timeout=10) == b"y"
    result = {"base_threads": base_threads, "base_fds": base_fds, "threads": threads(), "fds": fds(),
              "connections": connected, "answered": answered, "works": works}
    for s in clients:
        s.close()
    server.stop(None)
    return result


def fork():
    server, target = serve()
    ch = grpcpy.insecure_channel(target)
    call = ch.unary_unary(METHOD)
    assert call(b"before", timeout=10) == b"before"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        # the child: the inherited channel, then a new one
        os.close(r)
        out = {}
        start = time.monotonic()
        try:
            out["inherited"] = call(b"child", timeout=5).decode()
        except grpcpy.RpcError as exc:
            out["inherited"] = "error %s: %s" % (exc.code(), exc.details())
        out["inherited_seconds"] = time.monotonic() - start
        try:
            with grpcpy.insecure_channel(target) as fresh:
                out["new"] = fresh.unary_unary(METHOD)(b"new", timeout=5).decode()
        except grpcpy.RpcError as exc:
            out["new"] = "error %s: %s" % (exc.code(), exc.details())
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        data = os.read(r, 65536)
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    child = json.loads(b"".join(chunks) or b"{}")
    ok = 0
    for i in range(50):
        if call(b"%d" % i, timeout=10) == b"%d" % i:
            ok += 1
    ch.close()
    server.stop(None)
    return {"child": child, "child_status": status, "parent_ok": ok}


def aio_fork():
    """An aio channel used in the parent, then in a child after fork."""
    import asyncio
    import grpcpy.aio
    server, target = serve()
    holder = {}

    async def parent_calls(n, tag):
        if "ch" not in holder:
            holder["ch"] = grpcpy.aio.insecure_channel(target)
        call = holder["ch"].unary_unary(METHOD)
        return sum([1 for i in range(n) if await call(b"%s%d" % (tag, i), timeout=10) == b"%s%d" % (tag, i)])

    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(parent_calls(1, b"a")) == 1
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out = {}

        async def child():
            start = time.monotonic()
            try:
                out["inherited"] = (await holder["ch"].unary_unary(METHOD)(b"c", timeout=5)).decode()
            except grpcpy.aio.AioRpcError as exc:
                out["inherited"] = "error %s: %s" % (exc.code(), exc.details())
            out["inherited_seconds"] = time.monotonic() - start
            await holder["ch"].close()
            async with grpcpy.aio.insecure_channel(target) as fresh:
                out["new"] = (await fresh.unary_unary(METHOD)(b"new", timeout=5)).decode()
        asyncio.run(child())
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    _, status = os.waitpid(pid, 0)
    ok = loop.run_until_complete(parent_calls(50, b"p"))
    loop.run_until_complete(holder["ch"].close())
    server.stop(None)
    return {"child": json.loads(data or b"{}"), "child_status": status, "parent_ok": ok}


def gevent_calls(n):
    import gevent
    server, target = serve(workers=n)
    ch = grpcpy.insecure_channel(target)
    call = ch.unary_unary(METHOD)
    jobs = [gevent.spawn(call, b"%d" % i, timeout=20) for i in range(n)]
    gevent.joinall(jobs, timeout=30)
    got = [job.value for job in jobs]
    ch.close()
    server.stop(None)
    return {"ok": sum(1 for i, v in enumerate(got) if v == b"%d" % i), "n": n}


def main():
    mode = sys.argv[1]
    if mode == "dropped":
        out = dropped(int(sys.argv[2]))
    elif mode == "idle":
        out = idle(int(sys.argv[2]))
    elif mode == "fork":
        out = fork()
    elif mode == "aio-fork":
        out = aio_fork()
    else:
        out = gevent_calls(int(sys.argv[2]))
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
