"""Fixtures for the behaviour suite: one running server per facade for the
whole session, clients per facade, and the `known_gap` marker helper.

Client-side behaviour runs the `client` fixture (each facade) against the
grpcio sync server; server-side behaviour runs the `server` fixture (each
facade) observed by a grpcio sync client (`observer`). So one side at a time
is under test and the other is the reference implementation."""
import pytest

from . import drivers

_SERVERS = {}
_CLIENTS = {}


def running_server(facade):
    if facade not in _SERVERS:
        _SERVERS[facade] = drivers.RunningServer(facade)
    return _SERVERS[facade]


def cached_client(facade, target):
    key = (facade, target)
    if key not in _CLIENTS:
        _CLIENTS[key] = drivers.make_client(facade, target)
    return _CLIENTS[key]


@pytest.fixture(scope="session", autouse=True)
def _teardown_all():
    yield
    for client in _CLIENTS.values():
        client.close()
    for server in _SERVERS.values():
        server.stop()


@pytest.fixture(params=drivers.FACADES)
def client_facade(request):
    return request.param


@pytest.fixture
def client(client_facade):
    """A client of the facade under test, connected to the grpcio sync server."""
    return cached_client(client_facade, running_server("grpcio-sync").target)


@pytest.fixture(params=drivers.FACADES)
def server_facade(request):
    return request.param


@pytest.fixture
def server(server_facade):
    return running_server(server_facade)


@pytest.fixture
def observer(server):
    """The grpcio sync client that watches the server under test."""
    return cached_client("grpcio-sync", server.target)


@pytest.fixture
def fresh_client(request):
    """make(facade, target, **channel kw) -> a client closed at teardown."""
    made = []

    def make(facade, target, **kw):
        made.append(drivers.make_client(facade, target, **kw))
        return made[-1]
    yield make
    for c in made:
        c.close()


@pytest.fixture
def fresh_server():
    """make(facade, **server kw) -> a RunningServer stopped at teardown."""
    made = []

    def make(facade, **kw):
        made.append(drivers.RunningServer(facade, **kw))
        return made[-1]
    yield make
    for s in made:
        s.stop()
        # A later server may get the same port: a client cached for this
        # one would meet it in its reconnect backoff (connection refused).
        for key in [k for k in _CLIENTS if k[1] == s.target]:
            _CLIENTS.pop(key).close()


@pytest.fixture(params=[f for f in drivers.FACADES if drivers.is_aio(f)])
def aio_client(request):
    """A client of an asyncio facade (for the grpc.aio-only API)."""
    return cached_client(request.param, running_server("grpcio-sync").target)
