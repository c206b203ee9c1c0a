"""grpcpy's own descriptors (grpcpy/_protos): the checked-in bytes are what
protoc makes of the .proto sources, and they live apart from protobuf's
default pool."""
import subprocess
import sys

from grpcpy._protos import regen


def test_checked_in_descriptors_match_their_sources():
    assert regen.SOURCES
    assert regen.check() == []


def test_same_symbols_as_another_copy_in_the_default_pool():
    # Another implementation's copy of the same symbols under another file
    # name in the default pool (what grpcio-health-checking does) and
    # grpcpy's: both load in one process, and the messages are interchangeable
    # on the wire.
    code = r"""
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf import message_factory
from grpcpy._protos import health_pb, regen
other = descriptor_pb2.FileDescriptorProto.FromString(regen.compile_one("grpc/health/v1/health.proto"))
other.name = "elsewhere/health.proto"
descriptor_pool.Default().Add(other)
theirs = message_factory.GetMessageClass(
    descriptor_pool.Default().FindMessageTypeByName("grpc.health.v1.HealthCheckResponse"))
ours = health_pb.HealthCheckResponse(status=health_pb.HealthCheckResponse.NOT_SERVING)
assert theirs.FromString(ours.SerializeToString()).status == 2
assert type(ours) is not theirs
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
