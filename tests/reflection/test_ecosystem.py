"""Reflection in processes of their own: the real grpcio-reflection package
on grpcpy through install_as_grpc() (real grpcio never loaded), and grpcpy's
built-in services described from grpcpy's private descriptors in a process
that never imported another implementation's copy of them."""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import grpcpy

REPO = str(pathlib.Path(grpcpy.__file__).resolve().parents[1])

ALIASED = textwrap.dedent('''
    import asyncio, sys, threading
    from concurrent import futures
    import grpcpy
    grpcpy.install_as_grpc()
    import grpc
    from google.protobuf import descriptor_pool, message_factory
    from grpc_reflection.v1alpha import reflection
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
    from grpcpy_reflection_test import shop_pb2, shop_pb2_grpc

    which, facade = sys.argv[1], sys.argv[2]
    SHOP = "grpcpy_reflection_test.Shop"

    def enable(server):
        if which == "grpcio-reflection":
            reflection.enable_server_reflection((SHOP, reflection.SERVICE_NAME), server)
        else:
            import grpcpy.reflection
            grpcpy.reflection.enable_server_reflection(None, server)

    class Shop(shop_pb2_grpc.ShopServicer):
        def Quote(self, request, context):
            return shop_pb2.QuoteReply(total_units=request.quantity * request.item.price.units)

    class AioShop(shop_pb2_grpc.ShopServicer):
        async def Quote(self, request, context):
            return shop_pb2.QuoteReply(total_units=request.quantity * request.item.price.units)

    if facade == "sync":
        server = grpc.server(futures.ThreadPoolExecutor(4))
        shop_pb2_grpc.add_ShopServicer_to_server(Shop(), server)
        enable(server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
    else:
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()

        async def start():
            global server
            server = grpc.aio.server()
            shop_pb2_grpc.add_ShopServicer_to_server(AioShop(), server)
            enable(server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            return port
        port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)

    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = database.get_services()
        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindServiceByName(SHOP).methods_by_name["Quote"]
        request_class = message_factory.GetMessageClass(method.input_type)
        reply_class = message_factory.GetMessageClass(method.output_type)
        request = request_class(quantity=4)
        request.item.price.units = 5
        quote = channel.unary_unary("/%s/Quote" % SHOP, request_serializer=request_class.SerializeToString,
                                    response_deserializer=reply_class.FromString)
        reply = quote(request, timeout=10)
    if facade == "sync":
        server.stop(None)
    else:
        asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(10)
    print("services", ",".join(services))
    print("reply", type(reply) is reply_class, reply.total_units)
    print("channel", type(channel).__module__.split(".")[0])
    print("grpcio loaded", "grpc._cython" in sys.modules)
''')


@pytest.fixture(scope="module")
def protos_root(shop):
    return str(pathlib.Path(shop.shop_pb2.__file__).resolve().parents[1])


def _run(code, args, protos_root):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO, protos_root, env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", code] + list(args), capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


@pytest.mark.parametrize("facade", ["sync", "aio"])
@pytest.mark.parametrize("which", ["grpcio-reflection", "grpcpy-reflection"])
def test_under_install_as_grpc(protos_root, which, facade):
    # grpcio-reflection's servicer, or grpcpy's, on a grpcpy server; queried
    # by grpcio-reflection's client database over a grpcpy channel; then a
    # dynamic call built from what it returned
    lines = _run(ALIASED, [which, facade], protos_root)
    listed = ("grpc.reflection.v1alpha.ServerReflection,grpcpy_reflection_test.Shop"
              if which == "grpcio-reflection" else
              "grpc.reflection.v1.ServerReflection,grpc.reflection.v1alpha.ServerReflection,"
              "grpcpy_reflection_test.Shop")
    assert lines == ["services " + listed, "reply True 20", "channel grpcpy", "grpcio loaded False"]


OWN_DESCRIPTORS = textwrap.dedent('''
    import sys
    from concurrent import futures
    from google.protobuf import descriptor_pb2
    import grpcpy
    import grpcpy.reflection
    pb = grpcpy.reflection.reflection_pb2

    server = grpcpy.server(futures.ThreadPoolExecutor(2))
    if sys.argv[1] == "registered":
        from grpcpy._protos import health_pb

        def check(request, context):
            return health_pb.HealthCheckResponse(status=health_pb.HealthCheckResponse.SERVING)

        server.add_generic_rpc_handlers([grpcpy.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpcpy.unary_unary_rpc_method_handler(
                check, health_pb.HealthCheckRequest.FromString, health_pb.HealthCheckResponse.SerializeToString)})])
        grpcpy.reflection.enable_server_reflection(None, server)
    else:
        # listed by hand, its descriptors not loaded by anyone yet
        grpcpy.reflection.enable_server_reflection(["grpc.health.v1.Health"], server)
        assert "grpcpy._protos.health_pb" not in sys.modules
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpcpy.insecure_channel("127.0.0.1:%d" % port) as channel:
        stream = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                       request_serializer=pb.ServerReflectionRequest.SerializeToString,
                                       response_deserializer=pb.ServerReflectionResponse.FromString)
        (listed,) = stream(iter([pb.ServerReflectionRequest(list_services="")]), timeout=10)
        names = [s.name for s in listed.list_services_response.service]
        # every listed service is described, each on a stream of its own
        for name in names:
            (described,) = stream(iter([pb.ServerReflectionRequest(file_containing_symbol=name)]), timeout=10)
            files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                     for b in described.file_descriptor_response.file_descriptor_proto]
            assert [s.name for s in files[0].service] == [name.rsplit(".", 1)[1]], described
            print(name, files[0].name)
    server.stop(None)
    print("others loaded", sorted(m for m in sys.modules if m.split(".")[0] in ("grpc", "grpc_health", "grpc_reflection")))
''')


@pytest.mark.parametrize("health", ["registered", "listed-by-hand"])
def test_built_in_services_described_from_grpcpy_descriptors(protos_root, health):
    assert _run(OWN_DESCRIPTORS, [health], protos_root) == [
        "grpc.health.v1.Health grpc/health/v1/health.proto",
        "grpc.reflection.v1.ServerReflection grpc/reflection/v1/reflection.proto",
        "grpc.reflection.v1alpha.ServerReflection grpc/reflection/v1alpha/reflection.proto",
        "others loaded []",
    ]
