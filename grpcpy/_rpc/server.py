"""A server call, as the handler sees it, and server admission: the rules
both facades share.

Admission (ServerRules._call_started, on the connection's event dispatch):
a call that arrives while the server is not serving ends UNAVAILABLE
"server is shutting down"; beyond maximum_concurrent_rpcs it ends
RESOURCE_EXHAUSTED "Concurrent RPC limit exceeded!"; a method no handler
serves ends UNIMPLEMENTED "Method not found!" (found at once when the server
has no interceptors; behind interceptors the chain decides in the handler's
task or thread). The handler's request/response shape is given to the core,
which enforces the cardinality of unary sides (UNIMPLEMENTED, as the gRPC
status-code spec says for both sides).

Handler scheduling (ServerRules._start_handler, at the end of an event
batch): a handler whose request is unary (unary-unary, unary-stream) starts
only once its request is complete - the message and the client's half-close
in, so the core has checked that exactly one came. Until then the call is
"pending": it holds no worker thread (sync) and no task (aio), so streams
that open and never send their request cost memory only, bounded by
max_concurrent_streams per connection, and cannot starve other clients.
Behind interceptors the method is known only after the chain ran (in a worker
or a task); a unary-request call found there goes back to pending the same
way. A pending call that ends (client cancel, deadline, connection lost) is
dropped without its handler ever running, as grpcio drops it. Streaming-
request handlers start at once, as in grpcio. (grpcio's sync server hands
every call to its pool at once and the worker waits there for the request;
grpcpy does not, which is the point.)

The handler's status (CallContext):
- abort(code, details) ends the handler with that status; abort(OK) is a
  mistake and ends the call UNKNOWN with empty details (logged);
- set_code / set_details choose the status of a handler that returns; a
  handler that raises after choosing a failing code keeps that code AND its
  details (grpc.aio replaces the details with "Unexpected <class ...>";
  grpcpy does not); otherwise it ends UNKNOWN "Exception calling
  application: <exception>" (or "Exception iterating responses: ..." when its
  response iterator raised);
- a request the deserializer cannot read ends the call INTERNAL "Exception
  deserializing request!"; a response the serializer cannot write (None
  included: a unary handler that forgot to return) ends it INTERNAL "Failed
  to serialize response!" - in both facades (grpc.aio reported UNKNOWN, or
  sent an empty message for None);
- trailing metadata the wire cannot carry (invalid key, a value that is not
  str/bytes, a str value for a -bin key) ends the call INTERNAL "Invalid
  metadata", without those trailers (grpcio's status; its sync server hangs
  on a non-str value instead);
- cancel() by the handler ends the call CANCELLED as trailers (and resets the
  stream if the client is still sending), as grpcio's sync server does: the
  client sees a precise status. (grpc.aio resets the stream only.)

A facade subclasses CallContext with its API (blocking or async methods) and
its waiting: `_wake()` (a message, half-close or end arrived) and `_ended()`
(the core ended the call without us). The methods here that act on the core
expect the facade to hold the connection's lock, if it has one.
"""
import collections
import logging

from grpcpy import _cext, _channelz, _types
from grpcpy._rpc.observe import server_begin
from grpcpy.stats import split as stats_split
from grpcpy._context import PeerInfo
from grpcpy._rpc.client import check_metadata

_LOGGER = logging.getLogger("grpcpy.server")
StatusCode = _types.StatusCode
_OK = StatusCode.OK
_UNKNOWN = StatusCode.UNKNOWN
_INTERNAL = StatusCode.INTERNAL
_status_number = _types.status_number
_status_from_number = _types.status_from_number
_encode_metadata = _cext.encode_metadata

SHUTTING_DOWN = "server is shutting down"
TOO_MANY_RPCS = "Concurrent RPC limit exceeded!"
NOT_FOUND = "Method not found!"
CALLING_FAILED = "Exception calling application: %s"
ITERATING_FAILED = "Exception iterating responses: %s"
_DESERIALIZE_FAILED = "Exception deserializing request!"
_SERIALIZE_FAILED = "Failed to serialize response!"
_INVALID_METADATA = "Invalid metadata"


NO_MORE = object()     # _poll_request / _poll_message: the stream has ended


class CallFailed(Exception):
    """The call ends with a status the server chose (a message that cannot
    be (de)serialized); raised out of the handler's path."""

    def __init__(self, code, details):
        Exception.__init__(self, details)
        self.code = code
        self.details = details


class CallContext(PeerInfo):
    """State and rules of one server call (a servicer context's core)."""

    # state most calls never touch lives on the class until a call sets it
    _finished = False        # status sent or call ended
    _cancelled = False       # ended by the core: client cancel, deadline, connection lost
    _code = None
    _details = None
    _trailing = None
    _callbacks = None
    _metadata = None
    _handler = None
    _pending = True          # admitted; the handler is not handed to a worker or task (yet, or again)
    _stats = None            # grpcpy._rpc.observe.ServerObserver when the server has stats hooks

    def __init__(self, conn, call, handler):
        self._conn = conn
        self._peer_source = conn
        self._core = conn.core
        self._call = call
        self._handler = handler
        self._messages = collections.deque()
        self._half_closed = call.half_closed
        self._stats = None      # (see ClientCall.__init__: read the fast way)

    # -- facade hooks ----------------------------------------------------------------

    def _wake(self):
        pass

    def _ended(self):
        pass

    def _finish(self, code, details):
        """Send the final status (taking the connection's lock if it has one)
        and run the done-callbacks: the facade's _send_status wrapper."""
        raise NotImplementedError

    # -- events from the core ------------------------------------------------------------

    def _on_message(self, data, wire, compressed):
        self._messages.append((data, wire))
        if self._stats is not None and self._stats.messages:
            self._stats.message_in(data, compressed)
        self._wake()

    def _on_half_close(self):
        self._half_closed = True
        self._wake()

    def _on_write_ready(self):
        """Flow control let queued responses go (a facade with one waiter
        for everything takes it as a wake-up)."""
        self._wake()

    def _on_end(self, code, details):
        """The core ended the call without us: client cancel, deadline,
        connection lost, a protocol or cardinality failure."""
        if self._finished:
            return
        self._finished = True
        self._cancelled = True
        self._code = _status_from_number(code)
        self._details = details
        if self._stats is not None:
            self._stats.end(self._call, code, details, None, self._conn.peer)
        if self._pending:
            # its handler never ran and never will
            self._conn.server._forget_call(self)
        self._wake()
        self._ended()

    # -- requests ------------------------------------------------------------------------

    def _take_message(self):
        """The next request message already received (raw), or None; gives
        its flow-control credit back."""
        messages = self._messages
        if not messages:
            return None
        data, wire = messages.popleft()
        if not self._finished:
            self._core.message_consumed(self._call, wire)
            self._conn.after_action()
        return data

    def _poll_request(self):
        """The next request (raw); NO_MORE when none will come; None when
        the facade must wait for one."""
        data = self._take_message()
        if data is not None:
            return data
        if self._half_closed or self._finished:
            return NO_MORE
        return None

    def _one_request(self, raw):
        """A unary request: the deserialized message, or NO_MORE after
        ending the call when none came (the core ends it first when it
        knows the cardinality)."""
        if raw is NO_MORE:
            if not self._finished:
                self._finish(*self._missing_request_status())
            return NO_MORE
        return self._deserialize(raw)

    def _deserialize(self, raw):
        deserializer = self._handler.request_deserializer
        if deserializer is None:
            return raw
        try:
            return deserializer(raw)
        except Exception:
            _LOGGER.exception(_DESERIALIZE_FAILED)
            raise CallFailed(_INTERNAL, _DESERIALIZE_FAILED) from None

    # -- responses ------------------------------------------------------------------------

    def _serialize(self, message):
        serializer = self._handler.response_serializer
        try:
            payload = message if serializer is None else serializer(message)
        except Exception:
            _LOGGER.exception("Exception serializing message!")
            payload = None
        if payload is None:
            raise CallFailed(_INTERNAL, _SERIALIZE_FAILED)
        return payload

    def _send(self, payload):
        """Queue one response message: True while flow control holds it."""
        core = self._core
        if self._stats is not None and self._stats.sends:
            self._send_observed(payload)
        else:
            core.send_message(self._call, payload)
        self._conn.after_action()
        return not self._finished and core.write_pending(self._call)

    def _send_observed(self, payload):
        """_send's sending, told to the stats hooks (the response headers go
        with the first message unless they were sent already)."""
        call = self._call
        stats = self._stats
        if stats.headers and not call.headers_sent:
            stats.headers_out(())
        before = call.sent_bytes
        self._core.send_message(call, payload)
        if stats.messages:
            stats.message_out(len(payload), call.sent_bytes - before)

    def _send_initial_metadata(self, metadata):
        """False if it was sent already."""
        call = self._call
        if call.headers_sent:
            return False
        if not self._finished:
            metadata = tuple(metadata)
            try:
                check_metadata(metadata)
                _encode_metadata(metadata)
            except (TypeError, ValueError) as exc:   # MetadataError is a ValueError
                # the call ends INTERNAL "Invalid metadata", as grpcio ends it;
                # the handler goes on and whatever it does later is dropped
                _LOGGER.error("invalid initial metadata %r: %s", metadata, exc)
                callbacks = self._send_status(_INTERNAL, _INVALID_METADATA)
                if callbacks:
                    self._callbacks = callbacks      # run by the facade's _finish later
                return True
            if self._stats is not None and self._stats.headers:
                self._stats.headers_out(metadata)
            self._core.send_initial_metadata(call, metadata)
            self._conn.after_action()
        return True

    def _respond(self, response):
        """Finish a unary-response call: the response (unless the handler
        chose a failing code), then the status. Returns the done-callbacks
        to run (outside any lock), or None."""
        if self._finished:
            return None
        code = self._code
        if code is None or code is _OK or _status_number(code) == 0:
            if self._handler.response_serializer is None and response is not None:
                payload = response
            else:
                payload = self._serialize(response)
            if self._stats is not None and self._stats.sends:
                self._send_observed(payload)
            else:
                self._core.send_message(self._call, payload)
            code = _OK
        return self._send_status(code, self._details)

    # -- status ---------------------------------------------------------------------------

    def _set_abort(self, code, details, trailing_metadata=None):
        """abort() and abort_with_status(), one rule for both facades: what
        the handler set before and the abort does not replace stands. Empty
        details keep set_details' text, and no trailing metadata keeps
        set_trailing_metadata's (grpc.aio's behaviour; grpcio's sync server
        drops both). Nothing the application chose is lost silently, and a
        status from grpcpy.status.to_status brings its own trailers, which
        then replace the earlier ones. OK is a mistake: UNKNOWN, no details."""
        if code is None or _status_number(code) == 0:
            _LOGGER.error("abort() called with StatusCode.OK; returning UNKNOWN")
            code = _UNKNOWN
            details = ""
        elif not details and self._details:
            details = self._details
        if trailing_metadata:
            self._trailing = tuple(trailing_metadata)
        self._code = code
        self._details = details

    def _set_handler(self, handler):
        """The handler an interceptor chain found: the core learns its
        cardinality now (which may end the call: a unary request that got
        two messages, or none before the half-close)."""
        self._handler = handler
        self._core.set_cardinality(self._call, handler.request_streaming, handler.response_streaming)
        self._conn.after_action()

    def _awaits_request(self):
        """True when the handler's request is unary and not complete yet:
        the call must stay pending (the core ends it if the half-close
        comes without a message, or a second message comes)."""
        handler = self._handler
        return (handler is not None and not handler.request_streaming
                and not self._half_closed and not self._finished)

    def _missing_request_status(self):
        """A unary-request call whose client sent no request (grpcio's sync
        server's text; the gRPC spec's code for a cardinality violation)."""
        return StatusCode.UNIMPLEMENTED, '"%s" requires exactly one request message.' % (self._call.method,)

    def _final_status(self):
        """The status of a handler that returned."""
        return (_OK if self._code is None else self._code), self._details

    def _handler_failed(self, exc, template):
        """The handler raised `exc` (logged here): a failing code it chose
        before stands with its details, else UNKNOWN with the template's
        text. The facade's _finish sends it."""
        if self._finished:
            return
        _LOGGER.error(template, exc, exc_info=exc)
        code = self._code
        if code is not None and _status_number(code) != 0:
            self._finish(code, self._details)
        else:
            self._finish(_UNKNOWN, template % (exc,))

    def _send_status(self, code, details):
        """Send the call's final status (once). Returns the done-callbacks
        to run (outside any lock), or None."""
        if self._finished:
            # callbacks left by a status sent from inside the handler's
            # path (invalid initial metadata) run now, once
            callbacks = self._callbacks
            if callbacks is not None:
                self._callbacks = None
            return callbacks
        self._finished = True
        trailing = self._trailing
        number = 0 if code is _OK else _status_number(code)
        if details is not None and not isinstance(details, str):
            # grpcio's sync server sends bytes details decoded
            details = bytes(details).decode("utf-8", "replace")
        if trailing:
            try:
                check_metadata(trailing)
                _encode_metadata(trailing)
            except (TypeError, ValueError) as exc:   # MetadataError is a ValueError
                _LOGGER.error("invalid trailing metadata %r: %s", trailing, exc)
                number, details, trailing = _INTERNAL.value[0], _INVALID_METADATA, None
        self._core.send_status(self._call, number, details or "", trailing)
        if self._stats is not None:
            self._stats.end(self._call, number, details or "", trailing, self._conn.peer)
        self._conn.call_finished()
        callbacks = self._callbacks
        if callbacks is not None:
            self._callbacks = None
        return callbacks

    def _cancel_by_handler(self):
        """The handler cancels its own call: CANCELLED as trailers; the
        core's end event then reaches _on_end."""
        if not self._finished:
            self._core.cancel_by_application(self._call)
            self._conn.after_action()

    def _time_remaining(self, now):
        """Seconds left, or None without a deadline (as the API documents;
        grpcio's sync server returns about 9.2e18 instead)."""
        deadline = self._call.deadline
        if deadline == float("inf"):
            return None
        return max(0.0, deadline - now)

    # -- grpc.ServicerContext methods that need no waiting -----------------------------------

    def set_trailing_metadata(self, trailing_metadata):
        self._trailing = tuple(trailing_metadata)

    def set_code(self, code):
        self._code = code

    def set_details(self, details):
        self._details = details

    def code(self):
        return self._code

    def details(self):
        """None until set_details (grpcio sync's; grpc.aio says '')."""
        return self._details

    def trailing_metadata(self):
        """None until set_trailing_metadata (grpcio sync's; grpc.aio says ())."""
        return self._trailing

    def disable_next_message_compression(self):
        self._call.compress_next = False

    def is_active(self):
        return not self._finished


def behavior_of(handler):
    """The handler's function for its request/response shape."""
    if handler.request_streaming:
        return handler.stream_stream if handler.response_streaming else handler.stream_unary
    return handler.unary_stream if handler.response_streaming else handler.unary_unary


class ServerRules:
    """Handler registration, admission and method lookup of a server."""

    def _init_rules(self, generic_handlers, interceptors, maximum_concurrent_rpcs):
        self._handlers = []
        self._registered = {}
        self._interceptors = list(interceptors or ())
        self._max_rpcs = maximum_concurrent_rpcs
        self._active = set()
        # channelz: the server's node (figures of its closed connections);
        # a facade keeps its live connections in _connections
        self._channelz = _channelz.Node(_channelz.SERVER, self)
        self._stats_hooks = self._options.stats_hooks      # grpcpy.stats (fixed at creation)
        self._stats_calls, self._stats_tallies = stats_split(self._stats_hooks)
        self._tally_series = {}             # method -> the tallies' series (methods with a handler)
        # methods added by name (generated code's add_registered_method_handlers):
        # the ones gRFC A66 reports by name, as grpcio does (a generic
        # handler's are "other", even where _registered answers for them)
        self._registered_names = set()
        self.add_generic_rpc_handlers(generic_handlers or ())

    def add_generic_rpc_handlers(self, generic_rpc_handlers):
        for handler in generic_rpc_handlers:
            table = getattr(handler, "method_handlers", None)
            if callable(table) and not self._interceptors and not self._handlers:
                # grpcpy's own generic handler, with no other generic handler
                # before it: its table answers directly (an earlier entry for
                # a method wins, as the first handler in order would)
                for method, method_handler in table().items():
                    self._registered.setdefault(method, method_handler)
            else:
                self._handlers.append(handler)

    def add_registered_method_handlers(self, service_name, method_handlers):
        for method, handler in method_handlers.items():
            name = _types.fully_qualified_method(service_name, method)
            self._registered[name] = handler
            self._registered_names.add(name)

    _stop_hooks = ()

    def _add_stop_hook(self, hook):
        """A function stop() calls once, before any listener or connection
        closes (grpcpy.health's drain_on_stop)."""
        self._stop_hooks = tuple(self._stop_hooks) + (hook,)

    def _run_stop_hooks(self):
        for hook in self._stop_hooks:
            try:
                hook()
            except Exception:  # a hook must not keep the server from stopping
                _LOGGER.exception("stop hook failed")

    def _service_names(self):
        """The names of the services registered so far: those of methods in
        the registry and of generic handlers that name their service
        (ServiceRpcHandler). Read at call time by reflection, so services
        added later are included."""
        names = {method.split("/", 2)[1] for method in list(self._registered)}
        for handler in list(self._handlers):
            service_name = getattr(handler, "service_name", None)
            if callable(service_name):
                names.add(service_name())
        return names

    # a server subclass sets: _context_class (its CallContext), _state
    # ("new", "started", "stopping", "stopped")
    _context_class = CallContext
    _state = "new"

    def _call_started(self, conn, call):
        """A call the core validated: its context, or None after refusing it."""
        core = conn.core
        if self._state != "started":
            return self._refuse(conn, call, _cext.SC_UNAVAILABLE, SHUTTING_DOWN)
        if self._max_rpcs is not None and len(self._active) >= self._max_rpcs:
            return self._refuse(conn, call, _cext.SC_RESOURCE_EXHAUSTED, TOO_MANY_RPCS)
        handler = None
        if not self._interceptors:
            handler = self._registered.get(call.method)
            if handler is None:
                handler = self._lookup(_types.handler_call_details(call.method, _metadata_of(call)))
                if handler is None:
                    return self._refuse(conn, call, _cext.SC_UNIMPLEMENTED, NOT_FOUND)
        ctx = self._context_class(conn, call, handler)
        if handler is None:
            core.accept_call(call, ctx)         # the interceptor chain finds it later
        else:
            core.accept_call(call, ctx, handler.request_streaming, handler.response_streaming)
            if call.is_done:
                # the batch that started it also broke its cardinality (two
                # messages to a unary request, or a half-close after none):
                # the core has sent the status; its end event finds the
                # context finished
                ctx._finished = True
                ctx._pending = False
                if self._stats_hooks:
                    self._observe(conn, call, None, handler)
                return None
        self._active.add(ctx)
        if self._stats_hooks:
            self._observe(conn, call, ctx, handler or self._registered.get(call.method))
        return ctx

    def _observe(self, conn, call, ctx, handler):
        """Tell the stats hooks of a call: an admitted one (ctx) from now
        on, a refused one (no ctx) begins and ends at once."""
        stats = server_begin(self, conn, call, handler)
        if stats is not None:
            if ctx is not None:
                ctx._stats = stats
            else:
                stats.end(call, call.code, call.details, None, conn.peer)

    def _start_handler(self, ctx):
        """A pending call whose handler may start (the end of the event
        batch that started it, or that completed its request): hand it to
        the facade's _run_handler, unless it must wait for its request."""
        if ctx._finished:
            return
        handler = ctx._handler      # ctx._awaits_request(), inline: once per call
        if handler is not None and not handler.request_streaming and not ctx._half_closed:
            return
        ctx._pending = False
        self._run_handler(ctx)

    def _forget_call(self, ctx):
        """A pending call ended before its handler ran (the facade holds the
        connection's lock, if it has one)."""
        ctx._pending = False
        self._active.discard(ctx)
        ctx._call.user = None

    def _refuse(self, conn, call, code, details):
        conn.core.send_status(call, code, details)
        conn.after_action()
        if self._stats_hooks:
            self._observe(conn, call, None, None)
        return None

    def _lookup(self, handler_call_details):
        """The handler for a call: registered methods, then the generic
        handlers in order (the end of an interceptor chain too)."""
        handler = self._registered.get(handler_call_details.method)
        if handler is None:
            for generic in self._handlers:
                handler = generic.service(handler_call_details)
                if handler is not None:
                    break
        return handler


def _metadata_of(call):
    return tuple(_types.Metadatum(k, v) for k, v in call.metadata)
