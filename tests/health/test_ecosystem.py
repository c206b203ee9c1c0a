"""The real grpcio-health-checking package on grpcpy, through
install_as_grpc(), in a fresh interpreter where grpcio itself is never
loaded: its sync servicer on grpcpy's sync server (its non-blocking Watch
included: it holds no thread) and its asyncio servicer on grpcpy.aio."""
import json
import os
import subprocess
import sys
import textwrap

import grpcpy

REPO = os.path.dirname(os.path.abspath(grpcpy.__file__ + "/.."))

PROGRAM = textwrap.dedent('''
    import asyncio, json, sys, threading, time
    from concurrent import futures
    import grpcpy
    grpcpy.install_as_grpc()
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    SERVING = health_pb2.HealthCheckResponse.SERVING
    NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
    UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    out = {}

    def wait_until(predicate, timeout=20):
        end = time.monotonic() + timeout
        while not predicate() and time.monotonic() < end:
            time.sleep(0.005)
        return predicate()

    # -- the sync servicer on grpcpy's sync server, 16 workers
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(16))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    stub = health_pb2_grpc.HealthStub(channel)
    Req = health_pb2.HealthCheckRequest
    watchers = lambda: sum(len(s) for s in servicer._send_response_callbacks.values())

    out["check"] = stub.Check(Req(service=""), timeout=10).status
    try:
        stub.Check(Req(service="no.Such"), timeout=10)
    except grpc.RpcError as exc:
        out["unknown"] = exc.code().name
    call = stub.Watch(Req(service="s"), timeout=30)
    it = iter(call)
    seq = [next(it).status]
    servicer.set("s", SERVING); seq.append(next(it).status)
    servicer.set("s", NOT_SERVING); seq.append(next(it).status)
    out["sync_sequence"] = seq
    call.cancel()

    calls = [stub.Watch(Req(service="s"), timeout=30) for _ in range(32)]
    its = [iter(c) for c in calls]
    out["first_of_32"] = sorted({next(i).status for i in its})
    out["busy_after_32"] = wait_until(lambda: server._busy == 0) and server._busy
    out["check_beside_32"] = stub.Check(Req(service="s"), timeout=10).status
    servicer.set("s", SERVING)
    out["second_of_32"] = sorted({next(i).status for i in its})
    # cancel them while another thread keeps calling set()
    stop = threading.Event()
    def flip():
        status = SERVING
        while not stop.is_set():
            servicer.set("s", status)
            status = NOT_SERVING if status == SERVING else SERVING
    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    for c in calls:
        c.cancel()
    out["watchers_after_cancel"] = wait_until(lambda: watchers() == 0) and watchers()
    stop.set()
    flipper.join(20)
    out["flipper_done"] = not flipper.is_alive()

    servicer.set("s", SERVING)
    call = stub.Watch(Req(service="s"), timeout=30)
    it = iter(call)
    first = next(it).status
    servicer.enter_graceful_shutdown()
    out["graceful"] = [first, next(it).status, stub.Check(Req(service=""), timeout=10).status]
    server.stop(None).wait(20)
    try:
        next(it)
    except grpc.RpcError as exc:
        out["watch_after_stop"] = exc.code().name
    out["watchers_after_stop"] = wait_until(lambda: watchers() == 0) and watchers()
    channel.close()

    # -- the asyncio servicer on grpcpy.aio
    async def aio_part():
        servicer = health.aio.HealthServicer()
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with grpc.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            out["aio_check"] = (await stub.Check(Req(service=""), timeout=10)).status
            try:
                await stub.Check(Req(service="no.Such"), timeout=10)
            except grpc.RpcError as exc:
                out["aio_unknown"] = exc.code().name
            call = stub.Watch(Req(service="s"), timeout=30)
            seq = [(await call.read()).status]
            await servicer.set("s", SERVING); seq.append((await call.read()).status)
            await servicer.set("s", NOT_SERVING); seq.append((await call.read()).status)
            await servicer.enter_graceful_shutdown()
            await servicer.set("s", SERVING)
            out["aio_sequence"] = seq
            out["aio_after_graceful"] = (await stub.Check(Req(service="s"), timeout=10)).status
            call.cancel()
            for _ in range(2000):
                if not servicer._watcher_count_by_service:
                    break
                await asyncio.sleep(0.005)
            out["aio_watchers_after_cancel"] = sum(servicer._watcher_count_by_service.values())
            call = stub.Watch(Req(service=""), timeout=30)
            await call.read()
            await server.stop(None)
            try:
                await call.read()
            except grpc.RpcError as exc:
                out["aio_watch_after_stop"] = exc.code().name
            for _ in range(2000):
                if not servicer._watcher_count_by_service:
                    break
                await asyncio.sleep(0.005)
            out["aio_watchers_after_stop"] = sum(servicer._watcher_count_by_service.values())

    asyncio.run(aio_part())
    out["grpcio_loaded"] = any(m.startswith("grpc._cython") or m == "grpc._server" for m in sys.modules)
    out["grpc_is"] = type(sys.modules["grpc"]).__module__
    print(json.dumps(out))
''')


def test_grpcio_health_checking_on_grpcpy(tmp_path):
    path = tmp_path / "health_on_grpcpy.py"
    path.write_text(PROGRAM)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.pop("grpcio_loaded") is False
    assert out.pop("grpc_is") == "grpcpy._alias"
    assert out == {
        "check": 1, "unknown": "NOT_FOUND", "sync_sequence": [3, 1, 2],
        "first_of_32": [2], "busy_after_32": 0, "check_beside_32": 2, "second_of_32": [1],
        "watchers_after_cancel": 0, "flipper_done": True,
        "graceful": [1, 2, 2], "watch_after_stop": out["watch_after_stop"], "watchers_after_stop": 0,
        "aio_check": 1, "aio_unknown": "NOT_FOUND", "aio_sequence": [3, 1, 2], "aio_after_graceful": 2,
        "aio_watchers_after_cancel": 0, "aio_watch_after_stop": out["aio_watch_after_stop"],
        "aio_watchers_after_stop": 0,
    }
    assert out["watch_after_stop"] in ("UNAVAILABLE", "CANCELLED")
    assert out["aio_watch_after_stop"] in ("UNAVAILABLE", "CANCELLED")
