"""grpcpy's own protobuf descriptors (health, reflection, channelz ...).

They live in a private DescriptorPool, not protobuf's default pool: the
symbols are the standard ones (``grpc.health.v1.HealthCheckRequest`` ...) and
the default pool refuses a second definition of a symbol, so a process that
also imports grpcio-health-checking, grpcio-reflection or grpcio-channelz
(which put the same symbols in the default pool under other file names) could
not load ours there. Messages built from this pool are wire-identical.

Each module here holds the serialized FileDescriptorProto of one ``.proto``
file in this directory (written for grpcpy; field numbers and names are the
standard ones) and turns it into message classes with ``build``. The bytes
are produced by ``python -m grpcpy._protos.regen`` (protoc from grpcio-tools)
and checked in, so the runtime needs no protoc and no generated code tied to
one protobuf release; tests/test_protos.py checks they match the sources.
"""
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.internal import builder as _builder

POOL = descriptor_pool.DescriptorPool()


def _add_dependencies(serialized):
    """Well-known types (any, duration, timestamp, wrappers, descriptor ...)
    a file imports: copied from protobuf's own modules into POOL."""
    proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
    for name in proto.dependency:
        try:
            POOL.FindFileByName(name)
            continue
        except KeyError:
            pass
        if not name.startswith("google/protobuf/"):
            # one of ours: its module adds it (and its own imports)
            import importlib
            from grpcpy._protos.regen import SOURCES
            modules = [module for module, path in SOURCES.items() if path == name]
            if not modules:
                raise KeyError(f"{proto.name} imports {name}, which is not in grpcpy._protos")
            importlib.import_module("grpcpy._protos." + modules[0])
            continue
        import importlib
        from google.protobuf import descriptor_pool as _dp
        # protobuf's module for it puts it in the default pool
        importlib.import_module(name[:-len(".proto")].replace("/", ".") + "_pb2")
        known = _dp.Default().FindFileByName(name)
        _add_dependencies(known.serialized_pb)
        POOL.AddSerializedFile(known.serialized_pb)


def build(serialized, module_name, namespace):
    """Add one file to POOL and put its message classes, enums and their
    values into ``namespace`` (a module's globals), as generated code does.
    Returns the FileDescriptor."""
    _add_dependencies(serialized)
    file = POOL.AddSerializedFile(serialized)
    _builder.BuildMessageAndEnumDescriptors(file, namespace)
    _builder.BuildTopDescriptorsAndMessages(file, module_name, namespace)
    return file
