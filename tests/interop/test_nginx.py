"""grpcpy through nginx's grpc_pass (HTTP/2 cleartext on both hops): nginx
is a real, independent HTTP/2 implementation that re-frames and re-encodes
every header block, so what passes through it is the wire protocol, not
grpcpy talking to itself. grpcpy clients and servers of both facades meet
each other and grpcio across it; grpcio on both ends is the reference."""
import os
import shutil
import socket
import subprocess
import time
import types

import pytest

from . import drivers
from .conftest import Pair
from .service import ECHO_INITIAL, ECHO_TRAILING, RPC_ERRORS, code_name, make_service, run, server_driver

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
if NGINX is None and not os.environ.get("CI"):
    pytest.skip("nginx is not installed (CI installs it: .ci/run)", allow_module_level=True)

CONF = """
daemon off;
worker_processes 1;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 0;
    grpc_read_timeout 30s;
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{
            grpc_pass grpc://127.0.0.1:{upstream};
        }}
    }}
}}
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __init__(self, tmp_path, upstream):
        self.port = _free_port()
        self.dir = tmp_path
        (tmp_path / "nginx.conf").write_text(CONF.format(dir=tmp_path, port=self.port, upstream=upstream))
        self.proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("nginx did not start: %s" % self.log())
                time.sleep(0.05)

    def log(self):
        path = self.dir / "error.log"
        return path.read_text() if path.exists() else self.proc.stderr.read().decode()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# client -> nginx -> server: grpcpy's facades against each other and grpcio
# both ways, and grpcio with itself (the reference)
PAIRS = [("grpcpy-sync", "grpcpy-aio"), ("grpcpy-aio", "grpcpy-sync"), ("grpcio-sync", "grpcpy-sync"),
         ("grpcio-aio", "grpcpy-aio"), ("grpcpy-aio", "grpcio-aio"), ("grpcpy-sync", "grpcio-sync"),
         ("grpcio-aio", "grpcio-aio")]


@pytest.fixture(params=[pytest.param(Pair(c, s, "uvloop"), id="%s-to-%s" % (c, s)) for c, s in PAIRS])
def proxied(request, protos, tmp_path):
    """(scenario helper factory): a server of pair.server, nginx in front of
    it, a client driver of pair.client connected to nginx."""
    pair = request.param

    def serving():
        return _Serving(pair, protos, tmp_path)
    return serving


class _Serving:
    def __init__(self, pair, pb, tmp_path):
        self.pair, self.pb, self.tmp_path = pair, pb, tmp_path

    async def __aenter__(self):
        self.server = server_driver(self.pair.server)
        self.service = make_service(self.pb, self.pair.server)
        self.pb.test_pb2_grpc.add_TestServiceServicer_to_server(self.service, self.server.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        self.nginx = Nginx(self.tmp_path, port)
        self.drv = drivers.client_driver(self.pair.client, self.pb, "127.0.0.1:%d" % self.nginx.port)
        return types.SimpleNamespace(drv=self.drv, m=self.pb.messages_pb2, service=self.service, nginx=self.nginx)

    async def __aexit__(self, *exc):
        try:
            await self.drv.close()
            await self.server.stop(None)
        finally:
            self.nginx.stop()


def test_four_call_types_metadata_and_status_through_nginx(proxied, protos):
    async def scenario():
        async with proxied() as h:
            m, drv = h.m, h.drv
            resp = await drv.unary("UnaryCall", m.SimpleRequest(response_size=10, payload=m.Payload(body=b"x" * 5)))
            assert resp.payload.body == b"\0" * 10
            sizes = [1, 0, 100, 70000]
            got = [len(r.payload.body) async for r in drv.server_stream("StreamingOutputCall",
                   m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=s) for s in sizes]))]
            assert got == sizes
            requests = [m.StreamingInputCallRequest(payload=m.Payload(body=b"a" * n)) for n in (27182, 8, 1828, 45904)]
            assert (await drv.client_stream("StreamingInputCall", requests)).aggregated_payload_size == 74922
            call = drv.bidi("FullDuplexCall")
            for size in (31415, 9, 2653, 58979):
                await call.write(m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=size)]))
                assert len((await call.read()).payload.body) == size
            await call.done_writing()
            assert await call.read() is drv.EOF
            assert code_name(await call.code()) == "OK"
            # metadata both ways, binary included, across nginx's re-encoding
            md = ((ECHO_INITIAL, "initial-value"), (ECHO_TRAILING, b"\x00\x01\xfe\xff trailing"))
            call = drv.unary_call("UnaryCall", m.SimpleRequest(response_size=1), metadata=md)
            await call
            assert (ECHO_INITIAL, "initial-value") in tuple(await call.initial_metadata())
            assert (ECHO_TRAILING, b"\x00\x01\xfe\xff trailing") in tuple(await call.trailing_metadata())
            # a status with details: trailers-only responses and trailers after messages
            details = "percent %41, non-ASCII: ✓ é"
            with pytest.raises(RPC_ERRORS) as info:
                await drv.unary("UnaryCall", m.SimpleRequest(response_status=m.EchoStatus(code=9, message=details)))
            assert (code_name(info.value.code()), info.value.details()) == ("FAILED_PRECONDITION", details)
            call = drv.server_stream("StreamingOutputCall", m.StreamingOutputCallRequest(
                response_parameters=[m.ResponseParameters(size=3)], response_status=m.EchoStatus(code=5, message=details)))
            assert len((await call.read()).payload.body) == 3
            with pytest.raises(RPC_ERRORS) as info:
                await call.read()
            assert (code_name(info.value.code()), info.value.details()) == ("NOT_FOUND", details)
    run(scenario())


def test_large_messages_and_a_deadline_through_nginx(proxied, protos):
    async def scenario():
        async with proxied() as h:
            m, drv = h.m, h.drv
            # 3 MiB each way: flow control on both hops
            resp = await drv.unary("UnaryCall", m.SimpleRequest(response_size=3 << 20,
                                                                payload=m.Payload(body=b"y" * (3 << 20))))
            assert len(resp.payload.body) == 3 << 20
            # the deadline travels as grpc-timeout through nginx; the client
            # ends the call DEADLINE_EXCEEDED
            with pytest.raises(RPC_ERRORS) as info:
                await drv.unary("UnaryCall", m.SimpleRequest(), timeout=0.3, metadata=(("x-sleep", "5"),))
            assert code_name(info.value.code()) == "DEADLINE_EXCEEDED"
            # the connection through nginx still serves
            assert (await drv.unary("UnaryCall", m.SimpleRequest(response_size=2))).payload.body == b"\0\0"
    run(scenario())
