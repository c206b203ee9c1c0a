"""What a servicer context tells about its call and peer: the same in the
sync and the asyncio server. A context sets `_call` (the core's ServerCall)
and `_peer_source` (its connection, which has `peer` and `auth_context`)."""
import socket

from grpcpy import _credentials, _types


def format_peer(family, addr):
    """grpcio's peer() format, for both servers and the client's view:
    ipv4:host:port, ipv6:%5Bhost%5D:port (the URI form: brackets and a
    zone's % percent-encoded), unix:path (empty for an unnamed client
    socket), unix-abstract:name."""
    if family == socket.AF_INET and addr:
        return "ipv4:%s:%d" % (addr[0], addr[1])
    if family == socket.AF_INET6 and addr:
        return "ipv6:%%5B%s%%5D:%d" % (addr[0].replace("%", "%25"), addr[1])
    if family == getattr(socket, "AF_UNIX", None):
        if isinstance(addr, (bytes, bytearray)):
            if addr[:1] == b"\0":
                return "unix-abstract:%s" % bytes(addr[1:]).decode("utf-8", "replace")
            addr = bytes(addr).decode("utf-8", "replace")
        return "unix:%s" % (addr or "")
    return "unknown" if addr is None else str(addr)


class PeerInfo:
    _metadata = None

    def invocation_metadata(self):
        if self._metadata is None:
            self._metadata = tuple(_types.Metadatum(k, v) for k, v in self._call.metadata)
        return self._metadata

    def peer(self):
        return self._peer_source.peer

    def peer_identities(self):
        return _credentials.peer_identities(self._peer_source.auth_context)

    def peer_identity_key(self):
        return _credentials.peer_identity_key(self._peer_source.auth_context)

    def auth_context(self):
        return dict(self._peer_source.auth_context)
