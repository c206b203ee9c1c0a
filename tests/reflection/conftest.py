"""Fixtures for reflection tests: the test protos (tests/reflection/protos)
compiled with grpcio-tools at test time, a Shop service on a grpcpy sync,
grpcpy aio or grpcio server with reflection enabled, and a raw reflection
stream client."""
import asyncio
import concurrent.futures
import importlib
import pathlib
import sys
import threading
import types

import grpc
import pytest

import grpcpy
import grpcpy.aio
import grpcpy.reflection

PROTOS = pathlib.Path(__file__).resolve().parent / "protos"
PACKAGE = "grpcpy_reflection_test"
SHOP = PACKAGE + ".Shop"
SERVERS = ("grpcpy-sync", "grpcpy-aio", "grpcio")


def compile_protos(out):
    """protoc --python_out/--grpc_python_out of the test protos into `out`."""
    from grpc_tools import protoc
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    files = sorted(str(p) for p in (PROTOS / PACKAGE).glob("*.proto"))
    rc = protoc.main(["protoc", "-I" + str(PROTOS), "-I" + str(include), "--python_out=" + str(out),
                      "--grpc_python_out=" + str(out)] + files)
    assert rc == 0, "protoc failed"


@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("reflection_protos")
    compile_protos(root)
    sys.path.insert(0, str(root))
    return types.SimpleNamespace(**{
        name: importlib.import_module("%s.%s" % (PACKAGE, name))
        for name in ("money_pb2", "catalog_pb2", "annotations_pb2", "shop_pb2", "shop_pb2_grpc")})


def _reply(shop, request):
    return shop.shop_pb2.QuoteReply(
        item=request.item, total_units=request.item.price.units * request.quantity,
        lines=[shop.shop_pb2.QuoteReply.Line(text="%d x %s" % (request.quantity, request.item.name))])


def _sync_servicer(shop):
    class Shop(shop.shop_pb2_grpc.ShopServicer):
        def Quote(self, request, context):
            return _reply(shop, request)

        def Follow(self, request, context):
            yield _reply(shop, request)
    return Shop()


def _aio_servicer(shop):
    class Shop(shop.shop_pb2_grpc.ShopServicer):
        async def Quote(self, request, context):
            return _reply(shop, request)

        async def Follow(self, request, context):
            yield _reply(shop, request)
    return Shop()


class RunningServer:
    """A server with the Shop service (added with the generated stub's
    add_ShopServicer_to_server) and reflection: grpcpy's (listing what is
    registered) or grpcio-reflection on grpcio (the reference, listing the
    names it is given)."""

    def __init__(self, kind, shop):
        self.kind = kind
        self.shop = shop
        self.loop = None
        self.pool = concurrent.futures.ThreadPoolExecutor(8)
        if kind == "grpcpy-aio":
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
            self.thread.start()
            self.port = self.run(self._start_aio())
        elif kind == "grpcpy-sync":
            self.server = grpcpy.server(self.pool)
            shop.shop_pb2_grpc.add_ShopServicer_to_server(_sync_servicer(shop), self.server)
            grpcpy.reflection.enable_server_reflection(None, self.server)
            self.port = self.server.add_insecure_port("127.0.0.1:0")
            self.server.start()
        else:
            from grpc_reflection.v1alpha import reflection
            self.server = grpc.server(self.pool)
            shop.shop_pb2_grpc.add_ShopServicer_to_server(_sync_servicer(shop), self.server)
            reflection.enable_server_reflection((SHOP, reflection.SERVICE_NAME), self.server)
            self.port = self.server.add_insecure_port("127.0.0.1:0")
            self.server.start()

    async def _start_aio(self):
        self.server = grpcpy.aio.server()
        self.shop.shop_pb2_grpc.add_ShopServicer_to_server(_aio_servicer(self.shop), self.server)
        grpcpy.reflection.enable_server_reflection(None, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return port

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        if self.loop is not None:
            self.run(self.server.stop(0))
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()
        else:
            self.server.stop(0).wait(5)
        self.pool.shutdown(wait=False)


@pytest.fixture(params=SERVERS)
def server(request, shop):
    running = RunningServer(request.param, shop)
    yield running
    running.stop()


@pytest.fixture(params=[k for k in SERVERS if k.startswith("grpcpy")])
def grpcpy_server(request, shop):
    running = RunningServer(request.param, shop)
    yield running
    running.stop()


def reflection_messages(version):
    """grpcpy's message module of one protocol version."""
    return grpcpy.reflection.reflection_pb2 if version == "v1" else grpcpy.reflection.reflection_v1alpha_pb2


def reflection_stream(target, version, requests, channel_module=grpcpy):
    """Send `requests` (built by requests(pb) from the version's message
    module) on one ServerReflectionInfo stream; its responses."""
    pb = reflection_messages(version)
    with channel_module.insecure_channel(target) as channel:
        call = channel.stream_stream(
            "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
            request_serializer=pb.ServerReflectionRequest.SerializeToString,
            response_deserializer=pb.ServerReflectionResponse.FromString)
        return list(call(iter(requests(pb)), timeout=10))
