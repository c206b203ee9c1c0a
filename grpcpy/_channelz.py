"""What channelz (grpcpy.channelz) knows of the live channels, subchannels,
servers and sockets: their ids, and the figures of connections that have
closed.

The figures themselves are counters in the core (each connection's
``calls_started``, ``messages_sent`` ...: plain increments on paths that run
anyway), so a call pays nothing here. Channels and servers register once,
when they are made; subchannels and sockets get an id when channelz first
shows them. Ids come from one counter and are never reused (like grpc-core's
channelz uuids); every table holds its objects weakly, so channelz keeps
nothing alive. A connection's figures are added to its channel, subchannel
or server when it closes (``Node.retire``), so theirs keep counting calls of
connections that are gone.

This module is light (no protobuf): the facades import it.
"""
import itertools
import threading
import weakref

CHANNEL, SUBCHANNEL, SERVER = "channel", "subchannel", "server"

_lock = threading.Lock()
_ids = itertools.count(1)
_objects = weakref.WeakValueDictionary()      # id -> Node or socket (a facade connection)
channels = weakref.WeakValueDictionary()      # id -> Node of a top-level channel
servers = weakref.WeakValueDictionary()       # id -> Node of a server


class Node:
    """A channel, subchannel or server as channelz shows it: its id, the
    object (weakly: a channel or server; a subchannel's record strongly, as
    the record is what holds this node) and the figures of its connections
    that have closed."""

    __slots__ = ("id", "kind", "_ref", "owner", "created_ns", "calls_started", "calls_succeeded",
                 "calls_failed", "last_call_started_ns", "__weakref__")

    def __init__(self, kind, obj, owner=None):
        from grpcpy._cext import wall_ns
        self.kind = kind
        self._ref = obj if kind == SUBCHANNEL else weakref.ref(obj)
        self.owner = owner          # a subchannel's channel Node
        self.created_ns = wall_ns()
        self.calls_started = self.calls_succeeded = self.calls_failed = 0
        self.last_call_started_ns = 0
        with _lock:
            self.id = next(_ids)
            _objects[self.id] = self
            if kind == CHANNEL:
                channels[self.id] = self
            elif kind == SERVER:
                servers[self.id] = self

    @property
    def obj(self):
        """The channel, server or subchannel record (None once collected)."""
        return self._ref if self.kind == SUBCHANNEL else self._ref()

    def retire(self, core):
        """A connection closed: keep its call figures (the caller holds the
        lock of the object this node belongs to)."""
        self.calls_started += core.calls_started
        self.calls_succeeded += core.calls_succeeded
        self.calls_failed += core.calls_failed
        if core.last_call_started_ns > self.last_call_started_ns:
            self.last_call_started_ns = core.last_call_started_ns

    def figures(self, cores):
        """(started, succeeded, failed, last started ns): the retired figures
        plus those of the live connections' cores."""
        started, succeeded, failed, last = (self.calls_started, self.calls_succeeded, self.calls_failed,
                                            self.last_call_started_ns)
        for core in cores:
            started += core.calls_started
            succeeded += core.calls_succeeded
            failed += core.calls_failed
            if core.last_call_started_ns > last:
                last = core.last_call_started_ns
        return started, succeeded, failed, last


_sub_lock = threading.Lock()


def subchannel_node(sub, owner):
    """The Node of a subchannel record (the plane's Subchannel), made on
    first use by its channel (a connection) or by channelz (a query)."""
    node = sub.channelz
    if node is None:
        with _sub_lock:
            node = sub.channelz
            if node is None:
                node = sub.channelz = Node(SUBCHANNEL, sub, owner)
    return node


_side_ids = weakref.WeakKeyDictionary()      # ids of objects without a __dict__ (listening sockets)


def socket_id(conn):
    """The id of a socket (a facade's connection or a listening socket),
    given when channelz first shows it."""
    ident = getattr(conn, "_channelz_id", None) or _side_ids.get(conn)
    if ident is None:
        with _lock:
            ident = getattr(conn, "_channelz_id", None) or _side_ids.get(conn)
            if ident is None:
                ident = next(_ids)
                try:
                    conn._channelz_id = ident
                except AttributeError:      # socket.socket has slots
                    _side_ids[conn] = ident
                _objects[ident] = conn
    return ident


def forget(node):
    """A channel closed: channelz no longer lists it (grpc-core unregisters
    a channel when it is destroyed, which closing does in grpcio)."""
    with _lock:
        channels.pop(node.id, None)
        servers.pop(node.id, None)
        _objects.pop(node.id, None)


def lookup(ident):
    """The Node or socket with this id, or None."""
    return _objects.get(ident)
