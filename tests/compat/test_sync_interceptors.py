"""Sync client and server interceptors written for grpcio, on grpcpy (grpcio
as the reference)."""
import collections
from concurrent import futures

import grpc
import pytest

import grpcpy

IMPLS = [grpc, grpcpy]


class _Details(collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials",
                                                   "wait_for_ready", "compression")), grpc.ClientCallDetails):
    pass


class Tag(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
          grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, name, log):
        self.name, self.log = name, log

    def _tagged(self, details):
        metadata = list(details.metadata or ()) + [("x-tag-" + self.name, "1")]
        return _Details(details.method, details.timeout, metadata, details.credentials,
                        details.wait_for_ready, getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        self.log.append((self.name, "uu", details.method))
        return continuation(self._tagged(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        self.log.append((self.name, "us"))
        return continuation(self._tagged(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        self.log.append((self.name, "su"))
        return continuation(self._tagged(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        self.log.append((self.name, "ss"))
        return continuation(self._tagged(details), request_iterator)


class Deny(grpc.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        if dict(handler_call_details.invocation_metadata).get("x-tag-outer") != "1":
            return grpc.unary_unary_rpc_method_handler(
                lambda request, context: context.abort(grpc.StatusCode.PERMISSION_DENIED, "untagged"))
        return continuation(handler_call_details)


def tags(context):
    return ",".join(sorted(k for k, _ in context.invocation_metadata() if k.startswith("x-tag-"))).encode()


HANDLERS = grpc.method_handlers_generic_handler("S", {
    "UU": grpc.unary_unary_rpc_method_handler(lambda r, c: tags(c)),
    "US": grpc.unary_stream_rpc_method_handler(lambda r, c: iter([tags(c)] * 2)),
    "SU": grpc.stream_unary_rpc_method_handler(lambda it, c: b"".join(it) + tags(c)),
    "SS": grpc.stream_stream_rpc_method_handler(lambda it, c: (m + tags(c) for m in it)),
})


@pytest.mark.parametrize("impl", IMPLS, ids=["grpcio", "grpcpy"])
def test_client_interceptors_all_kinds_and_server_interceptor(impl):
    server = impl.server(futures.ThreadPoolExecutor(4), interceptors=[Deny()])
    server.add_generic_rpc_handlers((HANDLERS,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        log = []
        with impl.insecure_channel("127.0.0.1:%d" % port) as plain:
            channel = impl.intercept_channel(plain, Tag("outer", log), Tag("inner", log))
            expected = b"x-tag-inner,x-tag-outer"
            assert channel.unary_unary("/S/UU")(b"") == expected
            response, call = channel.unary_unary("/S/UU").with_call(b"")
            assert response == expected and call.code() == grpc.StatusCode.OK
            assert channel.unary_unary("/S/UU").future(b"").result() == expected
            assert list(channel.unary_stream("/S/US")(b"")) == [expected] * 2
            assert channel.stream_unary("/S/SU")(iter([b"a", b"b"])) == b"ab" + expected
            assert list(channel.stream_stream("/S/SS")(iter([b"1", b"2"]))) == [b"1" + expected, b"2" + expected]
            assert log[:2] == [("outer", "uu", "/S/UU"), ("inner", "uu", "/S/UU")]
            assert ("outer", "ss") in log and ("inner", "su") in log
            # the server interceptor refuses calls the client did not tag
            with pytest.raises(grpc.RpcError if impl is grpc else grpcpy.RpcError) as info:
                plain.unary_unary("/S/UU")(b"")
            assert info.value.code().name == "PERMISSION_DENIED" and info.value.details() == "untagged"
            # an error through the chain is raised from the interceptors' outcome
            err = channel.unary_unary("/S/Nope").future(b"").exception()
            assert err.code().name == "UNIMPLEMENTED"
    finally:
        server.stop(None)
