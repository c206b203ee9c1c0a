"""Drivers: one blocking vocabulary over four client facades and four
server facades (grpcio / grpcpy, sync / asyncio).

Theory of operation. A test body is plain blocking code:

    outcome = client.unary(path, b"req", metadata=..., timeout=...)

returns an `Outcome` whatever the facade: the response(s), or the error's
code / details / metadata / exception type. The sync drivers call the sync
API directly; the aio drivers run the same call as a coroutine on an event
loop that lives in a background thread (one loop per aio facade, shared by
that facade's clients and servers), and wait for it with a bound, so a
facade that hangs fails the test instead of hanging the suite.

Handlers are written once, as data: a `Behaviour` is a list of steps (set a
code, set details, abort, raise, return or yield a message, observe
something about the context, ...). Per-facade adapters turn it into a sync
handler or an async one. Each registration gets its own method path, so one
running server per facade serves every test of the session.

Codes travel as names ("NOT_FOUND") and metadata as tuples of pairs, so the
outcomes of the two implementations compare with `==`.

The reference rule. A parity test runs every facade: the grpcio rows prove
the expectation (grpcio sync's value; grpc.aio's own value is asserted
beside it where it differs, through `expected()`), and both grpcpy facades
must show the one value grpcpy chose (grpcio sync's, or the gRPC spec's,
said in the test). A grpcpy row that fails today is marked with
`known_gap()`: a strict xfail naming what grpcpy does, so that a fix turns
it into an XPASS failure and the mark has to go (grep "known_gap(").
"""
import asyncio
import concurrent.futures
import itertools
import queue
import threading
import time

import grpc
import grpc.aio

import grpcpy
import grpcpy.aio

SERVICE = "t.S"
FACADES = ("grpcio-sync", "grpcio-aio", "grpcpy-sync", "grpcpy-aio")
GRPCIO = FACADES[:2]
GRPCPY = FACADES[2:]

# How long a driver waits for an aio operation on its loop thread before it
# declares the facade hung. Calls carry their own, shorter, deadlines.
HANG = 10.0
TIMEOUT = 5.0  # the default client deadline


def facade_modules(facade):
    """'grpcio-aio' -> (the API module, the implementation's top module)."""
    impl, kind = facade.split("-")
    top = grpc if impl == "grpcio" else grpcpy
    if kind == "aio":
        return (grpc.aio if impl == "grpcio" else grpcpy.aio), top
    return top, top


def is_aio(facade):
    return facade.endswith("-aio")


class Hung(AssertionError):
    """An aio operation did not finish within HANG seconds."""


# ------------------------------------------------------------ event loops

class LoopThread:
    """An asyncio loop running forever in a daemon thread."""

    def __init__(self, name):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=None):
        """Run `coro` on the loop and wait for its result (HANG seconds at most)."""
        timeout = HANG if timeout is None else timeout
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise Hung("aio operation did not finish in %ss" % timeout) from None

    def call(self, fn, *args):
        """Run a plain function in the loop thread (aio objects are not
        thread-safe) and return its result."""
        async def wrapper():
            return fn(*args)
        return self.run(wrapper())


_LOOPS = {}
_LOOPS_LOCK = threading.Lock()


def loop_for(facade):
    with _LOOPS_LOCK:
        if facade not in _LOOPS:
            _LOOPS[facade] = LoopThread("loop-" + facade)
        return _LOOPS[facade]


def bounded(fn):
    """Run a blocking sync-API method in a daemon thread and wait HANG
    seconds at most: a sync call that ignores its own deadline fails its
    test (Hung) instead of hanging the suite (the thread is left behind)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        box = {}
        done = threading.Event()

        def run():
            try:
                box["value"] = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: B036 - handed to the caller as it is
                box["error"] = exc
            finally:
                done.set()
        threading.Thread(target=run, name="bounded-" + fn.__name__, daemon=True).start()
        # a call given a deadline gets that and a few seconds more
        deadline = kwargs.get("timeout")
        limit = HANG if deadline is None else min(HANG, deadline + 3)
        if not done.wait(limit):
            raise Hung("sync %s did not finish in %ss" % (fn.__name__, limit))
        if "error" in box:
            raise box["error"]
        return box["value"]
    return wrapper


# ------------------------------------------------------------ outcomes

def norm_md(metadata):
    """Any facade's metadata -> a tuple of (key, value) tuples (None stays)."""
    if metadata is None:
        return None
    return tuple((k, v) for k, v in metadata)


def code_name(code):
    return None if code is None else code.name


class Outcome:
    """What a call came to, comparable across facades.

    response: the unary response (None if none); responses: the streamed
    responses received; code, details: of the call (names for codes);
    initial_metadata, trailing_metadata: normalised; error: the exception the
    call raised (None if it succeeded); exc_type: its class name ("RpcError"
    for the RpcError of any facade, including grpc.aio's AioRpcError)."""

    def __init__(self, response=None, responses=(), code=None, details=None, initial_metadata=None,
                 trailing_metadata=None, error=None):
        self.response = response
        self.responses = list(responses)
        self.code = code
        self.details = details
        self.initial_metadata = initial_metadata
        self.trailing_metadata = trailing_metadata
        self.error = error

    @property
    def exc_type(self):
        if self.error is None:
            return None
        if isinstance(self.error, (grpc.RpcError, grpcpy.RpcError)):
            return "RpcError"
        return type(self.error).__name__

    @property
    def status(self):
        """(code, details): the usual thing to compare."""
        return (self.code, self.details)

    def __repr__(self):
        return "Outcome(%s)" % ", ".join("%s=%r" % kv for kv in vars(self).items())


def _from_rpc_error(err, responses=()):
    """An RpcError (sync: the call itself; aio: AioRpcError) -> Outcome."""
    return Outcome(responses=responses, code=code_name(err.code()), details=err.details(),
                   initial_metadata=norm_md(err.initial_metadata()),
                   trailing_metadata=norm_md(err.trailing_metadata()), error=err)


def _is_rpc_error(exc):
    return isinstance(exc, (grpc.RpcError, grpcpy.RpcError))


# ------------------------------------------------------------ clients

_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


class SyncClient:
    """A grpc / grpcpy sync channel."""

    def __init__(self, facade, target, options=None, compression=None, credentials=None):
        self.facade = facade
        self.api, self.top = facade_modules(facade)
        if credentials is not None:  # credentials(top) -> channel credentials
            self.channel = self.api.secure_channel(target, credentials(self.top), options=options,
                                                   compression=compression)
        else:
            self.channel = self.api.insecure_channel(target, options=options, compression=compression)

    def close(self):
        self.channel.close()

    def code(self, name):
        return self.top.StatusCode[name]

    def multicallable(self, kind, path, serializer=None, deserializer=None):
        return getattr(self.channel, kind)(path, request_serializer=serializer,
                                           response_deserializer=deserializer)

    # -- whole calls -> Outcome
    @bounded
    def unary(self, path, request, serializer=None, deserializer=None, **kw):
        kw.setdefault("timeout", TIMEOUT)
        multi = self.multicallable("unary_unary", path, serializer, deserializer)
        try:
            response, call = multi.with_call(request, **kw)
        except Exception as exc:
            return _from_rpc_error(exc) if _is_rpc_error(exc) else Outcome(error=exc)
        return Outcome(response=response, code=code_name(call.code()), details=call.details(),
                       initial_metadata=norm_md(call.initial_metadata()),
                       trailing_metadata=norm_md(call.trailing_metadata()))

    @bounded
    def stream_unary(self, path, requests, serializer=None, deserializer=None, **kw):
        kw.setdefault("timeout", TIMEOUT)
        multi = self.multicallable("stream_unary", path, serializer, deserializer)
        try:
            response, call = multi.with_call(iter(requests), **kw)
        except Exception as exc:
            return _from_rpc_error(exc) if _is_rpc_error(exc) else Outcome(error=exc)
        return Outcome(response=response, code=code_name(call.code()), details=call.details(),
                       initial_metadata=norm_md(call.initial_metadata()),
                       trailing_metadata=norm_md(call.trailing_metadata()))

    def _streamed(self, call_factory):
        responses = []
        try:
            call = call_factory()
        except Exception as exc:
            return _from_rpc_error(exc) if _is_rpc_error(exc) else Outcome(error=exc)
        try:
            for message in call:
                responses.append(message)
        except Exception as exc:
            return _from_rpc_error(exc, responses) if _is_rpc_error(exc) else Outcome(responses=responses,
                                                                                         error=exc)
        return Outcome(responses=responses, code=code_name(call.code()), details=call.details(),
                       initial_metadata=norm_md(call.initial_metadata()),
                       trailing_metadata=norm_md(call.trailing_metadata()))

    @bounded
    def unary_stream(self, path, request, serializer=None, deserializer=None, **kw):
        kw.setdefault("timeout", TIMEOUT)
        multi = self.multicallable("unary_stream", path, serializer, deserializer)
        return self._streamed(lambda: multi(request, **kw))

    @bounded
    def stream_stream(self, path, requests, serializer=None, deserializer=None, **kw):
        kw.setdefault("timeout", TIMEOUT)
        multi = self.multicallable("stream_stream", path, serializer, deserializer)
        return self._streamed(lambda: multi(iter(requests), **kw))

    # -- calls in progress -> a handle
    def start(self, kind, path, request=None, serializer=None, deserializer=None, **kw):
        """Start a call and return a SyncHandle. Unary-response calls are
        futures (`.future()`); streaming-response calls are the response
        iterator. With request=None on a request-streaming kind the requests
        come from the handle's write() / done_writing()."""
        kw.setdefault("timeout", TIMEOUT)
        multi = self.multicallable(kind, path, serializer, deserializer)
        writer = None
        if kind.startswith("stream") and request is None:
            writer = _QueueRequests()
            request = writer
        elif kind.startswith("stream"):
            request = iter(request)
        if kind.endswith("unary"):
            return SyncHandle(self, multi.future(request, **kw), writer, future=True)
        return SyncHandle(self, multi(request, **kw), writer, future=False)


class _QueueRequests:
    """A request iterator fed by the test (write / done_writing)."""
    DONE = object()

    def __init__(self):
        self.queue = queue.Queue()

    def __iter__(self):
        return self

    def __next__(self):
        item = self.queue.get(timeout=HANG)
        if item is self.DONE:
            raise StopIteration
        return item


class SyncHandle:
    """A sync call in progress: the grpc.Call (+ grpc.Future or iterator)."""

    def __init__(self, client, call, writer, future):
        self.client = client
        self.call = call
        self.writer = writer
        self.is_future = future

    def write(self, message):
        self.writer.queue.put(message)

    def done_writing(self):
        self.writer.queue.put(_QueueRequests.DONE)

    @bounded
    def result(self, timeout=HANG - 1):
        """The unary response, or the exception raised (returned, not raised)."""
        try:
            return self.call.result(timeout=timeout)
        except Exception as exc:
            return exc

    @bounded
    def read(self):
        """The next streamed message, None at the end, or the exception."""
        try:
            return next(self.call)
        except StopIteration:
            return None
        except Exception as exc:
            return exc

    @bounded
    def outcome(self):
        if self.is_future:
            result = self.result()
            if isinstance(result, Exception):
                return _from_rpc_error(result) if _is_rpc_error(result) else Outcome(error=result)
            return Outcome(response=result, code=code_name(self.call.code()), details=self.call.details(),
                           initial_metadata=norm_md(self.call.initial_metadata()),
                           trailing_metadata=norm_md(self.call.trailing_metadata()))
        return self.client._streamed(lambda: self.call)

    def cancel(self):
        if self.writer is not None:
            self.writer.queue.put(_QueueRequests.DONE)
        return self.call.cancel()

    def cancelled(self):
        return self.call.cancelled()

    def done(self):
        return self.call.done() if self.is_future else not self.call.is_active()

    @bounded
    def code(self):
        return code_name(self.call.code())

    @bounded
    def details(self):
        return self.call.details()

    @bounded
    def raw_code(self):
        return self.call.code()

    @bounded
    def initial_metadata(self):
        return self.call.initial_metadata()

    @bounded
    def trailing_metadata(self):
        return self.call.trailing_metadata()

    def time_remaining(self):
        return self.call.time_remaining()

    @bounded
    def debug_error_string(self):
        return self.call.debug_error_string()

    def is_active(self):
        return self.call.is_active()

    def add_done_callback(self, fn):
        """fn() runs when the call ends (sync: add_callback for iterators,
        add_done_callback for futures). Returns what registration returned."""
        if self.is_future:
            return self.call.add_done_callback(lambda _f: fn())
        return self.call.add_callback(fn)


class AioClient:
    """A grpc.aio / grpcpy.aio channel living on the facade's loop thread."""

    def __init__(self, facade, target, options=None, compression=None, credentials=None):
        self.facade = facade
        self.api, self.top = facade_modules(facade)
        self.lt = loop_for(facade)
        if credentials is not None:
            self.channel = self.lt.call(lambda: self.api.secure_channel(target, credentials(self.top), options=options,
                                                                        compression=compression))
        else:
            self.channel = self.lt.call(lambda: self.api.insecure_channel(target, options=options,
                                                                          compression=compression))

    def close(self):
        self.lt.run(self.channel.close())

    def code(self, name):
        return self.top.StatusCode[name]

    def multicallable(self, kind, path, serializer=None, deserializer=None):
        return getattr(self.channel, kind)(path, request_serializer=serializer,
                                           response_deserializer=deserializer)

    def run(self, coro_fn, *args, timeout=None):
        """Run coro_fn(*args) on this facade's loop (for aio-only tests)."""
        return self.lt.run(coro_fn(*args), timeout)

    async def _finish(self, call, response=None, responses=()):
        return Outcome(response=response, responses=responses, code=code_name(await call.code()),
                       details=await call.details(), initial_metadata=norm_md(await call.initial_metadata()),
                       trailing_metadata=norm_md(await call.trailing_metadata()))

    async def _unary_response(self, make_call):
        try:
            call = make_call()
            response = await call
        except (Exception, asyncio.CancelledError) as exc:  # a cancelled aio call raises CancelledError
            return _from_rpc_error(exc) if _is_rpc_error(exc) else Outcome(error=exc)
        return await self._finish(call, response=response)

    async def _stream_response(self, make_call):
        responses = []
        try:
            call = make_call()
            async for message in call:
                responses.append(message)
        except (Exception, asyncio.CancelledError) as exc:
            return _from_rpc_error(exc, responses) if _is_rpc_error(exc) else Outcome(responses=responses,
                                                                                         error=exc)
        return await self._finish(call, responses=responses)

    def unary(self, path, request, serializer=None, deserializer=None, **kw):
        kw.setdefault("timeout", TIMEOUT)
        multi = self.multicallable("unary_unary", path, serializer, deserializer)
        return self.lt.run(self._unary_response(lambda: multi(request, **kw)))

    def stream_unary(self, path, requests, serializer=None, deserializer=None, **kw):
        kw.setdefault("timeout", TIMEOUT)
        multi = self.multicallable("stream_unary", path, serializer, deserializer)
        return self.lt.run(self._unary_response(lambda: multi(iter(requests), **kw)))

    def unary_stream(self, path, request, serializer=None, deserializer=None, **kw):
        kw.setdefault("timeout", TIMEOUT)
        multi = self.multicallable("unary_stream", path, serializer, deserializer)
        return self.lt.run(self._stream_response(lambda: multi(request, **kw)))

    def stream_stream(self, path, requests, serializer=None, deserializer=None, **kw):
        kw.setdefault("timeout", TIMEOUT)
        multi = self.multicallable("stream_stream", path, serializer, deserializer)
        return self.lt.run(self._stream_response(lambda: multi(iter(requests), **kw)))

    def start(self, kind, path, request=None, serializer=None, deserializer=None, **kw):
        """Start a call on the loop and return an AioHandle. With request=None
        on a request-streaming kind the handle's write()/done_writing() send."""
        kw.setdefault("timeout", TIMEOUT)
        multi = self.multicallable(kind, path, serializer, deserializer)
        if kind.startswith("stream") and request is None:
            call = self.lt.call(lambda: multi(**kw))
        elif kind.startswith("stream"):
            call = self.lt.call(lambda: multi(iter(request), **kw))
        else:
            call = self.lt.call(lambda: multi(request, **kw))
        return AioHandle(self, call, future=kind.endswith("unary"))


class AioHandle:
    """An aio call in progress; every operation runs on the loop thread."""

    def __init__(self, client, call, future):
        self.client = client
        self.lt = client.lt
        self.call = call
        self.is_future = future

    def _await(self, awaitable_fn):
        async def go():
            try:
                return await awaitable_fn()
            except BaseException as exc:  # CancelledError included: it is the answer
                return exc
        return self.lt.run(go())

    def write(self, message):
        result = self._await(lambda: self.call.write(message))
        if isinstance(result, BaseException):
            raise result

    def done_writing(self):
        result = self._await(self.call.done_writing)
        if isinstance(result, BaseException):
            raise result

    def result(self, timeout=HANG):
        async def wait():
            return await asyncio.wait_for(asyncio.shield(self._as_future()), timeout)
        return self._await(wait)

    def _as_future(self):
        async def awaited():
            return await self.call
        return asyncio.ensure_future(awaited())

    def read(self):
        async def read():
            message = await self.call.read()
            return None if message is self.client.api.EOF else message
        return self._await(read)

    def outcome(self):
        if self.is_future:
            result = self.result()
            if isinstance(result, BaseException):
                return _from_rpc_error(result) if _is_rpc_error(result) else Outcome(error=result)
            return self.lt.run(self.client._finish(self.call, response=result))
        return self.lt.run(self.client._stream_response(lambda: self.call))

    def cancel(self):
        return self.lt.call(self.call.cancel)

    def cancelled(self):
        return self.lt.call(self.call.cancelled)

    def done(self):
        return self.lt.call(self.call.done)

    def code(self):
        return code_name(self._await(self.call.code))

    def raw_code(self):
        return self._await(self.call.code)

    def details(self):
        return self._await(self.call.details)

    def initial_metadata(self):
        return self._await(self.call.initial_metadata)

    def trailing_metadata(self):
        return self._await(self.call.trailing_metadata)

    def time_remaining(self):
        return self.lt.call(self.call.time_remaining)

    def debug_error_string(self):
        return self._await(self.call.debug_error_string)

    def is_active(self):
        return not self.lt.call(self.call.done)

    def add_done_callback(self, fn):
        return self.lt.call(self.call.add_done_callback, lambda _c: fn())


def make_client(facade, target, **kw):
    return (AioClient if is_aio(facade) else SyncClient)(facade, target, **kw)


# ------------------------------------------------------------ behaviours

class Behaviour:
    """What a handler does, as data.

    steps: a list of tuples, run in order:
      ("send_initial_metadata", md)    ("set_trailing_metadata", md)
      ("set_code", "NOT_FOUND")        ("set_details", "text")
      ("abort", "NOT_FOUND", "text")   ("abort", "NOT_FOUND", "text", md)
      ("abort_with_status", "NOT_FOUND", "text", md)
      ("raise", exception)             ("cancel",)
      ("set_compression", "gzip")      ("read_all",)  (request streams)
      ("observe", key, fn)   fn(context) -> value, stored in observed[key]
                             (the exception class if fn raises)
      ("wait_done",)         wait (bounded) until the call has ended
      ("wait_event", event)  wait (bounded) until the threading.Event is set
      ("try_abort", "CODE", "text")  abort, catch what it raises (stored in
                             observed["abort_raised"]) and go on
      ("on_done", key, fn)   register a done callback (sync add_callback,
                             aio add_done_callback) that appends fn(context)
                             to observed[key]; the registration's return
                             value goes to observed[key + "_registered"]
      ("try_send_initial_metadata", md)  send, catching what it raises (in
                             observed["send_raised"])
      ("respond", fn)        fn(requests so far) -> the unary response, or
                             for a streaming response an iterable of them
      ("yield", message)     a streamed response
      ("return", value)      the unary response (the default return is None)
    kind: the handler's cardinality (one of the multicallable kinds).
    request_deserializer / response_serializer: for the method handler
    (identity when None)."""

    def __init__(self, kind, steps, request_deserializer=None, response_serializer=None, raw=None):
        assert kind in _KINDS
        self.kind = kind
        self.steps = list(steps)
        # raw(context_kind) -> a handler function used as it is ("sync" or
        # "aio"), for handler shapes the steps cannot express
        self.raw = raw
        self.request_deserializer = request_deserializer
        self.response_serializer = response_serializer
        self.observed = {}
        self.requests = []
        self.ended = threading.Event()


class _HandlerEnd(Exception):
    pass


def _status_code(top, name):
    return top.StatusCode[name]


def _compression(top, name):
    return {"gzip": top.Compression.Gzip, "deflate": top.Compression.Deflate,
            "none": top.Compression.NoCompression}[name]


def _plain_step(top, behaviour, context, step):
    """The steps that are the same call on a sync and an aio context (no
    await): run it and say True, else False."""
    op = step[0]
    if op == "set_trailing_metadata":
        context.set_trailing_metadata(step[1])
    elif op == "set_code":
        context.set_code(_status_code(top, step[1]))
    elif op == "set_details":
        context.set_details(step[1])
    elif op == "raise":
        raise step[1]
    elif op == "cancel":
        context.cancel()
    elif op == "set_compression":
        context.set_compression(_compression(top, step[1]))
    elif op == "observe":
        try:
            behaviour.observed[step[1]] = step[2](context)
        except Exception as exc:
            behaviour.observed[step[1]] = type(exc)
    else:
        return False
    return True


def _sync_step(top, behaviour, context, step):
    """Run one non-terminal step on a sync context; returns ("yield", m) /
    ("return", v) for the terminal ones, else None."""
    op = step[0]
    if _plain_step(top, behaviour, context, step):
        return None
    if op == "send_initial_metadata":
        context.send_initial_metadata(step[1])
    elif op == "abort":
        context.abort(_status_code(top, step[1]), step[2], *step[3:])
    elif op == "abort_with_status":
        context.abort_with_status(_Status(_status_code(top, step[1]), step[2], step[3]))
    elif op == "wait_done":
        ended = threading.Event()
        context.add_callback(ended.set)
        ended.wait(HANG)
    elif op == "wait_event":
        step[1].wait(HANG)
    elif op == "try_send_initial_metadata":
        try:
            context.send_initial_metadata(step[1])
        except Exception as exc:
            behaviour.observed["send_raised"] = exc
    elif op == "try_abort":
        try:
            context.abort(_status_code(top, step[1]), step[2])
        except BaseException as exc:  # noqa: B036 - what abort raises is the observation
            behaviour.observed["abort_raised"] = exc
    elif op == "on_done":
        key, fn = step[1], step[2]
        behaviour.observed[key] = []
        behaviour.observed[key + "_registered"] = context.add_callback(
            lambda: behaviour.observed[key].append(fn(context)))
    elif op in ("yield", "return", "respond"):
        return step
    else:
        raise AssertionError("unknown step %r" % (op,))
    return None


class _Status:
    """A grpc.Status for abort_with_status (either implementation reads
    code / details / trailing_metadata)."""

    def __init__(self, code, details, trailing_metadata):
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def sync_handler(top, behaviour):
    """A sync RpcMethodHandler of `top` (grpc / grpcpy) running `behaviour`."""
    b = behaviour

    def steps(request_or_iterator, context):
        """Run the steps; yields the terminal ones ("yield"/"return" as
        (op, value)). `mine` holds this call's requests (b.requests all)."""
        mine = []
        if b.kind.startswith("unary"):
            mine.append(request_or_iterator)
            b.requests.append(request_or_iterator)
        for step in b.steps:
            if step[0] == "read_all":
                for r in request_or_iterator:
                    mine.append(r)
                    b.requests.append(r)
                continue
            terminal = _sync_step(top, b, context, step)
            if terminal is None:
                continue
            if terminal[0] == "respond":
                value = terminal[1](list(mine))
                if b.kind.endswith("unary"):
                    yield ("return", value)
                else:
                    for message in value:
                        yield ("yield", message)
            else:
                yield terminal

    def run_unary_response(request_or_iterator, context):
        try:
            for op, value in steps(request_or_iterator, context):
                if op == "return":
                    return value
            return None
        finally:
            b.ended.set()

    def run_stream_response(request_or_iterator, context):
        try:
            for op, value in steps(request_or_iterator, context):
                if op == "return":
                    return
                yield value
        finally:
            b.ended.set()

    fn = run_unary_response if b.kind.endswith("unary") else run_stream_response
    if b.raw is not None:
        fn = b.raw("sync")
    factory = getattr(top, b.kind + "_rpc_method_handler")
    return factory(fn, request_deserializer=b.request_deserializer, response_serializer=b.response_serializer)


async def _aio_step(top, behaviour, context, step):
    op = step[0]
    if _plain_step(top, behaviour, context, step):
        return None
    if op == "send_initial_metadata":
        await context.send_initial_metadata(step[1])
    elif op == "abort":
        await context.abort(_status_code(top, step[1]), step[2], *step[3:])
    elif op == "abort_with_status":
        await context.abort_with_status(_Status(_status_code(top, step[1]), step[2], step[3]))
    elif op == "wait_done":
        ended = asyncio.Event()
        context.add_done_callback(lambda _c: ended.set())
        try:
            await asyncio.wait_for(ended.wait(), HANG)
        except asyncio.TimeoutError:
            pass
    elif op == "wait_event":
        for _ in range(int(HANG / 0.005)):
            if step[1].is_set():
                break
            await asyncio.sleep(0.005)
    elif op == "try_send_initial_metadata":
        try:
            await context.send_initial_metadata(step[1])
        except Exception as exc:
            behaviour.observed["send_raised"] = exc
    elif op == "try_abort":
        try:
            await context.abort(_status_code(top, step[1]), step[2])
        except BaseException as exc:  # noqa: B036
            behaviour.observed["abort_raised"] = exc
    elif op == "on_done":
        key, fn = step[1], step[2]
        behaviour.observed[key] = []
        behaviour.observed[key + "_registered"] = context.add_done_callback(
            lambda ctx: behaviour.observed[key].append(fn(ctx)))
    elif op in ("yield", "return", "respond"):
        return step
    else:
        raise AssertionError("unknown step %r" % (op,))
    return None


def aio_handler(top, behaviour):
    """An async RpcMethodHandler of `top` running `behaviour`."""
    b = behaviour

    async def steps(request_or_iterator, context):
        mine = []
        if b.kind.startswith("unary"):
            mine.append(request_or_iterator)
            b.requests.append(request_or_iterator)
        for step in b.steps:
            if step[0] == "read_all":
                async for r in request_or_iterator:
                    mine.append(r)
                    b.requests.append(r)
                continue
            terminal = await _aio_step(top, b, context, step)
            if terminal is None:
                continue
            if terminal[0] == "respond":
                value = terminal[1](list(mine))
                if b.kind.endswith("unary"):
                    yield ("return", value)
                else:
                    for message in value:
                        yield ("yield", message)
            else:
                yield terminal

    async def run_unary_response(request_or_iterator, context):
        try:
            async for op, value in steps(request_or_iterator, context):
                if op == "return":
                    return value
            return None
        except asyncio.CancelledError:
            b.observed["handler_cancelled"] = True  # how an aio server ends a handler
            raise
        finally:
            b.ended.set()

    async def run_stream_response(request_or_iterator, context):
        try:
            async for op, value in steps(request_or_iterator, context):
                if op == "return":
                    return
                yield value
        except asyncio.CancelledError:
            b.observed["handler_cancelled"] = True
            raise
        finally:
            b.ended.set()

    fn = run_unary_response if b.kind.endswith("unary") else run_stream_response
    if b.raw is not None:
        fn = b.raw("aio")
    factory = getattr(top, b.kind + "_rpc_method_handler")
    return factory(fn, request_deserializer=b.request_deserializer, response_serializer=b.response_serializer)


# ------------------------------------------------------------ servers

_REGISTRY = {}
_COUNTER = itertools.count()


def register(behaviour, name="M"):
    """Make `behaviour` served at a fresh method path (on every server)."""
    path = "/%s/%s%d" % (SERVICE, name, next(_COUNTER))
    _REGISTRY[path] = behaviour
    return path


class _Generic:
    """A generic handler looking method paths up in the registry."""

    def __init__(self, top, make):
        self._top = top
        self._make = make
        self._cache = {}

    def service(self, handler_call_details):
        path = handler_call_details.method
        behaviour = _REGISTRY.get(path)
        if behaviour is None:
            return None
        if path not in self._cache:
            self._cache[path] = self._make(self._top, behaviour)
        return self._cache[path]


class RunningServer:
    """A started server of one facade on 127.0.0.1, serving the registry."""

    def __init__(self, facade, options=None, credentials=None, address="127.0.0.1:0", **server_kw):
        """credentials(top) -> server credentials for a TLS port; server_kw
        (e.g. maximum_concurrent_rpcs) go to the server factory."""
        self.facade = facade
        self.api, self.top = facade_modules(facade)
        # grpc / grpcpy check the generic handler by class: make one of theirs
        base = self.top.GenericRpcHandler
        make = aio_handler if is_aio(facade) else sync_handler
        generic = type("Registry", (_Generic, base), {})(self.top, make)

        def add_port(server):
            if credentials is None:
                return server.add_insecure_port(address)
            return server.add_secure_port(address, credentials(self.top))
        if is_aio(facade):
            self.lt = loop_for(facade)

            async def start():
                server = self.api.server(options=options, **server_kw)
                server.add_generic_rpc_handlers((generic,))
                port = add_port(server)
                await server.start()
                return server, port
            self.server, self.port = self.lt.run(start())
        else:
            self.pool = concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="srv-" + facade)
            self.server = self.api.server(self.pool, options=options, **server_kw)
            self.server.add_generic_rpc_handlers((generic,))
            self.port = add_port(self.server)
            self.server.start()
        self.target = "127.0.0.1:%d" % self.port

    def stop(self):
        if is_aio(self.facade):
            self.lt.run(self.server.stop(None))
        else:
            self.server.stop(None).wait(HANG)
            self.pool.shutdown(wait=False)


# ------------------------------------------------------------ known gaps

def known_gap(request, facades, reason, strict=True):
    """Mark this test run as a known grpcpy gap when the facade under test
    (the `client_facade`, `server_facade` or `aio_client` parameter) is one
    of `facades`:
    a strict xfail, so a fix shows up as XPASS and the mark must go.
    `reason` says in one line what grpcpy does today. strict=False only
    for a gap that shows some of the time (a race): say so in `reason`."""
    if isinstance(facades, str):
        facades = (facades,)
    params = getattr(request.node, "callspec", None)
    params = params.params if params else {}
    current = params.get("client_facade") or params.get("server_facade") or params.get("aio_client")
    assert all(f in GRPCPY for f in facades), "known gaps are grpcpy's only"
    if current in facades:
        request.applymarker(_xfail(reason, strict))


def _xfail(reason, strict):
    import pytest  # drivers.py is also imported by child processes, without pytest's plugins
    return pytest.mark.xfail(strict=strict, reason=reason)


def wait_for(predicate, timeout=HANG):
    """Poll `predicate` until it holds (True) or `timeout` passes (False):
    for state another thread or loop sets after the call's status."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def raw_call(port, path, messages):
    """One call over a bare HTTP/2 connection (the h2 package), to see the
    wire: (response headers, [(compressed flag, payload)], trailers)."""
    from tests.aio.harness import raw_h2_call
    return loop_for("raw-h2").run(raw_h2_call(port, path, messages))


def expected(facade, value, grpcio_aio=None, grpcpy=None):
    """The value a facade must show: grpcio sync's `value`, except for
    grpcio-aio when it disagrees (given as `grpcio_aio`; grpcpy keeps one
    behaviour, the one `value` describes). `grpcpy`: where grpcpy's one
    behaviour deliberately differs from grpcio's (say why at the call)."""
    if facade == "grpcio-aio" and grpcio_aio is not None:
        return grpcio_aio
    if grpcpy is not None and facade in GRPCPY:
        return grpcpy
    return value
