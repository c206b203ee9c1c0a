"""A scripted, flaky test service that watches the attempts of each call.

One handler set serves on a grpcio server and on a grpcpy (sync) server. A
call names itself with request metadata `x-key` (every attempt of one call
carries the same key, so the attempts of a call are counted together) and
says how its attempts behave with `x-script`, a comma list of settings:

    fail=N        the first N attempts fail (fail=all: every attempt)
    code=NAME     the status they fail with (UNAVAILABLE)
    pushback=V    failures carry grpc-retry-pushback-ms: V (any text)
    headers=1     failures send response headers first
    hold=N        the first N attempts wait until the client cancels them
                  (HOLD seconds at most) before going on
    details=TEXT  the failure's details (default "attempt N failed")

The script travels with the call, so a client in another process (the
comparison program) can drive the service too. Each attempt is recorded as
it arrives: the value of `grpc-previous-rpc-attempts` it carried, its
arrival time (monotonic), the request messages it read, and whether the
client cancelled it. Every answer carries trailing metadata `x-attempt`
(1-based count of the attempt among its call's attempts), so a client can
tell which attempt answered.

Paths: /retry.Flaky/Unary (echo b"ok:" + request), /retry.Flaky/Collect
(client stream: the concatenation of the messages), /retry.Flaky/Echo
(bidi: every message back, after the whole request stream was read).
"""
import threading
import time
from concurrent import futures

import grpc

import grpcpy

SERVICE = "retry.Flaky"
UNARY = "/%s/Unary" % SERVICE
COLLECT = "/%s/Collect" % SERVICE
ECHO = "/%s/Echo" % SERVICE
HOLD = 5.0


def script(**settings):
    """x-script text from keyword settings (script(fail=2, code="INTERNAL"))."""
    return ",".join("%s=%s" % kv for kv in settings.items())


def _parse(text):
    out = {}
    for part in (text or "").split(","):
        if part:
            name, _, value = part.partition("=")
            out[name] = value
    return out


class Attempt:
    def __init__(self, number, previous, at):
        self.number = number          # 0-based, in arrival order within the call
        self.previous = previous      # grpc-previous-rpc-attempts as sent (None when absent)
        self.at = at                  # time.monotonic() at arrival
        self.messages = []            # request messages read
        self.cancelled = False        # the client cancelled it while it was held
        self.done = False

    def __repr__(self):
        return "Attempt(%r)" % vars(self)


class Recorder:
    """The attempts of each key, with waiting."""

    def __init__(self):
        self._cond = threading.Condition()
        self._attempts = {}

    def arrive(self, key, previous):
        with self._cond:
            seen = self._attempts.setdefault(key, [])
            attempt = Attempt(len(seen), previous, time.monotonic())
            seen.append(attempt)
            self._cond.notify_all()
            return attempt

    def changed(self):
        with self._cond:
            self._cond.notify_all()

    def attempts(self, key):
        with self._cond:
            return list(self._attempts.get(key, ()))

    def wait(self, key, predicate, timeout=10.0):
        """Wait until predicate(attempts of key) holds; return the attempts."""
        end = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._attempts.get(key, [])):
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("server: %r never came true for key %s: %r"
                                         % (predicate, key, self._attempts.get(key)))
                self._cond.wait(left)
            return list(self._attempts[key])


class FlakyService:
    """The handlers; `api` is the module whose StatusCode the context takes
    (grpc or grpcpy)."""

    def __init__(self, api):
        self.api = api
        self.recorder = Recorder()

    def _begin(self, context):
        md = dict(context.invocation_metadata())
        attempt = self.recorder.arrive(md.get("x-key", ""), md.get("grpc-previous-rpc-attempts"))
        return attempt, _parse(md.get("x-script"))

    def _hold(self, attempt, settings, context):
        if attempt.number >= int(settings.get("hold", 0)):
            return
        gone = threading.Event()
        if not context.add_callback(gone.set):   # already over
            gone.set()
        gone.wait(HOLD)
        if not context.is_active():
            attempt.cancelled = True
            self.recorder.changed()

    def _maybe_fail(self, attempt, settings, context):
        fail = settings.get("fail", "0")
        trailing = [("x-attempt", str(attempt.number + 1))]
        if fail == "all" or attempt.number < int(fail):
            if settings.get("headers"):
                context.send_initial_metadata((("x-headers", "sent"),))
            if "pushback" in settings:
                trailing.append(("grpc-retry-pushback-ms", settings["pushback"]))
            context.set_trailing_metadata(tuple(trailing))
            self._end(attempt)
            context.abort(self.api.StatusCode[settings.get("code", "UNAVAILABLE")],
                          settings.get("details", "attempt %d failed" % (attempt.number + 1)))
        context.set_trailing_metadata(tuple(trailing))

    def _end(self, attempt):
        attempt.done = True
        self.recorder.changed()

    def unary(self, request, context):
        attempt, settings = self._begin(context)
        attempt.messages.append(request)
        self._hold(attempt, settings, context)
        self._maybe_fail(attempt, settings, context)
        self._end(attempt)
        return b"ok:" + request

    def collect(self, request_iterator, context):
        attempt, settings = self._begin(context)
        for message in request_iterator:
            attempt.messages.append(message)
        self._hold(attempt, settings, context)
        self._maybe_fail(attempt, settings, context)
        self._end(attempt)
        return b"".join(attempt.messages)

    def echo(self, request_iterator, context):
        attempt, settings = self._begin(context)
        for message in request_iterator:
            attempt.messages.append(message)
        self._hold(attempt, settings, context)
        self._maybe_fail(attempt, settings, context)
        self._end(attempt)
        for message in list(attempt.messages):
            yield message

    def handler(self):
        api = self.api
        return api.method_handlers_generic_handler(SERVICE, {
            "Unary": api.unary_unary_rpc_method_handler(self.unary),
            "Collect": api.stream_unary_rpc_method_handler(self.collect),
            "Echo": api.stream_stream_rpc_method_handler(self.echo),
        })


class RunningServer:
    """A grpcio ("grpcio") or grpcpy sync ("grpcpy") server of the service
    on 127.0.0.1, port chosen by the kernel."""

    def __init__(self, impl):
        self.impl = impl
        api = grpc if impl == "grpcio" else grpcpy
        self.service = FlakyService(api)
        self.recorder = self.service.recorder
        self.server = api.server(futures.ThreadPoolExecutor(16))
        self.server.add_generic_rpc_handlers((self.service.handler(),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.target = "127.0.0.1:%d" % self.port

    def stop(self):
        self.server.stop(None)
