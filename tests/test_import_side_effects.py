"""What importing grpcpy costs and changes: the TLS libraries (cryptography,
pyOpenSSL) load only when a certificate is handled, and importing
grpcpy.aio leaves the event loop policy alone; uvloop comes through
grpcpy.aio.run (or use_uvloop) when asked for.

Import effects are checked in fresh interpreters (subprocesses): the test
process itself has long imported everything.
"""
import asyncio
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import grpcpy
import grpcpy.aio

ROOT = pathlib.Path(grpcpy.__file__).resolve().parents[1]
TLS_LIBRARIES = ("OpenSSL", "cryptography")


def _python(code, *args, env=None):
    """Run code in a fresh interpreter; its last stdout line, parsed as JSON."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)] + list(args), capture_output=True,
                         text=True, cwd=str(ROOT), timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


ROUND_TRIPS = """
import json, sys
from concurrent import futures

def loaded(*names):
    return sorted(m for m in sys.modules if m.split(".")[0] in names)

TLS = ("OpenSSL", "cryptography")
report = {}
import grpcpy
report["import grpcpy"] = loaded(*TLS, "ssl", "asyncio", "uvloop")
import grpcpy.aio
report["import grpcpy.aio"] = loaded(*TLS, "uvloop")

def handlers(asynchronous):
    if asynchronous:
        async def uu(request, context):
            return request
        async def us(request, context):
            yield request
            yield request
        async def su(requests, context):
            return b"".join([r async for r in requests])
        async def ss(requests, context):
            async for r in requests:
                yield r
    else:
        def uu(request, context):
            return request
        def us(request, context):
            yield request
            yield request
        def su(requests, context):
            return b"".join(requests)
        def ss(requests, context):
            yield from requests
    return grpcpy.method_handlers_generic_handler("t.S", {
        "UU": grpcpy.unary_unary_rpc_method_handler(uu), "US": grpcpy.unary_stream_rpc_method_handler(us),
        "SU": grpcpy.stream_unary_rpc_method_handler(su), "SS": grpcpy.stream_stream_rpc_method_handler(ss)})

# the sync API: an insecure server and channel, one call of each kind
server = grpcpy.server(futures.ThreadPoolExecutor(4), handlers=(handlers(False),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
with grpcpy.insecure_channel("127.0.0.1:%d" % port) as channel:
    assert channel.unary_unary("/t.S/UU")(b"a", timeout=30) == b"a"
    assert list(channel.unary_stream("/t.S/US")(b"b", timeout=30)) == [b"b", b"b"]
    assert channel.stream_unary("/t.S/SU")(iter([b"c", b"d"]), timeout=30) == b"cd"
    assert list(channel.stream_stream("/t.S/SS")(iter([b"e", b"f"]), timeout=30)) == [b"e", b"f"]
server.stop(None)
report["sync round trip"] = loaded(*TLS)

# the asyncio API, the same
async def main():
    server = grpcpy.aio.server()
    server.add_generic_rpc_handlers((handlers(True),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpcpy.aio.insecure_channel("127.0.0.1:%d" % port) as channel:
        assert await channel.unary_unary("/t.S/UU")(b"a", timeout=30) == b"a"
        assert [r async for r in channel.unary_stream("/t.S/US")(b"b", timeout=30)] == [b"b", b"b"]
        assert await channel.stream_unary("/t.S/SU")(iter([b"c", b"d"]), timeout=30) == b"cd"
        assert [r async for r in channel.stream_stream("/t.S/SS")(iter([b"e", b"f"]), timeout=30)] == [b"e", b"f"]
    await server.stop(None)
grpcpy.aio.run(main())
report["aio round trip"] = loaded(*TLS)

# a TLS credential needs them
with open(sys.argv[1], "rb") as fh:
    grpcpy.ssl_channel_credentials(fh.read())
report["ssl_channel_credentials"] = loaded(*TLS)
print(json.dumps(report))
"""


def test_tls_libraries_load_only_when_a_certificate_is_handled(tmp_path):
    trustme = pytest.importorskip("trustme")
    roots = tmp_path / "ca.pem"
    roots.write_bytes(trustme.CA().cert_pem.bytes())
    report = _python(ROUND_TRIPS, str(roots))
    # `import grpcpy` alone: not even ssl or asyncio
    assert report["import grpcpy"] == []
    assert report["import grpcpy.aio"] == []          # no uvloop either: nothing asked for it
    assert report["sync round trip"] == []
    assert report["aio round trip"] == []
    for library in TLS_LIBRARIES:
        assert library in report["ssl_channel_credentials"]


def test_importing_grpcpy_aio_leaves_the_event_loop_policy_alone():
    report = _python("""
        import asyncio, json, sys
        chosen = asyncio.get_event_loop_policy()      # asyncio's default, made before the import
        import grpcpy.aio
        print(json.dumps({"same policy": asyncio.get_event_loop_policy() is chosen,
                          "uvloop imported": "uvloop" in sys.modules}))
    """)
    assert report == {"same policy": True, "uvloop imported": False}


def test_importing_grpcpy_aio_first_leaves_the_default_policy():
    report = _python("""
        import asyncio, json
        import grpcpy.aio
        print(json.dumps(type(asyncio.get_event_loop_policy()) is asyncio.DefaultEventLoopPolicy))
    """)
    assert report is True


def test_use_uvloop_is_the_explicit_policy_switch():
    pytest.importorskip("uvloop")
    report = _python("""
        import asyncio, json
        import grpcpy.aio
        on = grpcpy.aio.use_uvloop()
        loop_on = type(asyncio.new_event_loop()).__module__.split(".")[0]
        off = grpcpy.aio.use_uvloop(False)
        loop_off = type(asyncio.new_event_loop()).__module__.split(".")[0]
        print(json.dumps([on, loop_on, off, loop_off]))
    """)
    assert report == [True, "uvloop", False, "asyncio"]


async def _loop_kind():
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_run_uses_uvloop_when_installed(monkeypatch):
    pytest.importorskip("uvloop")
    monkeypatch.delenv("GRPCPY_UVLOOP", raising=False)
    policy = asyncio.get_event_loop_policy()
    assert grpcpy.aio.run(_loop_kind()) == "uvloop"
    assert grpcpy.aio.run(_loop_kind(), use_uvloop=True) == "uvloop"
    assert asyncio.get_event_loop_policy() is policy


def test_run_on_asyncios_loop_when_told(monkeypatch):
    monkeypatch.delenv("GRPCPY_UVLOOP", raising=False)
    assert grpcpy.aio.run(_loop_kind(), use_uvloop=False) == "asyncio"
    monkeypatch.setenv("GRPCPY_UVLOOP", "0")
    assert grpcpy.aio.run(_loop_kind()) == "asyncio"


def test_run_argument_wins_over_the_environment(monkeypatch):
    pytest.importorskip("uvloop")
    monkeypatch.setenv("GRPCPY_UVLOOP", "0")
    assert grpcpy.aio.run(_loop_kind(), use_uvloop=True) == "uvloop"


def test_run_is_asyncio_run():
    async def debug_and_fail():
        assert asyncio.get_running_loop().get_debug()
        raise KeyError("from the coroutine")

    with pytest.raises(KeyError, match="from the coroutine"):
        grpcpy.aio.run(debug_and_fail(), debug=True)

    async def answer():
        return 42

    assert grpcpy.aio.run(answer(), use_uvloop=False) == 42
    with pytest.raises(ValueError):      # like asyncio.run: a coroutine, not a function
        grpcpy.aio.run(answer)


def test_demo_runs_on_uvloop_unless_told_otherwise():
    pytest.importorskip("uvloop")
    env = {k: v for k, v in os.environ.items() if k != "GRPCPY_UVLOOP"}
    for args, loop in (([], "uvloop"), (["--loop", "asyncio"], "asyncio")):
        out = subprocess.run([sys.executable, "-m", "grpcpy", "demo", "--calls", "5"] + args, capture_output=True,
                             text=True, cwd=str(ROOT), timeout=120, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "(loop: %s)" % loop in out.stdout.splitlines()[0]
