"""Stats hooks: what a call does, as it happens, for metrics, tracing and logs.

A hook is told of every call of the channels and servers it is installed on
(both facades: the events come from the call layer, grpcpy._rpc, which both
share), including calls that never reach a connection (no address, a
deadline that passed while waiting for one, a refused credential, a local
cancel), so figures built on it count every call the application made.

Installing a hook:
  - on every channel and server made afterwards: ``register_global(hook)``
    (``deregister_global(hook)`` takes it off for those made afterwards;
    grpcpy.observability's plugins do this);
  - on one channel or server: the option ``("grpcpy.stats_hooks", hook)``
    (or a sequence of hooks) in its ``options``.

What a hook sees, per call:

  Hook.client_call(info)  -> ClientCallStats or None   (None: not this call)
      ClientCallStats.attempt(number, transparent, previous, metadata)
                          -> AttemptStats or None
          AttemptStats.metadata        pairs added to this attempt's request
                                       headers (trace context)
          AttemptStats.headers_in(metadata)      the response headers
          AttemptStats.message_out(size, wire_size)   [Hook.messages only]
          AttemptStats.message_in(size, wire_size)    [Hook.messages only]
          AttemptStats.end(code, details, trailing, AttemptTotals)
      ClientCallStats.end(code, details, trailing, CallTotals)
  Hook.server_call(info)  -> ServerCallStats or None
      ServerCallStats.handler_enter() -> token    around the handler, in its
      ServerCallStats.handler_exit(token)         thread or task (context)
      ServerCallStats.headers_out(metadata)       the response headers
      ServerCallStats.message_in(size, wire_size)     [Hook.messages only]
      ServerCallStats.message_out(size, wire_size)    [Hook.messages only]
      ServerCallStats.end(code, details, trailing, CallTotals)

CallInfo.figures() reads a running call's messages and bytes so far from
the core's counters: live figures of long streams without message events.

`code` is a grpcpy.StatusCode. Sizes: `size` is the serialized message's
length, `wire_size` its length as sent (compressed when it was; the 5-byte
message prefix and HTTP/2 framing are not counted), as gRFC A66 counts.
Durations are seconds of time.perf_counter().

The rules:
  - a client call has at least one attempt: the first starts when the call
    does (so a call that fails before reaching a connection still reports
    one attempt, with the call's status, as grpc-core's attempt tracers do);
    each retry, hedge and transparent retry is another attempt;
  - every `attempt` gets its `end`, and `ClientCallStats.end` comes after
    the last attempt's end; `ServerCallStats.end` comes once, for calls
    refused at admission too (they never reach a handler);
  - hooks run on the thread that moved the call along (a handler thread,
    the caller's thread, the I/O thread, the event loop), under the
    connection's lock on the sync facade: they must be quick and must not
    block or make calls themselves; an exception in a hook is logged and
    the hook is left out of that call from then on: a broken hook never
    fails a call.
  - with no hook installed a call pays one attribute check per event.

Where it lives: grpcpy/_rpc/client.py and attempts.py (client calls and
attempts), grpcpy/_rpc/server.py (server calls); the channel driver and the
servers pick their hooks when they are made.

This module has no dependencies: grpcpy.observability (OpenTelemetry) and
grpcpy.prometheus build on it.
"""
import logging
import threading
import time

__all__ = ["Hook", "Tally", "ClientCallStats", "AttemptStats", "ServerCallStats", "CallInfo", "AttemptTotals",
           "CallTotals", "register_global", "deregister_global", "global_hooks", "OPTION"]

_LOGGER = logging.getLogger("grpcpy.stats")
OPTION = "grpcpy.stats_hooks"
clock = time.perf_counter


class CallInfo:
    """What a hook is told when a call begins.

    method      the full method name, "/pkg.Service/Method"
    registered  client: the stub said the method is known (grpcio-tools'
                generated stubs pass ``_registered_method=True``); server: a
                handler is registered for it (a generic handler's method or
                one not found is not registered: gRFC A66 reports those as
                "other")
    target      client: the channel's target as a URI, the scheme added when
                the application left it out ("localhost:50051" is
                "dns:///localhost:50051", gRFC A66's canonical target);
                server: None
    authority   client: the :authority sent; server: the one received
    peer        server: the client's address ("ipv4:127.0.0.1:5678"); client: None
    metadata    client: the call's request metadata (before attempts add
                theirs); server: the request headers' metadata
    deadline    seconds the call had left when it began, or None
    start       time.perf_counter() when it began
    server      True on the server side
    kind        "unary", "client_stream", "server_stream" or "bidi_stream"
                (go-grpc-prometheus' grpc_type names); None on a server for
                a method it has no handler for
    """

    __slots__ = ("method", "registered", "target", "_authority", "peer", "_metadata", "deadline", "start",
                 "server", "kind", "_core_call", "_live")

    def __init__(self, method, registered, target, authority, peer, metadata, deadline, start, server, kind,
                 core_call=None):
        self.kind = kind
        self.method = method
        self.registered = registered
        self.target = target
        self._authority = authority
        self.peer = peer
        self._metadata = metadata
        self.deadline = deadline
        self.start = start
        self.server = server
        # a server call's metadata and authority are decoded only when a
        # hook asks for them (most count calls and never look)
        self._core_call = core_call
        self._live = None           # a client call's observer (figures())

    def figures(self):
        """(sent messages, sent bytes, received messages, received bytes)
        of the call so far (a client call's: its current attempt's), read
        from the core's counters: live figures of a long stream without a
        message event each. Call it while the call runs (after its end the
        end's totals are the figures)."""
        core_call = self._core_call
        if core_call is None and self._live is not None:
            core_call = self._live.core_call()
        if core_call is None:
            return (0, 0, 0, 0)
        return core_call.sent_messages, core_call.sent_bytes, core_call.received_messages, core_call.received_bytes

    @property
    def metadata(self):
        core_call = self._core_call
        if core_call is not None and self._metadata is None:
            self._metadata = core_call.metadata
        return self._metadata

    @property
    def authority(self):
        authority = self._authority
        if authority is None and self._core_call is not None:
            authority = self._authority = self._core_call.authority.decode("latin-1")
        return authority

    def __repr__(self):
        return "<CallInfo %s %s%s>" % ("server" if self.server else "client", self.method,
                                       "" if self.registered else " (unregistered)")


class AttemptTotals:
    """An attempt's figures at its end: the time it took and the messages
    and their bytes (as gRFC A66 counts: compressed, no framing)."""

    __slots__ = ("duration", "sent_messages", "sent_bytes", "received_messages", "received_bytes", "peer")

    def __init__(self, duration, sent_messages, sent_bytes, received_messages, received_bytes, peer):
        self.duration = duration
        self.sent_messages = sent_messages
        self.sent_bytes = sent_bytes
        self.received_messages = received_messages
        self.received_bytes = received_bytes
        self.peer = peer

    def __repr__(self):
        return "<AttemptTotals %.6fs sent %d/%dB received %d/%dB>" % (
            self.duration, self.sent_messages, self.sent_bytes, self.received_messages, self.received_bytes)


class CallTotals(AttemptTotals):
    """A call's figures at its end. On the client the message figures are
    the committed attempt's (the one whose response the application got);
    `attempts` counts every attempt, `transparent_retries` those the
    channel made by itself, `retries` / `hedges` the retry policy's,
    `retry_delay` the seconds spent waiting between attempts (gRFC A96)."""

    __slots__ = ("attempts", "retries", "transparent_retries", "hedges", "retry_delay")

    def __init__(self, duration, sent_messages, sent_bytes, received_messages, received_bytes, peer,
                 attempts=1, retries=0, transparent_retries=0, hedges=0, retry_delay=0.0):
        self.duration = duration
        self.sent_messages = sent_messages
        self.sent_bytes = sent_bytes
        self.received_messages = received_messages
        self.received_bytes = received_bytes
        self.peer = peer
        self.attempts = attempts
        self.retries = retries
        self.transparent_retries = transparent_retries
        self.hedges = hedges
        self.retry_delay = retry_delay


class AttemptStats:
    """One attempt of a client call (every method is optional)."""

    metadata = ()       # added to this attempt's request headers

    def headers_in(self, metadata):
        pass

    def message_out(self, size, wire_size):
        pass

    def message_in(self, size, wire_size):
        pass

    def end(self, code, details, trailing, totals):
        pass


class ClientCallStats:
    """One client call (every method is optional)."""

    def attempt(self, number, transparent, previous, metadata):
        """An attempt begins: `number` counts from 0, `transparent` says the
        channel retried by itself, `previous` the grpc-previous-rpc-attempts
        sent with it, `metadata` the call's request metadata. Return an
        AttemptStats for its events, or None."""
        return None

    def end(self, code, details, trailing, totals):
        pass


class ServerCallStats:
    """One server call (every method is optional)."""

    def handler_enter(self):
        """The handler is about to run, in its thread or task (attach a
        tracing context here). The result is given to handler_exit."""
        return None

    def handler_exit(self, token):
        pass

    def headers_out(self, metadata):
        pass

    def message_in(self, size, wire_size):
        pass

    def message_out(self, size, wire_size):
        pass

    def end(self, code, details, trailing, totals):
        pass


class Hook:
    """A stats hook: override client_call and/or server_call. `messages`
    True asks for the per-message events (they cost a Python call per
    message; totals at the end come without them). The object returned
    for one call may say otherwise for its call with its own `messages`
    attribute (say, live counts for streams, totals for unary calls)."""

    messages = False

    def client_call(self, info):
        return None

    def server_call(self, info):
        return None


class Tally(Hook):
    """A hook that only adds calls up, per method: it hears of no attempt,
    header or message and no object is made for it per call, which keeps
    it cheap enough to leave on everywhere (grpcpy.prometheus is one).

    `series(info)` is asked once per channel or server and method (and call
    type), with the CallInfo of the first such call, and returns the object
    that method's calls are added to:

      series.started(call)                 a call began
      series.ended(call, code, duration)   it ended (duration: seconds)

    `call` is the same object for both, with `figures()`: (sent messages,
    sent bytes, received messages, received bytes) so far, read from the
    core's counters (at `ended`, the call's final figures). A server asks
    again on every call to a method it has no handler for (random method
    names do not grow its table). The same rules as for hooks hold: a
    series that raises is logged and left out of that call."""

    def series(self, info):
        raise NotImplementedError


# -- installed hooks ---------------------------------------------------------------

_lock = threading.Lock()
_global = ()


def register_global(hook):
    """Install `hook` on every channel and server made from now on."""
    global _global
    if not isinstance(hook, Hook):
        raise TypeError("a grpcpy.stats.Hook is expected, got %r" % (hook,))
    with _lock:
        if hook not in _global:
            _global = _global + (hook,)


def deregister_global(hook):
    """Take `hook` off the channels and servers made from now on (those
    made before keep it until they close)."""
    global _global
    with _lock:
        _global = tuple(h for h in _global if h is not hook)


def global_hooks():
    return _global


def split(hooks):
    """(hooks, tallies): the Tally hooks apart from the others."""
    return tuple(h for h in hooks if not isinstance(h, Tally)), tuple(h for h in hooks if isinstance(h, Tally))


def hooks_for(option_value):
    """The hooks of a new channel or server: the global ones, then those
    of its ``grpcpy.stats_hooks`` option (None: none)."""
    hooks = _global
    if option_value is not None:
        if isinstance(option_value, Hook):
            extra = (option_value,)
        else:
            try:
                extra = tuple(option_value)
            except TypeError:
                raise TypeError("%s: a grpcpy.stats.Hook or a sequence of them is expected, got %r"
                                % (OPTION, option_value)) from None
        for hook in extra:
            if not isinstance(hook, Hook):
                raise TypeError("%s: a grpcpy.stats.Hook is expected, got %r" % (OPTION, hook))
            if hook not in hooks:
                hooks = hooks + (hook,)
    return hooks
