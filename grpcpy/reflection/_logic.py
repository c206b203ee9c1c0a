"""Server reflection without I/O: a request message in, a response message
out. The sync and aio handlers (grpcpy.reflection) only move messages.

v1 and v1alpha messages are the same on the wire (same fields and numbers,
another package), so one set of classes (v1) reads and writes both services.

Descriptors are looked up in the user's pool (protobuf's default pool unless
given), then in grpcpy's private pool (grpcpy/_protos), so the built-in
services (health, reflection ...) are describable in a process that never
loaded another implementation's copy of their descriptors.
"""
import importlib
import logging
import pkgutil
import threading

from google.protobuf import descriptor_pool

import grpcpy._protos as _own
from grpcpy._protos import reflection_v1_pb as pb

_LOGGER = logging.getLogger("grpcpy.reflection")

_NOT_FOUND = 5
_INVALID_ARGUMENT = 3

_own_loaded = False
_own_lock = threading.Lock()


def _load_own_protos():
    """Import every descriptor module of grpcpy's private pool once, so a
    built-in service listed by hand but not imported yet is describable
    (a miss is rare: the modules of registered services are imported)."""
    global _own_loaded
    with _own_lock:
        if _own_loaded:
            return
        for module in pkgutil.iter_modules(_own.__path__):
            if module.name.endswith("_pb"):
                try:
                    importlib.import_module("grpcpy._protos." + module.name)
                except Exception:      # one broken module must not hide the others
                    _LOGGER.exception("cannot load grpcpy._protos.%s", module.name)
        _own_loaded = True


class Reflection:
    """What a server tells about itself; shared by all its reflection
    streams.

    service_names: names always listed; registered: a callable returning the
    names of the services on the server now (or None), read at each
    list_services so services added later are listed too."""

    def __init__(self, service_names=(), pool=None, registered=None):
        if isinstance(service_names, str):    # one name, not its letters
            service_names = (service_names,)
        self._names = frozenset(service_names or ())
        self._registered = registered
        first = descriptor_pool.Default() if pool is None else pool
        self._pools = (first,) if first is _own.POOL else (first, _own.POOL)

    def service_names(self):
        names = set(self._names)
        if self._registered is not None:
            names.update(self._registered())
        return sorted(names)

    def _search(self, find, retry=True):
        """The first answer of find(pool) over the pools; on a miss, once per
        process, every private module is loaded and the pools asked again."""
        for pool in self._pools:
            try:
                return find(pool)
            except KeyError:
                pass
        if retry and not _own_loaded:
            _load_own_protos()
            return self._search(find, False)
        return None

    def file_by_name(self, name):
        return self._search(lambda pool: pool.FindFileByName(name))

    def file_containing_symbol(self, symbol):
        """Messages, enums, enum values, services, fields, nested types,
        extensions; and methods ("pkg.Service.Method"), which protobuf's pool
        does not resolve but describe tools ask for."""
        def find(pool):
            try:
                return pool.FindFileContainingSymbol(symbol)
            except KeyError:
                service, _, method = symbol.rpartition(".")
                found = pool.FindServiceByName(service)   # KeyError: not a method either
                if method not in found.methods_by_name:
                    raise
                return found.file
        return self._search(find)

    def file_containing_extension(self, type_name, number):
        return self._search(
            lambda pool: pool.FindExtensionByNumber(pool.FindMessageTypeByName(type_name), number).file)

    def extension_numbers(self, type_name):
        """The sorted numbers of every known extension of a message type
        (over all pools), or None when no pool knows the type."""
        known = False
        numbers = set()
        for pool in self._pools:
            try:
                message = pool.FindMessageTypeByName(type_name)
            except KeyError:
                continue
            known = True
            numbers.update(extension.number for extension in pool.FindAllExtensions(message))
        if not known and not _own_loaded:
            _load_own_protos()
            return self.extension_numbers(type_name)
        return sorted(numbers) if known else None


class ReflectionStream:
    """One ServerReflectionInfo stream. A file descriptor response carries
    the file asked for and those of its transitive imports not sent earlier
    on this stream (the protocol allows it; grpc-go and the clients built
    against it do so: grpcurl, grpcui, grpc_cli keep what they received).
    The file asked for is always sent, even if sent before."""

    def __init__(self, reflection):
        self._reflection = reflection
        self._sent = set()

    def _files(self, file):
        protos = []
        queue = [file]
        seen = set()
        while queue:
            current = queue.pop(0)
            if current.name in seen:
                continue
            seen.add(current.name)
            if not protos or current.name not in self._sent:
                self._sent.add(current.name)
                protos.append(current.serialized_pb)
            queue.extend(current.dependencies)
        return pb.FileDescriptorResponse(file_descriptor_proto=protos)

    def respond(self, request):
        """The response to one ServerReflectionRequest (a v1 message; a
        v1alpha one read as v1 is the same)."""
        reflection = self._reflection
        response = pb.ServerReflectionResponse(valid_host=request.host, original_request=request)
        kind = request.WhichOneof("message_request")
        if kind == "list_services":
            response.list_services_response.service.extend(
                pb.ServiceResponse(name=name) for name in reflection.service_names())
            return response
        if kind == "all_extension_numbers_of_type":
            type_name = request.all_extension_numbers_of_type
            numbers = reflection.extension_numbers(type_name)
            if numbers is None:
                return _error(response, _NOT_FOUND, "type not found: %s" % type_name)
            answer = response.all_extension_numbers_response
            answer.base_type_name = type_name
            answer.extension_number.extend(numbers)
            return response
        if kind == "file_by_filename":
            file = reflection.file_by_name(request.file_by_filename)
            missing = "file not found: %s" % request.file_by_filename
        elif kind == "file_containing_symbol":
            file = reflection.file_containing_symbol(request.file_containing_symbol)
            missing = "symbol not found: %s" % request.file_containing_symbol
        elif kind == "file_containing_extension":
            wanted = request.file_containing_extension
            file = reflection.file_containing_extension(wanted.containing_type, wanted.extension_number)
            missing = "extension not found: %s %d" % (wanted.containing_type, wanted.extension_number)
        else:
            return _error(response, _INVALID_ARGUMENT, "invalid request: no known request kind set")
        if file is None:
            return _error(response, _NOT_FOUND, missing)
        response.file_descriptor_response.CopyFrom(self._files(file))
        return response


def _error(response, code, message):
    response.error_response.error_code = code
    response.error_response.error_message = message
    return response
