"""Rich status: a google.rpc.Status carried in a call's trailing metadata
(``grpc-status-details-bin``), the API of grpcio-status's
``grpc_status.rpc_status``.

Server side::

    status = google.rpc.status_pb2.Status(code=..., message=..., details=[any_packed_detail])
    context.abort_with_status(grpcpy.status.to_status(status))        # sync
    await context.abort_with_status(grpcpy.status.to_status(status))  # aio

Client side: ``grpcpy.status.from_call(rpc_error)`` (a sync call or RpcError,
an aio AioRpcError too) and ``await grpcpy.status.aio.from_call(call)``.

The google.rpc messages come from googleapis-common-protos, an optional
dependency (``pip install grpcpy[status]``) imported on first use, so
``import grpcpy.status`` costs nothing without it.
"""
import collections

from grpcpy import _types

__all__ = ["from_call", "to_status", "aio", "GRPC_DETAILS_METADATA_KEY"]

GRPC_DETAILS_METADATA_KEY = "grpc-status-details-bin"

_NEEDS = ("grpcpy.status needs googleapis-common-protos for google.rpc.Status: "
          "pip install grpcpy[status]")


def _status_pb2():
    """google.rpc.status_pb2, or an ImportError that says what to install."""
    try:
        from google.rpc import status_pb2 as module
    except ImportError as exc:
        raise ImportError(_NEEDS) from exc
    return module


def code_to_grpc_status_code(code):
    """The StatusCode of a google.rpc code number (ValueError if none)."""
    found = _types.STATUS_BY_NUMBER.get(code)
    if found is None:
        raise ValueError("Invalid status code %s" % (code,))
    return found


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), _types.Status):
    pass


def to_status(status):
    """A grpcpy.Status (for ``abort_with_status``) from a google.rpc.Status:
    its code and message, and the whole message serialized in the
    ``grpc-status-details-bin`` trailer."""
    return _Status(code=code_to_grpc_status_code(status.code), details=status.message,
                   trailing_metadata=((GRPC_DETAILS_METADATA_KEY, status.SerializeToString()),))


def rich_status(code, details, trailing_metadata):
    """The google.rpc.Status in the trailers, checked against the call's
    status as grpcio-status checks it; None when the call has none."""
    if trailing_metadata is None:
        return None
    for key, value in trailing_metadata:
        if key != GRPC_DETAILS_METADATA_KEY:
            continue
        found = _status_pb2().Status.FromString(value)
        if _types.status_number(code) != found.code:
            raise ValueError("Code in Status proto (%s) doesn't match status code (%s)"
                             % (code_to_grpc_status_code(found.code), code))
        if details != found.message:
            raise ValueError("Message in Status proto (%s) doesn't match status details (%s)"
                             % (found.message, details))
        return found
    return None


def from_call(call):
    """The google.rpc.Status a finished call carries (a sync call, the
    RpcError a sync call raised, or a grpcpy.aio AioRpcError), or None.

    Raises ValueError when its code or message disagree with the call's
    status code or details (a peer must keep them equal)."""
    trailing = call.trailing_metadata()
    if _awaitable(trailing):
        trailing.close()
        raise TypeError("from_call got an asyncio call: use 'await grpcpy.status.aio.from_call(call)'")
    if trailing is None:
        return None
    return rich_status(call.code(), call.details(), trailing)


def _awaitable(value):
    return hasattr(value, "__await__")


def __getattr__(name):
    # grpcpy.status.aio without importing asyncio for sync users
    if name == "aio":
        import importlib
        return importlib.import_module("grpcpy.status.aio")
    raise AttributeError("module 'grpcpy.status' has no attribute %r" % (name,))
