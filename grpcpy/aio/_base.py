"""grpcpy.aio's small shared pieces: EOF, the error classes, Metadata."""
from collections import OrderedDict
from collections.abc import Collection

# BaseError and UsageError are defined once, in _types, so grpcpy.experimental
# and the sync API raise the same UsageError without importing asyncio.
from grpcpy._types import BaseError, RpcError, StatusCode, UsageError  # noqa: F401


class _EOFType:
    """What read() returns when the stream has no more messages."""

    __slots__ = ()

    def __repr__(self):
        return "<grpcpy.aio.EOF>"

    def __bool__(self):
        return False

    def __reduce__(self):
        return "EOF"


EOF = _EOFType()


class InternalError(BaseError, RuntimeError):
    """An error in grpcpy.aio itself."""


class AbortError(BaseError, RuntimeError):
    """Raised inside a handler by context.abort(); ends the handler."""


class Metadata(Collection):
    """Ordered multi-map of metadata: key -> values in arrival order.
    Indexing returns the first value of a key; it compares equal to a tuple of
    the same (key, value) pairs."""

    def __init__(self, *args):
        self._metadata = OrderedDict()
        for key, value in args:
            self.add(key, value)

    @classmethod
    def from_tuple(cls, raw_metadata):
        if raw_metadata:
            return cls(*raw_metadata)
        return cls()

    @classmethod
    def _create(cls, raw):
        if raw is None:
            return cls()
        if isinstance(raw, cls):
            return raw
        return cls(*raw)

    def add(self, key, value):
        self._metadata.setdefault(key, []).append(value)

    def __len__(self):
        return sum(len(values) for values in self._metadata.values())

    def __getitem__(self, key):
        try:
            return self._metadata[key][0]
        except (KeyError, IndexError) as exc:
            raise KeyError(repr(key)) from exc

    def __setitem__(self, key, value):
        values = self._metadata.get(key)
        if values:
            values[0] = value
        else:
            self._metadata[key] = [value]

    def __delitem__(self, key):
        values = self._metadata.get(key)
        if not values:
            raise KeyError(repr(key))
        del values[0]
        if not values:
            del self._metadata[key]

    def delete_all(self, key):
        del self._metadata[key]

    def __iter__(self):
        for key, values in self._metadata.items():
            for value in values:
                yield (key, value)

    def keys(self):
        return self._metadata.keys()

    def values(self):
        for values in self._metadata.values():
            yield from values

    def items(self):
        return iter(self)

    def get(self, key, default=None):
        values = self._metadata.get(key)
        return values[0] if values else default

    def get_all(self, key):
        return list(self._metadata.get(key, ()))

    def set_all(self, key, values):
        self._metadata[key] = list(values)

    def __contains__(self, key):
        return key in self._metadata

    def __eq__(self, other):
        if isinstance(other, Metadata):
            return self._metadata == other._metadata
        if isinstance(other, tuple):
            return tuple(self) == other
        return NotImplemented

    def __add__(self, other):
        if isinstance(other, Metadata):
            other = tuple(other)
        return Metadata(*(tuple(self) + tuple(other)))

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, tuple(self))


class AioRpcError(RpcError):
    """The error a grpcpy.aio call raises when it ends with a status other
    than OK."""

    def __init__(self, code, initial_metadata=None, trailing_metadata=None, details=None,
                 debug_error_string=None):
        super().__init__()
        self._code = code
        self._details = details
        self._initial_metadata = initial_metadata if initial_metadata is not None else Metadata()
        self._trailing_metadata = trailing_metadata if trailing_metadata is not None else Metadata()
        self._debug_error_string = debug_error_string

    def code(self):
        return self._code

    def details(self):
        return self._details

    def initial_metadata(self):
        return self._initial_metadata

    def trailing_metadata(self):
        return self._trailing_metadata

    def debug_error_string(self):
        return self._debug_error_string

    def _repr(self):
        return '<%s of RPC that terminated with:\n\tstatus = %s\n\tdetails = "%s"\n\tdebug_error_string = "%s"\n>' % (
            type(self).__name__, self._code, self._details, self._debug_error_string)

    def __repr__(self):
        return self._repr()

    def __str__(self):
        return self._repr()

    def __reduce__(self):
        return (type(self), (self._code, self._initial_metadata, self._trailing_metadata,
                             self._details, self._debug_error_string))
