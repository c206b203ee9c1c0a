import pytest

from tests.health.harness import CLIENTS, SERVERS, Client, Served


@pytest.fixture(params=SERVERS)
def served(request):
    server = Served(request.param)
    yield server
    server.close()


@pytest.fixture(params=CLIENTS)
def client(request, served):
    c = Client(request.param, served.target)
    yield c
    c.close()
