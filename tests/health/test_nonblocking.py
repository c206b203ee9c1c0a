"""The sync server's non-blocking response protocol (grpcio's
experimental_non_blocking): a handler that returns at once and sends its
responses through send_response_callback holds no worker thread, so open
health Watches cannot starve the server's pool."""
import threading
from concurrent import futures

import grpc
import pytest

import grpcpy
from tests.health.harness import GRPCPY_SERVERS, NOT_SERVING, RPC_ERRORS, SERVICE_UNKNOWN, SERVING, Client, Served, wait_until


def test_32_watches_on_16_threads_are_all_served():
    served = Served("grpcpy-sync", workers=16)
    client = Client("grpcpy", served.target)
    try:
        calls = [client.watch("pkg.Svc", timeout=30) for _ in range(32)]
        streams = [iter(call) for call in calls]
        for responses in streams:
            assert next(responses).status == SERVICE_UNKNOWN
        assert served.watchers() == 32
        # no worker is held, and a unary call still gets through
        assert wait_until(lambda: served.server._busy == 0)
        assert client.check("") == SERVING
        served.set("pkg.Svc", SERVING)
        for responses in streams:
            assert next(responses).status == SERVING
        assert served.active_calls() >= 32      # the Watches still count as calls in flight
        for call in calls:
            call.cancel()
        assert wait_until(lambda: served.watchers() == 0)
        assert wait_until(lambda: served.active_calls() == 0)
    finally:
        client.close()
        served.close()


@pytest.mark.parametrize("kind", GRPCPY_SERVERS)
def test_set_never_deadlocks_against_watches_being_cancelled(kind):
    served = Served(kind, workers=8)
    client = Client("grpcpy", served.target)
    stop = threading.Event()

    def flip():
        status = SERVING
        while not stop.is_set():
            served.set("pkg.Svc", status)
            status = NOT_SERVING if status == SERVING else SERVING

    flipper = threading.Thread(target=flip, daemon=True)
    try:
        flipper.start()
        for _ in range(4):
            calls = [client.watch("pkg.Svc") for _ in range(25)]
            for call in calls:
                next(iter(call))
            for call in calls:
                call.cancel()
        assert wait_until(lambda: served.watchers() == 0, timeout=30)
        stop.set()
        flipper.join(30)
        assert not flipper.is_alive()
        assert client.check("pkg.Svc") in (SERVING, NOT_SERVING)
    finally:
        stop.set()
        client.close()
        served.close()


@pytest.mark.parametrize("blocking", [False, True])
def test_experimental_non_blocking_false_gives_a_blocking_watch(blocking):
    servicer = grpcpy.health.HealthServicer(experimental_non_blocking=not blocking)
    server = grpcpy.server(futures.ThreadPoolExecutor(4))
    grpcpy.health.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = Client("grpcio", "127.0.0.1:%d" % port)
    try:
        call = client.watch("s")
        responses = iter(call)
        assert next(responses).status == SERVICE_UNKNOWN
        # the blocking Watch holds its worker; the non-blocking one does not
        assert wait_until(lambda: server._busy == (1 if blocking else 0))
        servicer.set("s", SERVING)
        servicer.set("s", NOT_SERVING)
        statuses = [next(responses).status]
        if statuses[0] != NOT_SERVING:      # the blocking Watch may fold the two into the newest
            statuses.append(next(responses).status)
        assert statuses[-1] == NOT_SERVING
        call.cancel()
        assert wait_until(lambda: servicer._state.watcher_count() == 0)
        assert wait_until(lambda: server._busy == 0)
    finally:
        client.close()
        server.stop(None).wait(30)


# -- the protocol itself, with grpcio's sync server as the reference -------------------

def _server(impl, behavior, workers=4):
    mod = grpc if impl == "grpcio" else grpcpy
    server = mod.server(futures.ThreadPoolExecutor(workers))
    handler = mod.unary_stream_rpc_method_handler(behavior)
    server.add_generic_rpc_handlers((mod.method_handlers_generic_handler("t.S", {"M": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, "127.0.0.1:%d" % port


def _non_blocking(fn):
    fn.experimental_non_blocking = True
    return fn


@pytest.mark.parametrize("impl", ["grpcio", "grpcpy"])
def test_responses_sent_later_from_another_thread_then_none_ends_ok(impl):
    returned = threading.Event()

    @_non_blocking
    def behavior(request, context, send_response_callback):
        def later():
            returned.wait(10)
            for i in range(3):
                send_response_callback(b"r%d" % i)
            send_response_callback(None)
        threading.Thread(target=later, daemon=True).start()
        returned.set()

    server, target = _server(impl, behavior)
    try:
        with grpcpy.insecure_channel(target) as channel:
            call = channel.unary_stream("/t.S/M")(b"q", timeout=10)
            assert list(call) == [b"r0", b"r1", b"r2"]
            assert call.code() == grpcpy.StatusCode.OK
    finally:
        server.stop(None).wait(30)


@pytest.mark.parametrize("impl", ["grpcio", "grpcpy"])
def test_a_code_set_by_the_handler_is_the_status_at_the_end(impl):
    @_non_blocking
    def behavior(request, context, send_response_callback):
        send_response_callback(b"one")
        context.set_code(grpcpy.StatusCode.FAILED_PRECONDITION if impl == "grpcpy"
                         else grpc.StatusCode.FAILED_PRECONDITION)
        context.set_details("not yet")
        send_response_callback(None)

    server, target = _server(impl, behavior)
    try:
        with grpcpy.insecure_channel(target) as channel:
            call = channel.unary_stream("/t.S/M")(b"q", timeout=10)
            received = []
            with pytest.raises(grpcpy.RpcError):
                for message in call:
                    received.append(message)
            assert received == [b"one"]
            assert call.code() == grpcpy.StatusCode.FAILED_PRECONDITION
            assert call.details() == "not yet"
    finally:
        server.stop(None).wait(30)


@pytest.mark.parametrize("impl", ["grpcio", "grpcpy"])
def test_client_cancel_runs_the_context_callbacks(impl):
    ended = threading.Event()
    sends = []

    @_non_blocking
    def behavior(request, context, send_response_callback):
        sends.append(send_response_callback)
        context.add_callback(ended.set)
        send_response_callback(b"first")

    server, target = _server(impl, behavior)
    try:
        with grpcpy.insecure_channel(target) as channel:
            call = channel.unary_stream("/t.S/M")(b"q")
            assert next(iter(call)) == b"first"
            call.cancel()
            assert ended.wait(10)
            sends[0](b"too late")       # after the end: dropped, no error
            sends[0](None)
        if impl == "grpcpy":
            assert wait_until(lambda: not server._active)
    finally:
        server.stop(None).wait(30)


def test_a_detached_call_counts_as_active_through_stop_grace():
    sends = []
    got = threading.Event()

    @_non_blocking
    def behavior(request, context, send_response_callback):
        sends.append(send_response_callback)
        got.set()

    server, target = _server("grpcpy", behavior)
    with grpcpy.insecure_channel(target) as channel:
        call = channel.unary_stream("/t.S/M")(b"q", timeout=30)
        assert got.wait(10)
        stopped = server.stop(30)
        assert not stopped.is_set()          # the call is still in flight
        sends[0](b"last")
        sends[0](None)                      # ends OK within the grace
        assert list(call) == [b"last"]
        assert call.code() == grpcpy.StatusCode.OK
        assert stopped.wait(30)


def test_an_unread_stream_is_bounded_and_ends_resource_exhausted():
    from grpcpy._sync import _server as sync_server
    done = threading.Event()
    outcome = {}

    @_non_blocking
    def behavior(request, context, send_response_callback):
        def push():
            chunk = b"x" * 16384
            # far more than flow control and the bound let through, all
            # without blocking this thread
            for _ in range(2 * sync_server._MAX_HELD // len(chunk)):
                send_response_callback(chunk)
            outcome["active"] = context.is_active()
            done.set()
        threading.Thread(target=push, daemon=True).start()

    server, target = _server("grpcpy", behavior)
    try:
        with grpcpy.insecure_channel(target) as channel:
            call = channel.unary_stream("/t.S/M")(b"q", timeout=30)
            responses = iter(call)
            assert next(responses)               # then stop reading
            assert done.wait(30)
            assert outcome["active"] is False
            received = 1
            with pytest.raises(RPC_ERRORS):
                for _ in responses:
                    received += 1
            assert call.code() == grpcpy.StatusCode.RESOURCE_EXHAUSTED
            assert received * 16384 <= sync_server._MAX_HELD + 4 * 1024 * 1024
    finally:
        server.stop(None).wait(30)


def test_watches_behind_an_interceptor_hold_no_thread_either():
    class PassThrough(grpcpy.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            return continuation(handler_call_details)

    servicer = grpcpy.health.HealthServicer()
    server = grpcpy.server(futures.ThreadPoolExecutor(2), interceptors=[PassThrough()])
    grpcpy.health.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = Client("grpcpy", "127.0.0.1:%d" % port)
    try:
        calls = [client.watch("s", timeout=30) for _ in range(4)]      # twice the pool
        streams = [iter(call) for call in calls]
        assert [next(s).status for s in streams] == [SERVICE_UNKNOWN] * 4
        servicer.set("s", SERVING)
        assert [next(s).status for s in streams] == [SERVING] * 4
        assert client.check("s") == SERVING
        for call in calls:
            call.cancel()
        assert wait_until(lambda: servicer._state.watcher_count() == 0)
    finally:
        client.close()
        server.stop(None).wait(30)
