"""The `grpc` alias: install_as_grpc() puts grpcpy in sys.modules under the
names grpcio uses, with grpcio's module layout."""
import sys
import types

import grpcpy


class _GrpcModule(types.ModuleType):
    """`grpc`: every public name of grpcpy, with a grpcio-compatible
    __version__ (see grpcpy.GRPCIO_COMPAT_VERSION)."""

    def __getattr__(self, name):
        return getattr(grpcpy, name)

    def __dir__(self):
        return sorted(set(dir(grpcpy)) | set(self.__dict__))


def install():
    if isinstance(sys.modules.get("grpc"), _GrpcModule):
        return
    import grpcpy._utilities
    import grpcpy.aio
    import grpcpy.experimental
    alias = _GrpcModule("grpc", grpcpy.__doc__)
    alias.__version__ = grpcpy.GRPCIO_COMPAT_VERSION
    alias.__path__ = []          # a package, so `import grpc.x` looks up sys.modules
    alias.aio = grpcpy.aio
    alias.experimental = grpcpy.experimental
    alias._utilities = grpcpy._utilities
    sys.modules["grpc"] = alias
    sys.modules["grpc.aio"] = grpcpy.aio
    sys.modules["grpc.experimental"] = grpcpy.experimental
    sys.modules["grpc.experimental.aio"] = grpcpy.aio
    sys.modules["grpc._utilities"] = grpcpy._utilities
