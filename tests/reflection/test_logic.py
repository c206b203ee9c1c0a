"""The request-handling object both facades' handlers run (no server)."""
from google.protobuf import descriptor_pb2, descriptor_pool

from grpcpy.reflection import reflection_pb2 as pb
from grpcpy.reflection._logic import Reflection, ReflectionStream


def _diamond_pool():
    # top.proto imports left.proto and right.proto, which both import base.proto
    pool = descriptor_pool.DescriptorPool()
    for name, imports in [("base", []), ("left", ["base"]), ("right", ["base"]), ("top", ["left", "right"])]:
        proto = descriptor_pb2.FileDescriptorProto(
            name="d/%s.proto" % name, package="d", syntax="proto3",
            dependency=["d/%s.proto" % i for i in imports])
        proto.message_type.add(name=name.capitalize())
        pool.Add(proto)
    return pool


def _files(response):
    return [descriptor_pb2.FileDescriptorProto.FromString(b).name
            for b in response.file_descriptor_response.file_descriptor_proto]


def test_each_file_once_per_stream():
    stream = ReflectionStream(Reflection(pool=_diamond_pool()))
    first = stream.respond(pb.ServerReflectionRequest(file_containing_symbol="d.Top"))
    assert _files(first) == ["d/top.proto", "d/left.proto", "d/right.proto", "d/base.proto"]
    # asked again: the file itself, nothing it imports
    assert _files(stream.respond(pb.ServerReflectionRequest(file_by_filename="d/top.proto"))) == ["d/top.proto"]
    assert _files(stream.respond(pb.ServerReflectionRequest(file_containing_symbol="d.Base"))) == ["d/base.proto"]
    # a new stream starts afresh
    other = ReflectionStream(Reflection(pool=_diamond_pool()))
    assert _files(other.respond(pb.ServerReflectionRequest(file_containing_symbol="d.Left"))) == [
        "d/left.proto", "d/base.proto"]


def test_names_listed():
    registered = {"b.Later"}
    reflection = Reflection("a.One", registered=lambda: set(registered))
    assert reflection.service_names() == ["a.One", "b.Later"]
    registered.add("c.Latest")
    assert reflection.service_names() == ["a.One", "b.Later", "c.Latest"]
