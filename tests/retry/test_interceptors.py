"""An interceptor sees the call, not its attempts (grpcio exposes no
attempts to interceptors): one invocation, the call's metadata without
grpc-previous-rpc-attempts, and the final outcome, while the server saw
three attempts. grpcio's sync client is the reference."""
import asyncio

import grpc
import grpc.aio
import pytest

import grpcpy
import grpcpy.aio

from .clients import RETRY_CONFIG, options_with
from .service import UNARY, script


class _Counting(grpc.UnaryUnaryClientInterceptor):
    def __init__(self):
        self.seen = []

    def intercept_unary_unary(self, continuation, client_call_details, request):
        outcome = continuation(client_call_details, request)
        self.seen.append((dict(client_call_details.metadata or ()), outcome.code()))
        return outcome


class _AioCounting(grpcpy.aio.UnaryUnaryClientInterceptor):
    def __init__(self):
        self.seen = []

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        call = await continuation(client_call_details, request)
        self.seen.append((dict(client_call_details.metadata or ()), await call.code()))
        return call


@pytest.mark.parametrize("impl", ["grpcio", "grpcpy-sync", "grpcpy-aio"])
def test_an_interceptor_sees_one_call(server, key, impl):
    options = options_with(RETRY_CONFIG)
    metadata = (("x-key", key), ("x-script", script(fail=2)))
    if impl == "grpcpy-aio":
        interceptor = _AioCounting()

        async def scenario():
            async with grpcpy.aio.insecure_channel(server.target, options=options,
                                                   interceptors=[interceptor]) as channel:
                return await channel.unary_unary(UNARY)(b"x", metadata=metadata, timeout=5)
        response = asyncio.run(scenario())
        codes = [code for _, code in interceptor.seen]
        ok = grpcpy.StatusCode.OK
    else:
        api = grpc if impl == "grpcio" else grpcpy
        interceptor = _Counting()
        with api.insecure_channel(server.target, options=options) as channel:
            intercepted = api.intercept_channel(channel, interceptor)
            response = intercepted.unary_unary(UNARY)(b"x", metadata=metadata, timeout=5)
        codes = [code for _, code in interceptor.seen]
        ok = api.StatusCode.OK
    assert response == b"ok:x"
    assert codes == [ok]
    assert "grpc-previous-rpc-attempts" not in interceptor.seen[0][0]
    assert len(server.recorder.attempts(key)) == 3
