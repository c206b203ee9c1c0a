"""In-memory connections between a grpcpy channel and a grpcpy server in
the same process: no socket, no port.

A server gets a name (``add_in_memory_port``); a channel to
``grpcpy-memory:///<name>`` resolves to the address ``Address("memory",
path=name)`` and the facade's connect asks this module for a connection
instead of opening a socket. Each connect makes a fresh pair, so
reconnection after a server closed a connection works as over TCP.

- sync channel to sync server: two MemorySocket ends. The threaded
  facade's I/O loop waits on file descriptors, so each end has an eventfd
  (a counter, not a socket) that is readable while bytes or the end of the
  stream wait in its inbox; the bytes themselves go from one end's send()
  to the other's inbox in memory.
- asyncio channel to asyncio server: two MemoryTransport ends, asyncio
  transports that hand the written bytes to the other end's protocol on
  its loop: no file descriptor at all.
- across facades (a sync channel to an asyncio server, or the reverse):
  a socket.socketpair() (Unix-domain, unnamed: still no port), which both
  facades can drive.

Above the transport everything is the ordinary path: the same sans-IO
connections, call layer, deadlines, flow control and statuses.
"""
import asyncio
import itertools
import os
import socket
import threading
import weakref

from grpcpy._channel.resolver import Resolver, register_resolver
from grpcpy._channel.target import Address

SCHEME = "grpcpy-memory"
_servers = weakref.WeakValueDictionary()
_names = itertools.count(1)
_HAS_EVENTFD = hasattr(os, "eventfd")


class _MemoryResolver(Resolver):
    def addresses(self):
        return [Address("memory", path=self.target.path.lstrip("/"))]


register_resolver(SCHEME, _MemoryResolver)


def add_port(server):
    """Name a grpcpy server (sync or asyncio) for in-memory channels; the
    target those channels use."""
    name = str(next(_names))
    _servers[name] = server
    return "%s:///%s" % (SCHEME, name)


def _server(name):
    server = _servers.get(name)
    if server is None or server._state != "started":
        raise ConnectionRefusedError("no started grpcpy server at %s:///%s" % (SCHEME, name))
    return server


def _is_aio(server):
    from grpcpy.aio._server import Server as AioServer
    return isinstance(server, AioServer)


def _insecure():
    from grpcpy import _credentials
    return _credentials.insecure_auth_context()


# -- the sync facade --------------------------------------------------------------------


def connect_sync(name):
    """The client's end of a new connection to the server `name` (a socket-
    like object for the sync facade); the server has the other end.
    Raises ConnectionRefusedError when no started server has that name."""
    server = _server(name)
    if _is_aio(server):
        ours, theirs = socket.socketpair()
        _accept_aio_socket(server, theirs)
        return ours
    if _HAS_EVENTFD:
        ours, theirs = MemorySocket.pair(name)
    else:
        ours, theirs = socket.socketpair()
    if not server._admit(theirs, _insecure()):
        ours.close()
        raise ConnectionRefusedError("the grpcpy server at %s:///%s has stopped" % (SCHEME, name))
    return ours


class _Inbox:
    """One direction of a MemorySocket pair: the bytes sent and not yet
    read, whether the sender has finished, and the eventfd the reader's
    loop watches (readable exactly while there is something to read)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.data = bytearray()
        self.eof = False
        self.closed = False          # the reader closed its end
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._signalled = False

    def _signal(self):
        if not self._signalled:
            self._signalled = True
            os.eventfd_write(self.fd, 1)

    def put(self, pieces):
        with self.lock:
            if self.closed or self.eof:
                raise BrokenPipeError("in-memory connection closed")
            n = 0
            for piece in pieces:
                self.data += piece
                n += len(piece)
            if n:
                self._signal()
            return n

    def finish(self):
        with self.lock:
            if not self.closed and not self.eof:
                self.eof = True
                self._signal()

    def take(self, size):
        """Up to `size` bytes; b'' at the end; BlockingIOError when none yet."""
        with self.lock:
            data = self.data
            if data:
                out = bytes(data[:size])
                del data[:size]
            elif self.eof or self.closed:
                return b""
            else:
                out = None
            if not data and not self.eof and self._signalled:
                self._signalled = False
                try:
                    os.eventfd_read(self.fd)
                except BlockingIOError:
                    pass
            if out is None:
                raise BlockingIOError()
            return out

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.data = bytearray()
            os.close(self.fd)


class MemorySocket:
    """One end of an in-memory byte stream with the part of the socket API
    the sync facade uses (non-blocking send/sendmsg/recv_into/recv,
    shutdown, close, fileno for the loop's selector)."""

    family = None           # not an inet socket: no TCP options
    type = socket.SOCK_STREAM

    def __init__(self, inbox, outbox, name):
        self._inbox = inbox
        self._outbox = outbox
        self._fd = inbox.fd
        self._peer = "memory:%s" % (name,)

    @classmethod
    def pair(cls, name):
        a, b = _Inbox(), _Inbox()
        return cls(a, b, name), cls(b, a, name)

    def fileno(self):
        return -1 if self._inbox.closed else self._fd

    def setblocking(self, flag):
        pass

    def getpeername(self):
        return self._peer

    def getsockopt(self, *args):
        return 0

    def send(self, data):
        return self._outbox.put((data,))

    def sendmsg(self, pieces):
        return self._outbox.put(pieces)

    def recv(self, size):
        return self._inbox.take(size)

    def recv_into(self, buf, size=0):
        data = self._inbox.take(size or len(buf))
        buf[:len(data)] = data
        return len(data)

    def shutdown(self, how):
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            self._outbox.finish()

    def close(self):
        self._outbox.finish()
        self._inbox.close()


# -- the asyncio facade ------------------------------------------------------------------


async def connect_aio(loop, factory, name):
    """(transport, protocol) of a new connection to the server `name`, for
    the asyncio facade's connect. ConnectionRefusedError when no started
    server has that name."""
    server = _server(name)
    if not _is_aio(server):
        ours, theirs = socket.socketpair()
        if not server._admit(theirs, _insecure()):
            ours.close()
            raise ConnectionRefusedError("the grpcpy server at %s:///%s has stopped" % (SCHEME, name))
        return await loop.create_connection(factory, sock=ours)
    from grpcpy.aio._server import _ServerProtocol
    client_proto = factory()
    ours = MemoryTransport(loop, name)
    theirs = MemoryTransport(server._loop, name)
    ours._peer, theirs._peer = theirs, ours
    server_proto = _ServerProtocol(server)
    theirs._protocol = server_proto
    ours._protocol = client_proto
    if server._loop is loop:
        server_proto.connection_made(theirs)
    else:
        server._loop.call_soon_threadsafe(server_proto.connection_made, theirs)
    client_proto.connection_made(ours)
    return ours, client_proto


def _accept_aio_socket(server, sock):
    from grpcpy.aio._server import _ServerProtocol

    def accept():
        server._loop.create_task(server._loop.connect_accepted_socket(lambda: _ServerProtocol(server), sock))
    server._loop.call_soon_threadsafe(accept)


class MemoryTransport(asyncio.Transport):
    """One end of an in-memory asyncio connection. write() hands the bytes
    to the other end, which gives them to its protocol in a callback of its
    own loop (thread-safe: the two ends may live on different loops)."""

    def __init__(self, loop, name):
        super().__init__()
        self._loop = loop
        self._peer = None
        self._protocol = None
        self._lock = threading.Lock()
        self._incoming = []
        self._eof = False
        self._scheduled = False
        self._paused = False
        self._closing = False
        self._lost = False
        self._extra = {"peername": "memory:%s" % (name,)}

    # -- asyncio.Transport ------------------------------------------------------

    def get_extra_info(self, name, default=None):
        return self._extra.get(name, default)

    def set_protocol(self, protocol):
        self._protocol = protocol

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._closing

    def is_reading(self):
        return not self._paused and not self._closing

    def pause_reading(self):
        self._paused = True

    def resume_reading(self):
        if self._paused:
            self._paused = False
            self._schedule()

    def write(self, data):
        if self._closing or not data:
            return
        self._peer._receive(bytes(data))

    def writelines(self, list_of_data):
        self.write(b"".join(list_of_data))

    def can_write_eof(self):
        return True

    def write_eof(self):
        self._peer._receive(None)

    def get_write_buffer_size(self):
        return 0

    def get_write_buffer_limits(self):
        return (0, 0)

    def set_write_buffer_limits(self, high=None, low=None):
        pass

    def close(self):
        if self._closing:
            return
        self._closing = True
        self._peer._receive(None)
        self._loop.call_soon(self._connection_lost)

    abort = close

    # -- delivery ------------------------------------------------------------------

    def _receive(self, data):
        """From the other end (any thread): bytes, or None for its end."""
        with self._lock:
            if data is None:
                self._eof = True
            else:
                self._incoming.append(data)
        self._schedule()

    def _schedule(self):
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:      # the loop is closed: nobody reads this end
            pass

    def _deliver(self):
        with self._lock:
            self._scheduled = False
            if self._closing or self._paused:
                return
            chunks, self._incoming = self._incoming, []
            eof = self._eof
        protocol = self._protocol
        for data in chunks:
            if self._closing:
                return
            if isinstance(protocol, asyncio.BufferedProtocol):
                view = memoryview(data)
                while view:
                    buf = protocol.get_buffer(len(view))
                    n = min(len(buf), len(view))
                    buf[:n] = view[:n]
                    protocol.buffer_updated(n)
                    view = view[n:]
            else:
                protocol.data_received(data)
        if eof and not self._closing:
            if not protocol.eof_received():
                self.close()

    def _connection_lost(self):
        if self._lost:
            return
        self._lost = True
        self._protocol.connection_lost(None)
