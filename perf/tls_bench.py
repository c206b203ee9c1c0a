"""TLS: grpcpy against grpcio over TLS, server and client in separate
processes on 127.0.0.1, interleaved rounds, medians and ratios.

    python perf/tls_bench.py [--rounds N] [--duration S]

Scenarios: unary ping-pong (calls/s) and 1 MiB unary echo (MiB/s), for the
asyncio APIs (grpcpy.aio on uvloop, grpc.aio) and the sync APIs, plus the
same grpcpy scenarios without TLS, so the cost of TLS itself shows.
Certificates are made at start with trustme. Results: perf/results/tls-*.json.
"""
import argparse
import asyncio
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

IMPLS = ["grpcpy-aio", "grpcio-aio", "grpcpy-sync", "grpcio-sync", "grpcpy-aio-plain", "grpcpy-sync-plain"]
SCENARIOS = {"unary": b"0123456789abcdef", "mib": b"m" * (1 << 20)}


def _mods(impl):
    if impl.startswith("grpcpy"):
        import grpcpy
        import grpcpy.aio
        return grpcpy, grpcpy.aio
    import grpc
    import grpc.aio
    return grpc, grpc.aio


def _run(impl, coro):
    """grpcpy.aio runs on uvloop (as the results say: ImportError without
    it), grpc.aio on asyncio's own loop."""
    if impl.startswith("grpcpy"):
        import grpcpy.aio
        return grpcpy.aio.run(coro, use_uvloop=True)
    return asyncio.run(coro)


def _creds_files():
    import trustme
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    folder = tempfile.mkdtemp(prefix="grpcpy-tls-bench-")
    files = {"ca": ca.cert_pem.bytes(), "key": leaf.private_key_pem.bytes(),
             "chain": b"".join(b.bytes() for b in leaf.cert_chain_pems)}
    for name, data in files.items():
        (pathlib.Path(folder) / name).write_bytes(data)
    return folder


def _read(folder):
    return {n: (pathlib.Path(folder) / n).read_bytes() for n in ("ca", "key", "chain")}


# -- processes --------------------------------------------------------------------------

def serve(impl, folder):
    mod, amod = _mods(impl)
    pem = _read(folder)
    plain = impl.endswith("-plain")

    def echo_sync(request, context):
        return request

    async def echo_async(request, context):
        return request

    if "-aio" in impl:
        async def main():
            server = amod.server(options=[("grpc.max_receive_message_length", 8 << 20),
                                          ("grpc.max_send_message_length", 8 << 20)])
            server.add_generic_rpc_handlers((mod.method_handlers_generic_handler(
                "B", {"Echo": mod.unary_unary_rpc_method_handler(echo_async)}),))
            if plain:
                port = server.add_insecure_port("127.0.0.1:0")
            else:
                port = server.add_secure_port("127.0.0.1:0", mod.ssl_server_credentials([(pem["key"], pem["chain"])]))
            await server.start()
            print(port, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            await server.stop(None)
        _run(impl, main())
    else:
        from concurrent import futures
        server = mod.server(futures.ThreadPoolExecutor(4), options=[
            ("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)])
        server.add_generic_rpc_handlers((mod.method_handlers_generic_handler(
            "B", {"Echo": mod.unary_unary_rpc_method_handler(echo_sync)}),))
        if plain:
            port = server.add_insecure_port("127.0.0.1:0")
        else:
            port = server.add_secure_port("127.0.0.1:0", mod.ssl_server_credentials([(pem["key"], pem["chain"])]))
        server.start()
        print(port, flush=True)
        sys.stdin.read()
        server.stop(None)


def client(impl, folder, port, scenario, duration):
    mod, amod = _mods(impl)
    pem = _read(folder)
    msg = SCENARIOS[scenario]
    options = [("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)]
    target = "localhost:%d" % port
    plain = impl.endswith("-plain")
    if "-aio" in impl:
        async def main():
            if plain:
                channel = amod.insecure_channel(target, options=options)
            else:
                channel = amod.secure_channel(target, mod.ssl_channel_credentials(pem["ca"]), options=options)
            async with channel:
                call = channel.unary_unary("/B/Echo")
                for _ in range(20):
                    assert await call(msg) == msg
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < duration:
                    await call(msg)
                    n += 1
                return n / (time.perf_counter() - t0)
        rate = _run(impl, main())
    else:
        if plain:
            channel = mod.insecure_channel(target, options=options)
        else:
            channel = mod.secure_channel(target, mod.ssl_channel_credentials(pem["ca"]), options=options)
        with channel:
            call = channel.unary_unary("/B/Echo")
            for _ in range(20):
                assert call(msg) == msg
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < duration:
                call(msg)
                n += 1
            rate = n / (time.perf_counter() - t0)
    if scenario == "mib":
        rate = rate * 2   # MiB/s: one MiB each way per call
    print(json.dumps(rate), flush=True)


# -- orchestration ----------------------------------------------------------------------

def _start_server(impl, folder):
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    proc = subprocess.Popen([sys.executable, __file__, "--serve", impl, folder], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    port = int(proc.stdout.readline())
    return proc, port


def _sample(impl, folder, port, scenario, duration):
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    out = subprocess.run([sys.executable, __file__, "--client", impl, folder, str(port), scenario, str(duration)],
                         capture_output=True, text=True, env=env, timeout=120)
    if out.returncode != 0:
        raise RuntimeError("%s %s failed: %s" % (impl, scenario, out.stderr[-400:]))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--serve", nargs=2)
    ap.add_argument("--client", nargs=5)
    args = ap.parse_args(argv)
    if args.serve:
        return serve(*args.serve)
    if args.client:
        impl, folder, port, scenario, duration = args.client
        return client(impl, folder, int(port), scenario, float(duration))

    from harness import versions, write_results
    folder = _creds_files()
    servers = {impl: _start_server(impl, folder) for impl in IMPLS}
    samples = {(impl, sc): [] for impl in IMPLS for sc in SCENARIOS}
    try:
        for _ in range(args.rounds):
            for scenario in SCENARIOS:
                for impl in IMPLS:   # interleaved: every implementation each round
                    samples[(impl, scenario)].append(
                        _sample(impl, folder, servers[impl][1], scenario, args.duration))
    finally:
        for proc, _ in servers.values():
            proc.stdin.close()
            proc.wait(10)
    med = {key: statistics.median(v) for key, v in samples.items()}
    units = {"unary": "calls/s", "mib": "MiB/s"}
    print("%-20s %-8s %12s %20s" % ("implementation", "scenario", "median", "min-max"))
    for (impl, sc), values in samples.items():
        print("%-20s %-8s %12.1f %20s" % (impl, sc, med[(impl, sc)], "%.1f-%.1f %s" % (min(values), max(values), units[sc])))
    ratios = {}
    for sc in SCENARIOS:
        ratios[sc] = {
            "grpcpy-aio / grpcio-aio (TLS)": med[("grpcpy-aio", sc)] / med[("grpcio-aio", sc)],
            "grpcpy-sync / grpcio-sync (TLS)": med[("grpcpy-sync", sc)] / med[("grpcio-sync", sc)],
            "grpcpy-aio TLS / plaintext": med[("grpcpy-aio", sc)] / med[("grpcpy-aio-plain", sc)],
            "grpcpy-sync TLS / plaintext": med[("grpcpy-sync", sc)] / med[("grpcpy-sync-plain", sc)],
        }
        for name, value in ratios[sc].items():
            print("%-8s %-34s %.2fx" % (sc, name, value))
    path = write_results("tls", {"benchmark": "tls", "rounds": args.rounds, "seconds_per_sample": args.duration,
                                 "versions": versions("grpcpy", "grpcio", "uvloop"),
                                 "samples": {"%s/%s" % k: v for k, v in samples.items()}, "ratios": ratios})
    print("results:", path)


if __name__ == "__main__":
    main()
