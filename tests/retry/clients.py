"""One blocking vocabulary over the three clients a retry scenario runs
with: grpcio's sync channel (the reference), grpcpy's sync channel and
grpcpy.aio's channel (driven on an event loop in a background thread).

Every call ends in a `Result` (status code name, response(s), details,
trailing metadata as a dict), so the scenarios read the same whatever the
client."""
import asyncio
import json

import grpc

import grpcpy
import grpcpy.aio

from tests.facades.drivers import LoopThread

CLIENTS = ("grpcio", "grpcpy-sync", "grpcpy-aio")
GRPCPY_CLIENTS = CLIENTS[1:]


class Result:
    def __init__(self, code, response=None, responses=(), details=None, trailing=()):
        self.code = code
        self.response = response
        self.responses = list(responses)
        self.details = details
        self.trailing = dict(trailing or ())

    def __repr__(self):
        return "Result(%r)" % vars(self)


def _error_result(err, responses=()):
    return Result(err.code().name, responses=responses, details=err.details(), trailing=err.trailing_metadata())


def _is_rpc_error(exc):
    return isinstance(exc, (grpc.RpcError, grpcpy.RpcError))


def service_config(retry=None, hedging=None, throttling=None, service="retry.Flaky"):
    """grpc.service_config JSON text with one methodConfig for the service."""
    method = {"name": [{"service": service}]}
    if retry is not None:
        method["retryPolicy"] = retry
    if hedging is not None:
        method["hedgingPolicy"] = hedging
    config = {"methodConfig": [method]}
    if throttling is not None:
        config["retryThrottling"] = throttling
    return json.dumps(config)


def retry_policy(max_attempts=4, initial="0.05s", maximum="0.2s", multiplier=2, codes=("UNAVAILABLE",)):
    return {"maxAttempts": max_attempts, "initialBackoff": initial, "maxBackoff": maximum,
            "backoffMultiplier": multiplier, "retryableStatusCodes": list(codes)}


RETRY_CONFIG = service_config(retry=retry_policy())


def options_with(config=None, **extra):
    """Channel options: the service config and any grpc.* option as
    keyword (dots as double underscores: grpc__enable_retries=0)."""
    options = []
    if config is not None:
        options.append(("grpc.service_config", config))
    for name, value in extra.items():
        options.append((name.replace("__", "."), value))
    return options


def _metadata(key, script):
    return (("x-key", key), ("x-script", script))


class SyncClient:
    def __init__(self, api, target, options):
        self.channel = api.insecure_channel(target, options=options)

    def close(self):
        self.channel.close()

    def unary(self, path, key, script, request=b"x", timeout=5.0):
        multi = self.channel.unary_unary(path)
        try:
            response, call = multi.with_call(request, metadata=_metadata(key, script), timeout=timeout)
        except Exception as exc:
            if _is_rpc_error(exc):
                return _error_result(exc)
            raise
        return Result(call.code().name, response=response, details=call.details(),
                      trailing=call.trailing_metadata())

    def stream_unary(self, path, key, script, requests, timeout=5.0):
        multi = self.channel.stream_unary(path)
        try:
            response, call = multi.with_call(iter(requests), metadata=_metadata(key, script), timeout=timeout)
        except Exception as exc:
            if _is_rpc_error(exc):
                return _error_result(exc)
            raise
        return Result(call.code().name, response=response, details=call.details(),
                      trailing=call.trailing_metadata())

    def stream_stream(self, path, key, script, requests, timeout=5.0):
        call = self.channel.stream_stream(path)(iter(requests), metadata=_metadata(key, script), timeout=timeout)
        responses = []
        try:
            for message in call:
                responses.append(message)
        except Exception as exc:
            if _is_rpc_error(exc):
                return _error_result(exc, responses)
            raise
        return Result(call.code().name, responses=responses, details=call.details(),
                      trailing=call.trailing_metadata())

    def start_unary(self, path, key, script, request=b"x", timeout=5.0):
        """A unary call in progress: (cancel(), finish() -> Result)."""
        future = self.channel.unary_unary(path).future(request, metadata=_metadata(key, script), timeout=timeout)

        def finish():
            code = future.code()     # waits for the end
            if code.name == "OK":
                return Result("OK", response=future.result(), trailing=future.trailing_metadata())
            return Result(code.name, details=future.details(), trailing=future.trailing_metadata())
        return future.cancel, finish


class AioClient:
    """grpcpy.aio: the channel lives on its own loop thread."""

    def __init__(self, target, options):
        self.loop = LoopThread("retry-aio-client")
        self.channel = self.loop.call(lambda: grpcpy.aio.insecure_channel(target, options=options))

    def close(self):
        self.loop.run(self.channel.close())
        self.loop.loop.call_soon_threadsafe(self.loop.loop.stop)
        self.loop.thread.join(5)
        self.loop.loop.close()

    async def _finish(self, call, responses=None):
        try:
            if responses is None:
                response = await call
            else:
                response = None
                async for message in call:
                    responses.append(message)
        except grpcpy.RpcError as exc:
            return _error_result(exc, responses or ())
        except BaseException:
            if call.cancelled():
                return Result((await call.code()).name, details=await call.details(),
                              trailing=await call.trailing_metadata())
            raise
        return Result((await call.code()).name, response=response, responses=responses or (),
                      details=await call.details(), trailing=await call.trailing_metadata())

    def unary(self, path, key, script, request=b"x", timeout=5.0):
        async def go():
            call = self.channel.unary_unary(path)(request, metadata=_metadata(key, script), timeout=timeout)
            return await self._finish(call)
        return self.loop.run(go(), timeout + 5)

    def stream_unary(self, path, key, script, requests, timeout=5.0):
        async def go():
            call = self.channel.stream_unary(path)(iter(requests), metadata=_metadata(key, script), timeout=timeout)
            return await self._finish(call)
        return self.loop.run(go(), timeout + 5)

    def stream_stream(self, path, key, script, requests, timeout=5.0):
        async def go():
            call = self.channel.stream_stream(path)(iter(requests), metadata=_metadata(key, script),
                                                    timeout=timeout)
            return await self._finish(call, [])
        return self.loop.run(go(), timeout + 5)

    def start_unary(self, path, key, script, request=b"x", timeout=5.0):
        def start():
            call = self.channel.unary_unary(path)(request, metadata=_metadata(key, script), timeout=timeout)
            return call, asyncio.ensure_future(self._finish(call))
        call, task = self.loop.call(start)

        def cancel():
            return self.loop.call(call.cancel)

        async def finish():
            return await task
        return cancel, lambda: self.loop.run(finish(), timeout + 5)


def make_client(impl, target, options):
    if impl == "grpcio":
        return SyncClient(grpc, target, options)
    if impl == "grpcpy-sync":
        return SyncClient(grpcpy, target, options)
    return AioClient(target, options)
