"""grpc.health.v1.Health served by grpcpy (sync and asyncio servers, sync
and asyncio servicers) and by grpcio-health-checking on grpcio (the
reference), called by grpcio's and grpcpy's clients: the same answers."""
import threading

import grpc
import pytest

import grpcpy
from tests.health.harness import (GRPCPY_SERVERS, NOT_SERVING, RPC_ERRORS, SERVERS, SERVICE_UNKNOWN, SERVING,
                                  Client, Served, wait_until)


def test_check_overall_service_and_set_status(served, client):
    assert client.check("") == SERVING
    served.set("pkg.Svc", NOT_SERVING)
    assert client.check("pkg.Svc") == NOT_SERVING
    served.set("pkg.Svc", SERVING)
    assert client.check("pkg.Svc") == SERVING


def test_check_of_unknown_service_is_not_found(served, client):
    with pytest.raises(RPC_ERRORS) as info:
        client.check("no.Such")
    assert info.value.code().name == "NOT_FOUND"
    assert not info.value.details()


def test_watch_streams_current_status_then_every_change(served, client):
    call = client.watch("pkg.Svc")
    responses = iter(call)
    assert next(responses).status == SERVICE_UNKNOWN
    served.set("pkg.Svc", SERVING)
    assert next(responses).status == SERVING
    served.set("pkg.Svc", NOT_SERVING)
    assert next(responses).status == NOT_SERVING
    served.set("other.Svc", SERVING)     # not watched: nothing arrives for it
    served.set("pkg.Svc", SERVING)
    assert next(responses).status == SERVING
    assert served.watchers() == 1
    call.cancel()
    assert wait_until(lambda: served.watchers() == 0)


def test_watch_of_the_overall_health(served, client):
    call = client.watch("")
    responses = iter(call)
    assert next(responses).status == SERVING
    served.set("", NOT_SERVING)
    assert next(responses).status == NOT_SERVING
    call.cancel()
    assert wait_until(lambda: served.watchers() == 0)


def test_list(served, client):
    served.set("a.A", SERVING)
    served.set("b.B", NOT_SERVING)
    if served.kind == "grpcio":
        # grpcio-health-checking declares List but does not implement it
        with pytest.raises(RPC_ERRORS) as info:
            client.list()
        assert info.value.code().name == "UNIMPLEMENTED"
        return
    assert client.list() == {"": SERVING, "a.A": SERVING, "b.B": NOT_SERVING}


def test_watch_ends_at_its_deadline_and_is_forgotten(served, client):
    call = client.watch("pkg.Svc", timeout=0.3)
    responses = iter(call)
    assert next(responses).status == SERVICE_UNKNOWN
    with pytest.raises(RPC_ERRORS) as info:
        next(responses)
    assert info.value.code().name == "DEADLINE_EXCEEDED"
    assert wait_until(lambda: served.watchers() == 0)


def test_enter_graceful_shutdown(served, client):
    served.set("pkg.Svc", SERVING)
    call = client.watch("pkg.Svc")
    responses = iter(call)
    assert next(responses).status == SERVING
    served.enter_graceful_shutdown()
    assert next(responses).status == NOT_SERVING
    served.set("pkg.Svc", SERVING)          # ignored from now on
    assert client.check("pkg.Svc") == NOT_SERVING
    assert client.check("") == NOT_SERVING
    call.cancel()
    assert wait_until(lambda: served.watchers() == 0)


@pytest.mark.parametrize("kind", SERVERS)
def test_watch_ends_when_the_server_stops(kind):
    served = Served(kind)
    client = Client("grpcpy", served.target)
    try:
        calls = [client.watch("pkg.Svc") for _ in range(3)]
        for call in calls:
            assert next(iter(call)).status == SERVICE_UNKNOWN
        assert served.watchers() == 3
        served.stop(None)
        for call in calls:
            with pytest.raises(RPC_ERRORS) as info:
                next(iter(call))
            assert info.value.code().name in ("UNAVAILABLE", "CANCELLED")
        assert wait_until(lambda: served.watchers() == 0)
    finally:
        client.close()
        served.close()


@pytest.mark.parametrize("grace", [0.5, None])
@pytest.mark.parametrize("kind", GRPCPY_SERVERS)
def test_drain_on_stop_sends_not_serving_before_the_connection_closes(kind, grace):
    served = Served(kind, options=[(grpcpy.health.DRAIN_ON_STOP, 1)])
    client = Client("grpcio", served.target)
    try:
        served.set("pkg.Svc", SERVING)
        call = client.watch("pkg.Svc")
        overall = client.watch("")
        responses, overall_responses = iter(call), iter(overall)
        assert next(responses).status == SERVING
        assert next(overall_responses).status == SERVING
        stopper = threading.Thread(target=served.stop, args=(grace,))
        stopper.start()
        # the drain reaches the open Watches, then the call ends with the server
        assert next(responses).status == NOT_SERVING
        assert next(overall_responses).status == NOT_SERVING
        for responses in (responses, overall_responses):
            with pytest.raises(RPC_ERRORS) as info:
                next(responses)
            assert info.value.code().name in ("UNAVAILABLE", "CANCELLED")
        stopper.join(30)
        assert wait_until(lambda: served.watchers() == 0)
    finally:
        client.close()
        served.close()


@pytest.mark.parametrize("kind", ["grpcpy-sync", "grpcpy-aio"])
def test_without_the_drain_option_stop_leaves_statuses_alone(kind):
    served = Served(kind)
    client = Client("grpcpy", served.target)
    try:
        call = client.watch("")
        responses = iter(call)
        assert next(responses).status == SERVING
        served.stop(0.2)
        with pytest.raises(RPC_ERRORS):
            next(responses)
        assert served.servicer._state.get("") == SERVING
    finally:
        client.close()
        served.close()


def test_grpc_health_probe_style_check():
    """grpc_health_probe's check: one Check with a deadline, exit status 0
    only for SERVING; a grpcio client against grpcpy's server and grpcpy's
    client against grpcio's."""
    def probe(make_channel, stub_class, pb, target, service=""):
        with make_channel(target) as channel:
            try:
                response = stub_class(channel).Check(pb.HealthCheckRequest(service=service), timeout=5)
            except RPC_ERRORS:
                return 2
        return 0 if response.status == pb.HealthCheckResponse.SERVING else 1

    from grpc_health.v1 import health_pb2, health_pb2_grpc
    for kind, make, stub, pb in (("grpcpy-sync", grpc.insecure_channel, health_pb2_grpc.HealthStub, health_pb2),
                                 ("grpcio", grpcpy.insecure_channel, grpcpy.health.HealthStub,
                                  grpcpy.health.health_pb2)):
        served = Served(kind)
        try:
            assert probe(make, stub, pb, served.target) == 0
            served.set("", NOT_SERVING)
            assert probe(make, stub, pb, served.target) == 1
            assert probe(make, stub, pb, served.target, "no.Such") == 2
        finally:
            served.close()
