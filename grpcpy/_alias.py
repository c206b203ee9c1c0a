"""The `grpc` alias: install_as_grpc() puts grpcpy in sys.modules under the
names grpcio uses, with grpcio's module layout."""
import sys
import types

import grpcpy


class _GrpcModule(types.ModuleType):
    """`grpc`: every public name of grpcpy, with a grpcio-compatible
    __version__ (see grpcpy.GRPCIO_COMPAT_VERSION).

    The alias is a view of grpcpy, for writing too: assigning or deleting a
    name (other than a dunder or a submodule the alias holds itself) does so
    on grpcpy. Instrumentation packages wrap grpcio's entry points in place
    (opentelemetry-instrumentation-grpc replaces grpc.insecure_channel,
    grpc.secure_channel and grpc.server); through the alias they wrap
    grpcpy's, so a program that calls grpcpy.insecure_channel directly is
    instrumented as well as one that calls grpc.insecure_channel, as
    grpc.aio already is grpcpy.aio."""

    _OWN = frozenset(("aio", "experimental", "_utilities"))

    def __getattr__(self, name):
        return getattr(grpcpy, name)

    def __setattr__(self, name, value):
        if name in self._OWN or name.startswith("__"):
            types.ModuleType.__setattr__(self, name, value)
        else:
            setattr(grpcpy, name, value)

    def __delattr__(self, name):
        if name in self._OWN or name.startswith("__"):
            types.ModuleType.__delattr__(self, name)
        else:
            delattr(grpcpy, name)

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
    sys.meta_path.insert(0, _ChannelzFinder())


class _ChannelzFinder:
    """grpcio-channelz's servicer module (grpc_channelz.v1.channelz) answers
    from grpcio's C core (grpc._cython), which the alias does not have and
    which knows nothing of grpcpy's channels. Under the alias that one name
    imports grpcpy.channelz's servicer instead: ``add_channelz_servicer``,
    ``ChannelzServicer`` and ``aio.ChannelzServicer``. The package's message
    and stub modules (channelz_pb2, channelz_pb2_grpc) stay the real ones:
    they use only the public API. Its private modules that read the C core
    (_servicer, _async) still fail to import, naming grpc._cython."""

    NAME = "grpc_channelz.v1.channelz"

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.NAME:
            return None
        import importlib.util
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        from grpcpy import channelz
        module.add_channelz_servicer = channelz.add_channelz_servicer
        module.ChannelzServicer = channelz.ChannelzServicer
        module.aio = types.SimpleNamespace(ChannelzServicer=channelz.AioChannelzServicer)
        module.__all__ = ["ChannelzServicer", "add_channelz_servicer", "aio"]
