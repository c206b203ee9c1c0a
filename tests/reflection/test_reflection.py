"""Server reflection (grpcpy.reflection) on grpcpy's sync and aio servers,
queried by grpcio-reflection's client database and by raw v1 / v1alpha
streams; grpcio-reflection on a grpcio server is the reference wherever the
two implementations answer alike."""
import asyncio
import concurrent.futures

import grpc
import grpc.aio
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

import grpcpy
import grpcpy.aio
import grpcpy.reflection

from .conftest import PACKAGE, SHOP, reflection_stream

NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
SHOP_FILE = PACKAGE + "/shop.proto"
CATALOG_FILE = PACKAGE + "/catalog.proto"
MONEY_FILE = PACKAGE + "/money.proto"
ANNOTATIONS_FILE = PACKAGE + "/annotations.proto"
TIMESTAMP_FILE = "google/protobuf/timestamp.proto"
REFLECTION_V1 = grpcpy.reflection.SERVICE_NAME_V1
REFLECTION_V1ALPHA = grpcpy.reflection.SERVICE_NAME_V1ALPHA


def _names(response):
    return [descriptor_pb2.FileDescriptorProto.FromString(b).name
            for b in response.file_descriptor_response.file_descriptor_proto]


def _one(server, version, make):
    (response,) = reflection_stream(server.target, version, lambda pb: [make(pb)])
    return response


def test_public_names():
    assert grpcpy.reflection.SERVICE_NAME == "grpc.reflection.v1alpha.ServerReflection"
    assert grpcpy.reflection.SERVICE_NAMES == (REFLECTION_V1, REFLECTION_V1ALPHA)
    from grpc_reflection.v1alpha import reflection
    assert grpcpy.reflection.SERVICE_NAME == reflection.SERVICE_NAME


# -- grpcio-reflection's client database ----------------------------------------------------------

@pytest.mark.parametrize("channel_module", [grpc, grpcpy], ids=["grpcio-channel", "grpcpy-channel"])
def test_client_database_lists_and_describes(server, channel_module):
    with channel_module.insecure_channel(server.target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = database.get_services()
        assert SHOP in services and REFLECTION_V1ALPHA in services
        if server.kind != "grpcio":
            # grpcpy lists every service registered, itself included (both
            # versions), without being told their names
            assert services == [REFLECTION_V1, REFLECTION_V1ALPHA, SHOP]
        pool = descriptor_pool.DescriptorPool(database)
        shop = pool.FindServiceByName(SHOP)
        assert [(m.name, m.input_type.name, m.output_type.name) for m in shop.methods] == [
            ("Quote", "QuoteRequest", "QuoteReply"), ("Follow", "QuoteRequest", "QuoteReply")]
        assert shop.file.name == SHOP_FILE
        # types of the imported file and of the file it imports
        item = pool.FindMessageTypeByName(PACKAGE + ".QuoteRequest").fields_by_name["item"].message_type
        assert item.file.name == CATALOG_FILE
        assert item.fields_by_name["price"].message_type.file.name == MONEY_FILE
        assert [f.name for f in pool.FindFileByName(SHOP_FILE).dependencies] == [TIMESTAMP_FILE, CATALOG_FILE]
        # extensions: numbers, then the file that declares one
        assert list(database.FindAllExtensionNumbers(PACKAGE + ".Annotated")) == [100, 101]
        # (the client fetches and keeps the file, but returns what protobuf's
        # base class returns: None, an unimplemented part of protobuf)
        database.FindFileContainingExtension(PACKAGE + ".Annotated", 101)
        assert database.FindFileByName(ANNOTATIONS_FILE).extension[1].name == "price"
        extension = pool.FindExtensionByName(PACKAGE + ".price")
        assert (extension.number, extension.file.name) == (101, ANNOTATIONS_FILE)
        with pytest.raises(KeyError):
            database.FindFileContainingSymbol(PACKAGE + ".Nothing")
        with pytest.raises(KeyError):
            database.FindFileByName(PACKAGE + "/nothing.proto")


@pytest.mark.parametrize("channel_module", [grpc, grpcpy], ids=["grpcio-channel", "grpcpy-channel"])
def test_dynamic_call_from_reflection_only(server, channel_module):
    # descriptors from the server alone -> message classes -> a call with
    # grpcpy's generic unary_unary; the test's own generated classes are
    # never used on the client side
    with channel_module.insecure_channel(server.target) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindServiceByName(SHOP).methods_by_name["Quote"]
        request_class = message_factory.GetMessageClass(method.input_type)
        reply_class = message_factory.GetMessageClass(method.output_type)
    assert request_class.__module__ != "grpcpy_reflection_test.shop_pb2"
    request = request_class(quantity=3)
    request.item.name = "pen"
    request.item.price.currency = "EUR"
    request.item.price.units = 2
    with grpcpy.insecure_channel(server.target) as channel:
        quote = channel.unary_unary("/%s/%s" % (SHOP, method.name),
                                    request_serializer=request_class.SerializeToString,
                                    response_deserializer=reply_class.FromString)
        reply = quote(request, timeout=10)
    assert type(reply) is reply_class
    assert (reply.total_units, reply.item.price.currency, [line.text for line in reply.lines]) == (
        6, "EUR", ["3 x pen"])


# -- raw streams ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_raw_stream(grpcpy_server, version):
    responses = reflection_stream(grpcpy_server.target, version, lambda pb: [
        pb.ServerReflectionRequest(host="h", list_services=""),
        pb.ServerReflectionRequest(file_containing_symbol=SHOP),
        # catalog.proto again: the file asked for is sent again, its import
        # (money.proto, sent with shop.proto) is not
        pb.ServerReflectionRequest(file_by_filename=CATALOG_FILE),
        pb.ServerReflectionRequest(file_containing_extension=pb.ExtensionRequest(
            containing_type=PACKAGE + ".Annotated", extension_number=100)),
        pb.ServerReflectionRequest(all_extension_numbers_of_type=PACKAGE + ".Annotated"),
        pb.ServerReflectionRequest(file_containing_symbol=PACKAGE + ".Missing"),
        pb.ServerReflectionRequest(),
    ])
    listed, by_symbol, by_name, by_extension, numbers, missing, invalid = responses
    assert [s.name for s in listed.list_services_response.service] == [REFLECTION_V1, REFLECTION_V1ALPHA, SHOP]
    assert listed.valid_host == "h" and listed.original_request.list_services == ""
    assert _names(by_symbol) == [SHOP_FILE, TIMESTAMP_FILE, CATALOG_FILE, MONEY_FILE]
    assert by_symbol.original_request.file_containing_symbol == SHOP
    assert _names(by_name) == [CATALOG_FILE]
    assert _names(by_extension) == [ANNOTATIONS_FILE]
    assert numbers.all_extension_numbers_response.base_type_name == PACKAGE + ".Annotated"
    assert list(numbers.all_extension_numbers_response.extension_number) == [100, 101]
    assert missing.error_response.error_code == NOT_FOUND and missing.error_response.error_message
    assert missing.original_request.file_containing_symbol == PACKAGE + ".Missing"
    assert invalid.error_response.error_code == INVALID_ARGUMENT


def test_each_stream_sends_the_dependencies_again(grpcpy_server):
    # the files sent are remembered per stream, not per server
    for _ in range(2):
        response = _one(grpcpy_server, "v1", lambda pb: pb.ServerReflectionRequest(file_by_filename=CATALOG_FILE))
        assert _names(response) == [CATALOG_FILE, MONEY_FILE]


def test_raw_stream_from_an_aio_channel(grpcpy_server):
    pb = grpcpy.reflection.reflection_pb2

    async def main():
        async with grpcpy.aio.insecure_channel(grpcpy_server.target) as channel:
            call = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                         request_serializer=pb.ServerReflectionRequest.SerializeToString,
                                         response_deserializer=pb.ServerReflectionResponse.FromString)()
            await call.write(pb.ServerReflectionRequest(file_containing_symbol=SHOP + ".Follow"))
            first = await call.read()
            await call.write(pb.ServerReflectionRequest(file_containing_symbol=PACKAGE + ".Item"))
            second = await call.read()
            await call.done_writing()
            assert await call.read() is grpcpy.aio.EOF
            return first, second

    first, second = asyncio.run(main())
    assert _names(first) == [SHOP_FILE, TIMESTAMP_FILE, CATALOG_FILE, MONEY_FILE]
    assert _names(second) == [CATALOG_FILE]


# -- symbols, the same answers as grpcio-reflection's -----------------------------------------------

@pytest.mark.parametrize("symbol, file", [
    (SHOP, SHOP_FILE),
    (PACKAGE + ".QuoteReply", SHOP_FILE),
    (PACKAGE + ".QuoteReply.Line", SHOP_FILE),             # nested message
    (PACKAGE + ".QuoteRequest.quantity", SHOP_FILE),       # field
    (PACKAGE + ".Money.Rounding", MONEY_FILE),             # nested enum
    (PACKAGE + ".Money.UP", MONEY_FILE),                   # enum value (scoped beside its enum)
    (PACKAGE + ".priority", ANNOTATIONS_FILE),             # extension
    (PACKAGE + ".Item", CATALOG_FILE),
    ("google.protobuf.Timestamp", TIMESTAMP_FILE),
])
def test_symbols(server, symbol, file):
    response = _one(server, "v1alpha", lambda pb: pb.ServerReflectionRequest(file_containing_symbol=symbol))
    assert _names(response)[0] == file


@pytest.mark.parametrize("symbol", [PACKAGE, PACKAGE + ".Money.Rounding.UP", PACKAGE + ".Shop.Nothing", "",
                                    PACKAGE + ".QuoteReply.Line.nothing"])
def test_unknown_symbols(server, symbol):
    response = _one(server, "v1alpha", lambda pb: pb.ServerReflectionRequest(file_containing_symbol=symbol))
    assert response.error_response.error_code == NOT_FOUND


def test_method_symbols(server):
    # `grpcurl describe pkg.Service.Method` asks for the method's symbol:
    # grpcpy answers with the service's file (as grpc-go does);
    # grpcio-reflection answers NOT_FOUND
    response = _one(server, "v1alpha", lambda pb: pb.ServerReflectionRequest(file_containing_symbol=SHOP + ".Quote"))
    if server.kind == "grpcio":
        assert response.error_response.error_code == NOT_FOUND
    else:
        assert _names(response)[0] == SHOP_FILE


@pytest.mark.parametrize("make", [
    lambda pb: pb.ServerReflectionRequest(file_by_filename=PACKAGE + "/nothing.proto"),
    lambda pb: pb.ServerReflectionRequest(all_extension_numbers_of_type=PACKAGE + ".Nothing"),
    lambda pb: pb.ServerReflectionRequest(file_containing_extension=pb.ExtensionRequest(
        containing_type=PACKAGE + ".Annotated", extension_number=150)),
    lambda pb: pb.ServerReflectionRequest(file_containing_extension=pb.ExtensionRequest(
        containing_type=PACKAGE + ".Nothing", extension_number=100)),
], ids=["file", "extension-numbers", "extension-number", "extendee"])
def test_not_found(server, make):
    response = _one(server, "v1alpha", make)
    assert response.WhichOneof("message_response") == "error_response"
    assert response.error_response.error_code == NOT_FOUND


def test_no_extensions(server):
    response = _one(server, "v1alpha", lambda pb: pb.ServerReflectionRequest(
        all_extension_numbers_of_type=PACKAGE + ".Money"))
    assert response.all_extension_numbers_response.base_type_name == PACKAGE + ".Money"
    assert list(response.all_extension_numbers_response.extension_number) == []


def test_unknown_request_kind(server):
    response = _one(server, "v1alpha", lambda pb: pb.ServerReflectionRequest(host="x"))
    assert response.error_response.error_code == INVALID_ARGUMENT


# -- what is listed ----------------------------------------------------------------------------------

def _listed(target, version="v1"):
    (response,) = reflection_stream(target, version, lambda pb: [pb.ServerReflectionRequest(list_services="")])
    return [s.name for s in response.list_services_response.service]


class _PassThrough(grpcpy.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        return continuation(handler_call_details)


@pytest.mark.parametrize("interceptors", [(), (_PassThrough(),)], ids=["plain", "intercepted"])
def test_services_are_listed_as_they_are_registered(shop, interceptors):
    # the list is read at each request: a service registered after
    # enable_server_reflection is listed, and names given by hand are kept
    # (behind interceptors the handlers are kept apart: found all the same)
    handler = grpcpy.method_handlers_generic_handler(
        "late.Service", {"Call": grpcpy.unary_unary_rpc_method_handler(lambda request, context: request)})
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        server = grpcpy.server(pool, interceptors=interceptors)
        grpcpy.reflection.enable_server_reflection(["by.Hand"], server)
        from .conftest import _sync_servicer
        shop.shop_pb2_grpc.add_ShopServicer_to_server(_sync_servicer(shop), server)
        target = "127.0.0.1:%d" % server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            assert _listed(target) == ["by.Hand", REFLECTION_V1, REFLECTION_V1ALPHA, SHOP]
            server.add_generic_rpc_handlers([handler])
            assert _listed(target, "v1alpha") == [
                "by.Hand", REFLECTION_V1, REFLECTION_V1ALPHA, SHOP, "late.Service"]
        finally:
            server.stop(None)


def test_pool_argument(shop):
    # only the given pool (then grpcpy's own) is described: a file of the
    # default pool is not found through another pool
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(shop.money_pb2.DESCRIPTOR.serialized_pb)
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        server = grpcpy.server(executor)
        grpcpy.reflection.enable_server_reflection(None, server, pool=pool)
        target = "127.0.0.1:%d" % server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            money, shop_file, reflection_file = reflection_stream(target, "v1", lambda pb: [
                pb.ServerReflectionRequest(file_containing_symbol=PACKAGE + ".Money"),
                pb.ServerReflectionRequest(file_by_filename=SHOP_FILE),
                pb.ServerReflectionRequest(file_containing_symbol=REFLECTION_V1),
            ])
        finally:
            server.stop(None)
    assert _names(money) == [MONEY_FILE]
    assert shop_file.error_response.error_code == NOT_FOUND
    assert _names(reflection_file) == ["grpc/reflection/v1/reflection.proto"]


def test_on_grpcio_servers():
    # grpcpy's reflection on grpcio's sync and aio servers: those cannot tell
    # their services, so the names given (and reflection's own) are listed
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        server = grpc.server(executor)
        grpcpy.reflection.enable_server_reflection(["given.Service"], server)
        target = "127.0.0.1:%d" % server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            assert _listed(target) == ["given.Service", REFLECTION_V1, REFLECTION_V1ALPHA]
        finally:
            server.stop(None)

    async def aio():
        server = grpc.aio.server()
        grpcpy.reflection.enable_server_reflection(["given.Service"], server)
        target = "127.0.0.1:%d" % server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            pb = grpcpy.reflection.reflection_v1alpha_pb2
            async with grpcpy.aio.insecure_channel(target) as channel:
                call = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                             request_serializer=pb.ServerReflectionRequest.SerializeToString,
                                             response_deserializer=pb.ServerReflectionResponse.FromString)
                responses = [r async for r in call(iter([pb.ServerReflectionRequest(list_services="")]))]
        finally:
            await server.stop(None)
        return [s.name for s in responses[0].list_services_response.service]

    assert asyncio.run(aio()) == ["given.Service", REFLECTION_V1, REFLECTION_V1ALPHA]
