"""Rules each facade applied on its own: server admission (the concurrent
RPC limit) and the call-credentials plugin bounded by the call's deadline.
grpcio is the reference for both."""
import asyncio
import threading

import grpc
import pytest

from tests.security.certs import material

from .conftest import cached_client
from .drivers import HANG, Behaviour, RunningServer, is_aio, known_gap, make_client, register, wait_for


def test_maximum_concurrent_rpcs(fresh_server, server_facade):
    srv = fresh_server(server_facade, maximum_concurrent_rpcs=1)
    release = threading.Event()
    b = Behaviour("unary_unary", [("observe", "entered", lambda c: True), ("wait_event", release), ("return", b"first")])
    path = register(b)
    observer = cached_client("grpcio-sync", srv.target)
    try:
        held = observer.start("unary_unary", path, b"q")
        assert wait_for(lambda: "entered" in b.observed)
        refused = observer.unary(path, b"q")
        assert refused.status == ("RESOURCE_EXHAUSTED", "Concurrent RPC limit exceeded!")
    finally:
        release.set()
    assert held.result() == b"first"
    assert observer.unary(path, b"q").response == b"first"  # the slot is free again


class BlockingPlugin(grpc.AuthMetadataPlugin):
    """Gives its metadata only once released (or after 1.5 s, so that a
    client that waits for it is not stuck long)."""

    def __init__(self):
        self.release = threading.Event()
        self.returned = threading.Event()

    def __call__(self, context, callback):
        self.release.wait(1.5)
        callback((("x-plugin", "late"),), None)
        self.returned.set()


@pytest.fixture(scope="module")
def tls_target():
    srv = RunningServer("grpcio-sync", credentials=lambda top: top.ssl_server_credentials([material()["server"]]))
    yield "localhost:%d" % srv.port
    srv.stop()


def test_call_credentials_plugin_is_bounded_by_the_deadline(request, tls_target, client_facade):
    """A plugin that does not answer: the call ends DEADLINE_EXCEEDED at its
    deadline, while the plugin is still busy (grpcio, both facades)."""
    client = make_client(client_facade, tls_target,
                         credentials=lambda top: top.ssl_channel_credentials(material()["ca"]))
    plugin = BlockingPlugin()
    path = register(Behaviour("unary_unary", [("return", b"r")]))
    try:
        out = client.unary(path, b"q", timeout=0.5, credentials=client.top.metadata_call_credentials(plugin))
        ended_first = not plugin.returned.is_set()
    finally:
        plugin.release.set()
        client.close()
    assert out.code == "DEADLINE_EXCEEDED"
    assert ended_first, "the call ended only after the plugin returned"


def test_stop_with_grace(fresh_server, fresh_client, server_facade):
    """stop(grace): a call in flight completes; a new call, on the same
    connection or a new one, is refused (UNAVAILABLE)."""
    srv = fresh_server(server_facade)
    release = threading.Event()
    b = Behaviour("unary_unary", [("observe", "entered", lambda c: True), ("wait_event", release), ("return", b"first")])
    path = register(b)
    observer = cached_client("grpcio-sync", srv.target)
    held = observer.start("unary_unary", path, b"q")
    assert wait_for(lambda: "entered" in b.observed)
    try:
        if is_aio(server_facade):
            stopping = asyncio.run_coroutine_threadsafe(srv.server.stop(5), srv.lt.loop)
            srv.lt.call(lambda: None)  # the stop has begun
        else:
            stopping = srv.server.stop(5)
        refused = [observer.unary(path, b"q", timeout=2),
                   fresh_client("grpcio-sync", srv.target).unary(path, b"q", timeout=2)]
    finally:
        release.set()
    assert held.result() == b"first"
    if server_facade.startswith("grpcio"):
        # grpcio's servers (sync and aio: the same C core) race their own
        # stop: a call arriving on the open connection is sometimes
        # CANCELLED instead of refused
        assert refused[0].code in ("UNAVAILABLE", "CANCELLED") and refused[1].code == "UNAVAILABLE", refused
        return
    assert [o.code for o in refused] == ["UNAVAILABLE", "UNAVAILABLE"], refused
    if is_aio(server_facade):
        stopping.result(HANG)
    else:
        assert stopping.wait(HANG)


@pytest.mark.parametrize("grace", [None, 0.2])
def test_stop_cuts_off_calls_in_flight(request, fresh_server, server_facade, grace):
    """Calls still running when the grace ends (or at once, without grace):
    UNAVAILABLE "Cancelling all calls" for unary and streaming calls; the
    handler's done callback runs; new calls find nobody listening."""
    srv = fresh_server(server_facade)
    release = threading.Event()
    unary = Behaviour("unary_unary", [("on_done", "cb", lambda c: True), ("observe", "entered", lambda c: True),
                                      ("wait_event", release), ("return", b"late")])
    stream = Behaviour("unary_stream", [("yield", b"first"), ("observe", "entered", lambda c: True),
                                        ("wait_event", release)])
    observer = cached_client("grpcio-sync", srv.target)
    try:
        held = observer.start("unary_unary", register(unary), b"q", timeout=5)
        held_stream = observer.start("unary_stream", register(stream), b"q", timeout=5)
        assert held_stream.read() == b"first"
        assert wait_for(lambda: "entered" in unary.observed and "entered" in stream.observed)
        if is_aio(server_facade):
            srv.lt.run(srv.server.stop(grace))
        else:
            assert srv.server.stop(grace).wait(HANG)
        outcomes = [held.outcome(), held_stream.outcome()]
    finally:
        release.set()
    assert [o.code for o in outcomes] == ["UNAVAILABLE", "UNAVAILABLE"], outcomes
    assert wait_for(lambda: unary.observed["cb"])
    assert observer.unary(register(Behaviour("unary_unary", [("return", b"r")])), b"q", timeout=2).code == "UNAVAILABLE"
    assert [o.details for o in outcomes] == ["Cancelling all calls"] * 2
