"""Regenerate the checked-in descriptor modules from the .proto files here:
``python -m grpcpy._protos.regen`` (needs grpcio-tools for protoc).

For each ``<name>.proto`` in this directory's ``sources`` table, writes
``<module>.py`` holding its serialized FileDescriptorProto. ``check()``
returns the modules whose bytes differ from a fresh compile (the test)."""
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

HERE = os.path.dirname(os.path.abspath(__file__))

# module name -> the .proto's path under HERE (also its name in the pool).
# The paths are the standard ones, so reflection clients asking for a file by
# name (grpcurl, the grpcio-reflection database) find it under the name they
# know.
SOURCES = {
    "health_pb": "grpc/health/v1/health.proto",
    "reflection_v1_pb": "grpc/reflection/v1/reflection.proto",
    "reflection_v1alpha_pb": "grpc/reflection/v1alpha/reflection.proto",
    "channelz_pb": "grpc/channelz/v1/channelz.proto",
    "orca_load_report_pb": "xds/data/orca/v3/orca_load_report.proto",
    "orca_service_pb": "xds/service/orca/v3/orca.proto",
}

HEADER = '''"""Descriptors of {proto} (grpcpy's own copy; see grpcpy/_protos).
Regenerate with: python -m grpcpy._protos.regen"""
from grpcpy._protos import build as _build

DESCRIPTOR = _build(
    {data!r},
    __name__, globals())
'''


def compile_one(proto):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.pb")
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", "-I" + HERE,
             "--descriptor_set_out=" + out, proto],
            check=True)
        with open(out, "rb") as f:
            files = descriptor_pb2.FileDescriptorSet.FromString(f.read()).file
    (only,) = [f for f in files if f.name == proto]
    return only.SerializeToString()


def _wanted():
    return {module: compile_one(proto) for module, proto in SOURCES.items()}


def check():
    stale = []
    for module, data in _wanted().items():
        path = os.path.join(HERE, module + ".py")
        text = open(path).read() if os.path.exists(path) else ""
        if text != HEADER.format(proto=SOURCES[module], data=data):
            stale.append(module)
    return stale


def main():
    for module, data in _wanted().items():
        with open(os.path.join(HERE, module + ".py"), "w") as f:
            f.write(HEADER.format(proto=SOURCES[module], data=data))
        print("wrote", module)


if __name__ == "__main__":
    main()
