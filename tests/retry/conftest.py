"""Fixtures of the retry suite: one flaky server per implementation for
the session (calls are told apart by their keys), and clients of each
implementation made per test."""
import itertools

import pytest

from . import clients
from .service import RunningServer

_SERVERS = {}
_KEYS = itertools.count()
SERVERS = ("grpcio", "grpcpy")


def running_server(impl):
    if impl not in _SERVERS:
        _SERVERS[impl] = RunningServer(impl)
    return _SERVERS[impl]


@pytest.fixture(scope="session", autouse=True)
def _stop_servers():
    yield
    for server in _SERVERS.values():
        server.stop()


@pytest.fixture(params=SERVERS)
def server(request):
    return running_server(request.param)


@pytest.fixture
def grpcio_server():
    return running_server("grpcio")


@pytest.fixture
def fresh_server():
    made = []

    def make(impl="grpcio"):
        made.append(RunningServer(impl))
        return made[-1]
    yield make
    for server in made:
        server.stop()


def _connector(impl):
    made = []

    def make(target, config=None, **options):
        made.append(clients.make_client(impl, target, clients.options_with(config, **options)))
        return made[-1]
    return make, made


@pytest.fixture(params=clients.CLIENTS)
def client_impl(request):
    return request.param


@pytest.fixture
def connect(client_impl):
    """connect(target, config=None, **options) -> a client of the
    implementation under test (grpcio's is the reference), closed at
    teardown."""
    make, made = _connector(client_impl)
    yield make
    for client in made:
        client.close()


@pytest.fixture(params=clients.GRPCPY_CLIENTS)
def grpcpy_connect(request):
    """connect() for what grpcio's client does not do (hedging: grpcio
    reads hedgingPolicy and ignores it, one attempt per call)."""
    make, made = _connector(request.param)
    yield make
    for client in made:
        client.close()


@pytest.fixture
def key(request):
    """A key no other call of the session uses."""
    return "%s-%d" % (request.node.name, next(_KEYS))
