"""Server reflection and health: a server that describes itself, and a
client that knows nothing of its protos.

The server serves demo.Greeter and grpcpy.health (what every production
server runs beside its own services), and enables reflection with
`grpcpy.reflection.enable_server_reflection(None, server)`: every service
registered on the server is listed (reflection v1 and v1alpha included),
and described from protobuf's default pool, where generated `_pb2` modules
put their files (here the file is built in code, so the example needs no
protoc). The client asks, on one reflection stream, for the list of services
and for the file of the method symbol `demo.Greeter.SayHello` (what
`grpcurl describe demo.Greeter.SayHello` asks for), builds message classes
from the files it received, and calls the method with them.

The health service's descriptors come from grpcpy's own pool: nothing in
this program imports a health .proto, yet reflection describes it.

    python examples/reflection.py
"""
from concurrent import futures

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import timestamp_pb2  # noqa: F401  (greeter.proto imports it)

import grpcpy
import grpcpy.reflection
from grpcpy import health

GREETER_PROTO = text_format.Parse('''
    name: "demo/greeter.proto" package: "demo" syntax: "proto3"
    dependency: "google/protobuf/timestamp.proto"
    message_type { name: "HelloRequest"
                   field { name: "name" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL } }
    message_type { name: "HelloReply"
                   field { name: "message" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL }
                   field { name: "at" number: 2 type: TYPE_MESSAGE label: LABEL_OPTIONAL
                           type_name: ".google.protobuf.Timestamp" } }
    service { name: "Greeter"
              method { name: "SayHello" input_type: ".demo.HelloRequest" output_type: ".demo.HelloReply" } }
''', descriptor_pb2.FileDescriptorProto())


def serve():
    # what importing a generated greeter_pb2 would do: its file in the default pool
    greeter = descriptor_pool.Default().AddSerializedFile(GREETER_PROTO.SerializeToString())
    request_class = message_factory.GetMessageClass(greeter.message_types_by_name["HelloRequest"])
    reply_class = message_factory.GetMessageClass(greeter.message_types_by_name["HelloReply"])

    def say_hello(request, context):
        reply = reply_class(message="Hello, %s!" % request.name)
        reply.at.GetCurrentTime()
        return reply

    server = grpcpy.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler("demo.Greeter", {
        "SayHello": grpcpy.unary_unary_rpc_method_handler(
            say_hello, request_class.FromString, reply_class.SerializeToString)}),))
    health.add_HealthServicer_to_server(health.HealthServicer(), server)
    grpcpy.reflection.enable_server_reflection(None, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, "127.0.0.1:%d" % port


def ask(channel, requests):
    """Several reflection requests on one stream (v1)."""
    pb = grpcpy.reflection.reflection_pb2
    info = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                 request_serializer=pb.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=pb.ServerReflectionResponse.FromString)
    return list(info(iter(pb.ServerReflectionRequest(**r) for r in requests), timeout=10))


def pool_of(files):
    """A pool of the files received: each added once its imports are in."""
    pool = descriptor_pool.DescriptorPool()
    pending = [descriptor_pb2.FileDescriptorProto.FromString(data) for data in files]
    added = set()
    while pending:
        ready = [f for f in pending if set(f.dependency) <= added]
        for f in ready:
            pool.Add(f)
            added.add(f.name)
        pending = [f for f in pending if f.name not in added]
    return pool


def main():
    server, target = serve()
    try:
        with grpcpy.insecure_channel(target) as channel:
            listed, described, health_file = ask(channel, [
                {"list_services": ""}, {"file_containing_symbol": "demo.Greeter.SayHello"},
                {"file_containing_symbol": "grpc.health.v1.Health.Watch"}])
            print("services:", ", ".join(s.name for s in listed.list_services_response.service))
            (watch_file,) = health_file.file_descriptor_response.file_descriptor_proto
            print("grpc.health.v1.Health.Watch is in",
                  descriptor_pb2.FileDescriptorProto.FromString(watch_file).name)
            files = described.file_descriptor_response.file_descriptor_proto
            pool = pool_of(files)
            method = pool.FindMethodByName("demo.Greeter.SayHello")
            print("%s is in %s (with %s)" % (method.full_name, method.containing_service.file.name,
                                             ", ".join(d.name for d in method.containing_service.file.dependencies)))
            print("rpc %s(%s) returns (%s)" % (method.name, method.input_type.full_name,
                                               method.output_type.full_name))
            print("%s: %s" % (method.output_type.full_name, ", ".join(
                "%s %s" % (f.message_type.full_name if f.message_type else "string", f.name)
                for f in method.output_type.fields)))
            # the dynamic call: classes from the received descriptors only
            request_class = message_factory.GetMessageClass(method.input_type)
            reply_class = message_factory.GetMessageClass(method.output_type)
            say_hello = channel.unary_unary("/demo.Greeter/SayHello",
                                            request_serializer=request_class.SerializeToString,
                                            response_deserializer=reply_class.FromString)
            reply = say_hello(request_class(name="reflection"), timeout=10)
            print("dynamic call:", reply.message, "(at set: %s)" % reply.HasField("at"))
    finally:
        server.stop(None)


if __name__ == "__main__":
    main()
