"""grpcpy.status against grpcio-status: a server aborts with a
google.rpc.Status carrying rich error details (BadRequest, RetryInfo,
ErrorInfo packed in Any) and a client reads them back with from_call, in
every combination of grpcio and grpcpy, sync and asyncio, on either side;
grpcio with grpcio-status is the reference for every outcome."""
import asyncio
import subprocess
import sys

import pytest
from google.rpc import code_pb2, status_pb2

import grpcpy
import grpcpy.status
import grpcpy.status.aio

from . import peers

METHODS = ("Rich", "BadCode", "BadMessage", "Plain", "Ok")


@pytest.fixture(scope="module")
def reference():
    """Every method's outcome with grpcio on both sides."""
    server = peers.Server("grpcio-sync")
    try:
        return {m: peers.call("grpcio-sync", server.port, m) for m in METHODS}
    finally:
        server.stop()


def test_reference_outcomes(reference):
    # what grpcio-status gives: the details read back whole, and the two
    # mismatches refused with its messages
    code, details, (kind, values) = reference["Rich"]
    assert (code, details, kind) == ("INVALID_ARGUMENT", "the order is not valid", "status")
    assert values == peers.read_details(peers.rich_status())
    assert [name for name, _ in values[2:]] == ["BadRequest", "RetryInfo", "ErrorInfo"]
    assert reference["BadCode"][2] == ("ValueError", "Code in Status proto (StatusCode.INVALID_ARGUMENT) "
                                       "doesn't match status code (StatusCode.FAILED_PRECONDITION)")
    assert reference["BadMessage"][2] == ("ValueError", "Message in Status proto (the order is not valid) "
                                          "doesn't match status details (another message)")
    assert reference["Plain"] == ("NOT_FOUND", "no such order", ("status", None))
    assert reference["Ok"] == ("OK", "", ("status", None))


@pytest.mark.parametrize("server_impl", peers.SERVERS)
@pytest.mark.parametrize("client_impl", peers.CLIENTS)
def test_rich_status_both_directions(reference, server_impl, client_impl):
    if (server_impl, client_impl) == ("grpcio-sync", "grpcio-sync"):
        pytest.skip("the reference itself")
    server = peers.Server(server_impl)
    try:
        got = {m: peers.call(client_impl, server.port, m) for m in METHODS}
    finally:
        server.stop()
    for method in METHODS:
        code, details, found = got[method]
        ref_code, ref_details, ref_found = reference[method]
        assert (code, details, found) == (ref_code, ref_details, ref_found), method


def test_to_status_shape():
    status = peers.rich_status()
    ours = grpcpy.status.to_status(status)
    assert isinstance(ours, grpcpy.Status)
    assert ours.code is grpcpy.StatusCode.INVALID_ARGUMENT
    assert ours.details == "the order is not valid"
    assert ours.trailing_metadata == (("grpc-status-details-bin", status.SerializeToString()),)
    from grpc_status import rpc_status
    theirs = rpc_status.to_status(status)
    assert (ours.code.value, ours.details, ours.trailing_metadata) == (
        theirs.code.value, theirs.details, theirs.trailing_metadata)
    with pytest.raises(ValueError, match="Invalid status code 99"):
        grpcpy.status.to_status(status_pb2.Status(code=99))


def test_from_call_on_an_aio_error_and_a_sync_call_of_the_wrong_kind():
    server = peers.Server("grpcpy-sync")

    async def run():
        async with grpcpy.aio.insecure_channel("127.0.0.1:%d" % server.port) as channel:
            call = channel.unary_unary("/%s/Rich" % peers.SERVICE)(b"x", timeout=10)
            with pytest.raises(grpcpy.aio.AioRpcError) as info:
                await call
            # the error's accessors are plain methods: both forms read it
            assert grpcpy.status.from_call(info.value).code == code_pb2.INVALID_ARGUMENT
            assert (await grpcpy.status.aio.from_call(info.value)).code == code_pb2.INVALID_ARGUMENT
            with pytest.raises(TypeError, match="grpcpy.status.aio.from_call"):
                grpcpy.status.from_call(call)
    try:
        asyncio.run(run())
    finally:
        server.stop()


def test_missing_googleapis_common_protos_names_the_extra(tmp_path):
    # a google.rpc that cannot be imported: the error says what to install
    (tmp_path / "google").mkdir()
    (tmp_path / "google" / "__init__.py").write_text("")
    (tmp_path / "google" / "rpc.py").write_text("raise ImportError('no google.rpc here')\n")
    program = ("import sys; sys.path.insert(0, %r)\n"
               "import grpcpy.status\n"
               "try:\n"
               "    grpcpy.status.rich_status(0, '', (('grpc-status-details-bin', b''),))\n"
               "except ImportError as exc:\n"
               "    print(exc)\n") % str(tmp_path)
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install grpcpy[status]" in out.stdout


def _abort_cases(impl):
    """abort_with_status after set_trailing_metadata, with and without
    trailers of its own, and with OK (a mistake)."""
    import grpc
    module = grpc if impl.startswith("grpcio") else grpcpy
    code = module.StatusCode.DATA_LOSS
    cases = {
        "Empty": (code, "lost", ()),
        "Own": (code, "lost", (("x", "y"),)),
        "Ok": (module.StatusCode.OK, "fine", ()),
        "Details": (code, "", ()),
    }

    def make(name):
        status = peers._Status(*cases[name])
        if impl.endswith("aio"):
            async def behavior(request, context):
                context.set_trailing_metadata((("earlier", "1"),))
                if name == "Details":
                    context.set_details("set before")
                await context.abort_with_status(status)
        else:
            def behavior(request, context):
                context.set_trailing_metadata((("earlier", "1"),))
                if name == "Details":
                    context.set_details("set before")
                context.abort_with_status(status)
        return behavior
    return [module.method_handlers_generic_handler("abort.S", {
        name: module.unary_unary_rpc_method_handler(make(name)) for name in cases})]


def _abort_outcomes(impl, names):
    import grpc
    server = peers.Server(impl, _abort_cases(impl))
    out = {}
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % server.port) as channel:
            for name in names:
                try:
                    channel.unary_unary("/abort.S/" + name)(b"", timeout=5)
                except grpc.RpcError as exc:
                    out[name] = (exc.code().name, exc.details(), tuple(tuple(m) for m in exc.trailing_metadata()))
    finally:
        server.stop()
    return out


@pytest.mark.parametrize("facade", ["sync", "aio"])
def test_abort_with_status_keeps_what_it_does_not_replace(facade):
    # one rule on both grpcpy facades (grpcpy/_rpc/server.py, _set_abort):
    # trailers and details set before stand unless the status brings its
    # own, as grpc.aio does. grpcio's sync server drops them: the one place
    # grpcpy's sync context differs from it here.
    ours = _abort_outcomes("grpcpy-" + facade, ("Empty", "Own", "Ok", "Details"))
    reference = _abort_outcomes("grpcio-aio", ("Empty", "Own", "Details"))
    assert {k: ours[k] for k in reference} == reference
    assert ours["Empty"] == ("DATA_LOSS", "lost", (("earlier", "1"),))
    assert ours["Own"] == ("DATA_LOSS", "lost", (("x", "y"),))
    assert ours["Details"] == ("DATA_LOSS", "set before", (("earlier", "1"),))
    # OK is a mistake: UNKNOWN with no details, on both facades (as grpcio's
    # sync server; grpc.aio leaves such a call hanging until its deadline)
    assert ours["Ok"][:2] == ("UNKNOWN", "")


def test_grpcio_sync_abort_with_status_drops_what_was_set_before():
    # the difference the rule above documents, shown on grpcio itself
    theirs = _abort_outcomes("grpcio-sync", ("Empty", "Details"))
    assert theirs["Empty"] == ("DATA_LOSS", "lost", ())
    assert theirs["Details"][1] == ""
