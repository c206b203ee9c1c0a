"""What a servicer context tells about its call and peer: the same in the
sync and the asyncio server. A context sets `_call` (the core's ServerCall)
and `_peer_source` (its connection, which has `peer` and `auth_context`)."""
from grpcpy import _credentials, _types


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
