"""grpcpy.experimental: what grpc.experimental offers that generated code and
applications use. grpcpy.experimental.aio is grpcpy.aio (imported when first
used, so the simple stubs of the sync API do not load asyncio)."""
import threading as _threading

from grpcpy import _credentials
from grpcpy._types import UsageError  # noqa: F401  (one UsageError for all of grpcpy)

# grpcio's grpc.experimental.__all__, less ssl_channel_credentials_with_custom_signer
# and wrap_server_method_handler, which grpcpy does not have yet; plus grpcpy's
# resolver registry (below).
__all__ = (
    "ChannelOptions", "ExperimentalApiWarning", "UsageError", "insecure_channel_credentials",
    "stream_stream", "stream_unary", "unary_stream", "unary_unary",
    "Address", "Resolver", "Target", "register_resolver",
)


def __getattr__(name):
    if name == "aio":   # grpc.experimental.aio is an alias of grpc.aio
        import grpcpy.aio
        return grpcpy.aio
    raise AttributeError("module 'grpcpy.experimental' has no attribute %r" % (name,))


class ChannelOptions:
    SingleThreadedUnaryStream = "SingleThreadedUnaryStream"


class ExperimentalApiWarning(Warning):
    """A warning that an API is experimental."""


def experimental_api(f):
    return f


def insecure_channel_credentials():
    """Channel credentials without transport security
    (grpc.experimental.insecure_channel_credentials): for secure_channel()
    and the simple stubs. Call credentials are refused on such channels."""
    return _INSECURE


_INSECURE = _credentials.insecure_channel_credentials()
_channels = {}
_channels_lock = _threading.Lock()


def _channel(target, options, channel_credentials, insecure, compression):
    import grpcpy
    if channel_credentials is not None and channel_credentials is not _INSECURE and not insecure:
        raise NotImplementedError("channel credentials are not available in this version of grpcpy")
    key = (target, tuple(options or ()), compression)
    with _channels_lock:
        channel = _channels.get(key)
        if channel is None:
            channel = _channels[key] = grpcpy.insecure_channel(target, options, compression)
        return channel


def _simple(kind):
    def call(request, target, method, request_serializer=None, response_deserializer=None, options=(),
             channel_credentials=None, insecure=False, call_credentials=None, compression=None,
             wait_for_ready=None, timeout=None, metadata=None, _registered_method=False):
        channel = _channel(target, options, channel_credentials, insecure, compression)
        multicallable = getattr(channel, kind)(method, request_serializer, response_deserializer)
        return multicallable(request, timeout=timeout, metadata=metadata, wait_for_ready=wait_for_ready,
                             compression=compression)
    call.__name__ = kind
    call.__doc__ = "Invoke a %s RPC on a channel cached per target (grpc.experimental.%s)." % (kind, kind)
    return call


unary_unary = _simple("unary_unary")
unary_stream = _simple("unary_stream")
stream_unary = _simple("stream_unary")
stream_stream = _simple("stream_stream")


# -- name resolution (grpcpy's own; grpcio offers no Python resolver API) --------------------
#
# register_resolver(scheme, factory): channels of both APIs made afterwards
# resolve targets "scheme:[//authority/]path" with factory(target), a
# Resolver. A Resolver does no I/O: it returns the Addresses outright
# (addresses()) or names a (host, port) for the channel to look up with the
# system resolver (lookup(), asked again on re-resolution). See
# grpcpy/_channel/resolver.py.
from grpcpy._channel.resolver import Resolver, register_resolver  # noqa: E402,F401
from grpcpy._channel.target import Address, Target  # noqa: E402,F401
