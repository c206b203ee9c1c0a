"""A client call, as the application sees it: the rules both facades share.

`ClientCall` is the `user` of the core's ClientCall objects: the core's
events arrive as _on_initial_metadata / _on_message / _on_end /
_on_write_ready (through grpcpy._rpc.events). It keeps the call's status,
metadata and received messages, and decides everything the API shows:

- serialisation: a request serializer that raises fails the call INTERNAL
  "Exception serializing request!", a response deserializer that raises
  cancels it and fails it INTERNAL "Exception deserializing response!"
  (grpcio's codes and texts);
- metadata given by the application is type-checked before anything is
  sent: a `str` value for a `-bin` key, or a value that is neither str nor
  bytes, raises TypeError from the call (grpcio's exceptions); keys the wire
  cannot carry fail the call INTERNAL (the core's start_call ends it with a
  status; nothing is sent);
- cancellation: a local cancel settles the status (CANCELLED, "Locally
  cancelled by application!") before the core reports the reset, so the
  application's status is never replaced;
- a request iterator that raises fails the call UNKNOWN "Exception iterating
  requests!" (grpcio's sync API; grpc.aio reports a local cancellation
  instead, which hides that the application's iterator failed: grpcpy does
  not copy that);
- the unary result: the one response of an OK unary-response call, the same
  object every time it is asked for (grpcio returns the response again when
  a finished call is awaited a second time);
- call credentials: the metadata plugins run before the call starts and
  their wait is bounded by the call's deadline (DEADLINE_EXCEEDED), in both
  facades; a plugin error fails the call UNAVAILABLE with its text.

Attempts. A call is carried by attempts: each attempt is one core call on
one connection. Retries, hedging and the transparent retry of a stream the
server never processed (several attempts, one after another or
overlapping, on different connections) are grpcpy._rpc.attempts'; the
connection and core call of the current attempt are kept on the call
itself for the hot path (`_conn`, `_core_call`). A call that never retries
pays for this with a few attribute checks: its first attempt is its own
core call's user, and nothing is kept once the response headers commit it.

A facade subclass provides: `_now()` (its clock: the deadline is kept in
it), the wake-ups `_wake_initial`, `_wake_message`, `_wake_write`,
`_wake_end` (called with the connection's lock held on the sync side), and
`_error()` (the exception that its API raises for a failed call). Methods
that act on the core expect the facade to hold the connection's lock, if it
has one.
"""
import collections
import logging

from grpcpy import _credentials, _types
from grpcpy._rpc.attempts import UNSETTLED, CallAttempts
from grpcpy._rpc.observe import client_begin

_LOGGER = logging.getLogger("grpcpy.call")
StatusCode = _types.StatusCode
_OK = StatusCode.OK
_CANCELLED = StatusCode.CANCELLED
_INTERNAL = StatusCode.INTERNAL
_status_from_number = _types.status_from_number
_status_number = _types.status_number
_compression_name = _types.compression_name

LOCALLY_CANCELLED = "Locally cancelled by application!"
DEADLINE_EXCEEDED = "Deadline Exceeded"
_SERIALIZE_FAILED = "Exception serializing request!"
_DESERIALIZE_FAILED = "Exception deserializing response!"
_ITERATOR_FAILED = "Exception iterating requests!"
_NO_RESPONSE = "No response message received for a unary-response call"

_NOTHING = object()
NO_MORE = object()     # _poll_message: the stream has ended


class CallSerializationError(Exception):
    """Raised by ClientCall._serialize when the request serializer failed;
    the call has already ended INTERNAL."""


def check_metadata(metadata):
    """grpcio's type rules for metadata an application passes to a call:
    TypeError, and nothing is sent (None is allowed: sent empty). (Keys and values the wire cannot carry
    are the core's to refuse; they end the call INTERNAL.)"""
    if not metadata:
        return
    for item in metadata:
        key, value = item
        if isinstance(value, str):
            if key.endswith("-bin"):
                raise TypeError('Binary metadata key="%s" expected bytes, got %r' % (key, str))
        elif value is not None and not isinstance(value, (bytes, bytearray)):
            raise TypeError("Expected str, not %r" % (type(value),))


class ChannelMethods:
    """grpc.Channel's four multicallable factories, for both facades'
    channels: a facade names its multicallable classes."""

    _unary_unary = _unary_stream = _stream_unary = _stream_stream = None

    def unary_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        if _registered_method:
            self._registered_methods.add(method)
        return self._unary_unary(self, method, request_serializer, response_deserializer)

    def unary_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        if _registered_method:
            self._registered_methods.add(method)
        return self._unary_stream(self, method, request_serializer, response_deserializer)

    def stream_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        if _registered_method:
            self._registered_methods.add(method)
        return self._stream_unary(self, method, request_serializer, response_deserializer)

    def stream_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        if _registered_method:
            self._registered_methods.add(method)
        return self._stream_stream(self, method, request_serializer, response_deserializer)


class Attempt:
    """One try of a call: a core call on one connection."""

    __slots__ = ("conn", "core_call", "number")

    def __init__(self, conn, core_call, number):
        self.conn = conn
        self.core_call = core_call
        self.number = number

    def __repr__(self):
        return "<Attempt %d on %r>" % (self.number, self.conn)


class ClientCall(CallAttempts):
    """One client call: status, metadata, messages and the rules over them."""

    # state most calls never touch lives on the class until a call sets it
    _attempt_log = ()          # (connection, core call) of attempts given up, in order
    _conn = None               # connection of the committed attempt
    _core_call = None          # its core call
    _initial_metadata = None
    _code = None
    _details = None
    _trailing_metadata = None
    _cancelled_locally = False
    _ended = False
    _request = None            # the serialized unary request, until it is sent
    _response = _NOTHING       # the unary result once deserialized
    _response_streaming = True
    _max_receive = -1          # the method config's maxResponseMessageBytes (-1: the channel's)
    _lb_done = None            # the balancer's report for the current attempt (grpcpy._channel.driver)
    _stats = None              # grpcpy._rpc.observe.ClientObserver when the channel has stats hooks

    @property
    def _lb_call(self):
        """The call a pick is for (a facade's queued waiter names its call)."""
        return self

    def __init__(self, channel, method, serializer, deserializer, timeout, metadata, credentials,
                 wait_for_ready, compression, request=_NOTHING):
        """`request`: the request of a unary-request call, serialized here
        (a serializer that raises fails the call, not the caller, as in
        grpcio) and sent with the start."""
        self._channel = channel
        self._method = method
        self._serializer = serializer
        self._deserializer = deserializer
        self._wait_for_ready = wait_for_ready
        configs = channel._method_configs
        if configs is not None:
            config = configs.method_config(method)
            if config is not None:
                timeout = self._apply_method_config(config, timeout, wait_for_ready)
        elif not channel._config_settled:
            self._policy = UNSETTLED        # looked up again at the start (attempts.py)
        self._deadline = None if timeout is None else self._now() + timeout
        self._messages = collections.deque()
        if metadata:
            check_metadata(metadata)
        self._metadata = metadata
        hooks = channel._stats_hooks
        # (an instance attribute, even when None: the checks of every event
        # then read it the fast way, not through the class)
        self._stats = None if not hooks else client_begin(self, request is _NOTHING)
        self._credentials = credentials
        if compression is None:
            self._compression = channel._options.compression
        else:
            self._compression = _compression_name(compression) or channel._options.compression
        if request is not _NOTHING:
            if serializer is None and request is not None:
                self._request = request
            else:
                try:
                    if serializer is None:
                        raise TypeError("a request of None without a request serializer")
                    self._request = serializer(request)
                except Exception:
                    _LOGGER.exception(_SERIALIZE_FAILED)
                    self._finish_local(_INTERNAL, _SERIALIZE_FAILED)
            if self._max_send is not None and self._request is not None:
                self._too_large(self._request)

    # -- facade hooks ----------------------------------------------------------------

    def _now(self):
        raise NotImplementedError

    def _wake_initial(self):
        pass

    def _wake_message(self):
        pass

    def _wake_write(self):
        pass

    def _wake_end(self):
        pass

    def _error(self):
        raise NotImplementedError

    # -- requests ---------------------------------------------------------------------

    def _serialize(self, message):
        """The wire form of a request message; on failure the call ends
        INTERNAL and CallSerializationError is raised."""
        serializer = self._serializer
        try:
            if serializer is None:
                if message is None:
                    raise TypeError("a request of None without a request serializer")
                return message
            return serializer(message)
        except Exception:
            _LOGGER.exception(_SERIALIZE_FAILED)
            self._serialize_failed()
            raise CallSerializationError() from None

    def _serialize_failed(self):
        """A request could not be serialized: the call fails INTERNAL (the
        sync facade calls this under the connection's lock)."""
        self._cancel(_INTERNAL, _SERIALIZE_FAILED, by_application=False)

    def _deserialize(self, raw):
        deserializer = self._deserializer
        if deserializer is None:
            return raw
        try:
            return deserializer(raw)
        except Exception:
            _LOGGER.exception(_DESERIALIZE_FAILED)
            self._deserialize_failed()
            return _NOTHING

    def _deserialize_failed(self):
        """A response could not be deserialized: the call fails INTERNAL
        (cancelled if it is still running; a unary response is read after
        the status came, and the failure replaces that status). The sync
        facade calls this under the connection's lock."""
        if self._ended:
            self._code = _INTERNAL
            self._details = _DESERIALIZE_FAILED
        else:
            self._cancel(_INTERNAL, _DESERIALIZE_FAILED, by_application=False)

    # -- call credentials ----------------------------------------------------------------

    def _auth_plugins(self):
        """The metadata plugins to run before the call starts, or None after
        failing the call (plugins refused on this channel)."""
        channel = self._channel
        plugins, refusal = _credentials.call_plugins(channel._credentials, self._credentials)
        if refusal is not None:
            self._finish_local(*refusal)
            return None
        return plugins

    def _auth_context(self):
        channel = self._channel
        return _credentials.auth_context_for(channel._scheme, channel._authority, self._method)

    def _auth_remaining(self):
        """How long the plugins may take: the call's deadline bounds them."""
        return None if self._deadline is None else max(0.0, self._deadline - self._now())

    def _auth_timed_out(self):
        self._finish_local(StatusCode.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)

    def _auth_answer(self, extra, metadata, error):
        """One plugin answered: False after failing the call."""
        if error is not None:
            self._finish_local(StatusCode.UNAVAILABLE, error)
            return False
        extra.extend(metadata)
        return True

    def _auth_done(self, extra):
        if extra:
            self._metadata = tuple(self._metadata or ()) + tuple(extra)

    # -- attempts ------------------------------------------------------------------------

    @property
    def _attempts(self):
        """The attempts made so far, oldest first: those given up (a retry
        policy logs them as plain pairs) and the committed one, whose
        connection and core call are `_conn` / `_core_call` (nothing is
        allocated for them on the hot path)."""
        log = self._attempt_log
        if self._conn is not None and (self._conn, self._core_call) not in log:
            log = log + ((self._conn, self._core_call),)
        return [Attempt(conn, core_call, n) for n, (conn, core_call) in enumerate(log)]

    def _start_on(self, conn):
        """Start an attempt on a ready connection (the facade holds its
        lock); the unary request goes with it."""
        if self._ended:
            if self._lb_done is not None:       # picked, never sent
                self._lb_done, done = None, self._lb_done
                done(None, None)
            return
        refusal = conn.call_refusal
        if refusal is not None:     # e.g. the TLS call-host check
            self._finish_local(*refusal)
            return
        if self._conn is not None or self._policy is not None:
            self._start_again(conn)     # a retry, a hedge, a transparent retry
            return
        # (_open, inline: the everyday path)
        deadline = self._deadline
        if deadline is None:
            now = 0.0
            timeout = -1.0
        else:
            now = self._now()
            timeout = max(0.0, deadline - now)
        if self._stats is not None and self._stats.attempts:
            self._start_again(conn)     # an attempt the stats hooks watch
            return
        core = conn.core
        core_call = core.start_call(self._method, now, timeout, self._metadata, self._compression, self,
                                    self._response_streaming)
        if self._max_receive >= 0:
            core.set_receive_limit(core_call, self._max_receive)
        self._conn = conn
        self._core_call = core_call
        request = self._request
        if request is not None:
            # (kept: a retry sends it again)
            core.send_unary(core_call, request)
        conn.after_action()

    def _open(self, conn, metadata, user):
        """A new core call for this call on `conn`, with what is left of the
        deadline."""
        deadline = self._deadline
        if deadline is None:
            now = 0.0           # the core reads the clock only for a deadline
            timeout = -1.0
        else:
            now = self._now()
            timeout = max(0.0, deadline - now)
        # metadata the wire cannot carry ends the call INTERNAL in the core
        # (its CALL_ENDED comes with after_action); a unary response is
        # held to exactly one message there too
        core = conn.core
        core_call = core.start_call(self._method, now, timeout, metadata, self._compression, user,
                                    self._response_streaming)
        if self._max_receive >= 0:
            core.set_receive_limit(core_call, self._max_receive)
        return core_call

    # -- events from the core ------------------------------------------------------------

    def _on_initial_metadata(self, metadata):
        self._initial_metadata = metadata
        self._wake_initial()

    def _on_message(self, data, wire, compressed):
        self._messages.append((data, wire))
        self._wake_message()

    def _on_write_ready(self):
        self._wake_write()

    def _on_stream_refused(self):
        """The server refused the attempt's stream and the core sends it
        again (a transparent retry below the call layer)."""
        if self._stats is not None and self._hedges is None:
            self._stats.replayed(self._core_call)

    def _on_end(self, code, details, trailing):
        """The core ended the current attempt: the call's end, unless the
        attempt failed before the call committed and another one follows."""
        done = self._lb_done
        if done is not None:
            self._lb_done = None
            done(code, trailing)
        if self._ended:
            return
        stats = self._stats
        if code and self._initial_metadata is None and not self._committed \
                and self._retry_or_not(code, details, trailing):
            self._core_call.user = None
            if stats is not None and self._hedges is None:
                stats.retrying(code, details, trailing)
            return
        self._ended = True
        if stats is not None:
            # (ends the attempt that carried the call too)
            stats.end(code, details if code else "", trailing)
        self._code = _status_from_number(code)
        # an OK status reports no details, whatever grpc-message came with
        # it (grpcio's clients, both APIs)
        self._details = details if code else ""
        self._trailing_metadata = trailing
        if self._initial_metadata is None:
            self._initial_metadata = ()
        core_call = self._core_call
        if core_call is not None:
            # no more events for this call: break the cycle with the core's
            # call object so both are freed by reference counting
            core_call.user = None
        if self._policy is not None:
            self._record_outcome(code)
        if self._kept is not None:
            self._release_kept()
        self._wake_end()

    def _end_call(self, code, details, trailing):
        """End the call with this status, whatever attempts are left."""
        self._committed = True
        self._on_end(code, details, trailing)

    def _finish_local(self, code, details):
        """The call ends with a status decided here (never started, refused,
        cancelled)."""
        if not self._ended:
            self._committed = True
            self._on_end(_status_number(code), details, ())

    # -- acting on the call (the facade holds the connection's lock) ---------------------

    def _take_message(self):
        """The next received message (raw), or None; gives its flow-control
        credit back."""
        messages = self._messages
        if not messages:
            return None
        data, wire = messages.popleft()
        if not self._ended:
            conn = self._conn
            conn.core.message_consumed(self._core_call, wire)
            conn.after_action()
        return data

    def _poll_message(self):
        """The next response (raw); NO_MORE once the call has ended and
        every message was taken; None when the facade must wait."""
        data = self._take_message()
        if data is not None:
            return data
        return NO_MORE if self._ended else None

    def _send(self, payload):
        """Queue one request message: True while flow control holds it."""
        if self._max_send is not None and self._too_large(payload):
            return False
        if self._initial_metadata is None and not self._committed:
            # may still be replayed by another attempt
            self._keep(payload)
            if self._hedges:
                self._send_hedged(payload)
                return False
        conn = self._conn
        if conn is None:
            return False        # no attempt yet: the next one sends what was kept
        core = conn.core
        core_call = self._core_call
        stats = self._stats
        if stats is not None and stats.messages:
            before = core_call.sent_bytes
            core.send_message(core_call, payload)
            stats.current.message_out(len(payload), core_call.sent_bytes - before)
        else:
            core.send_message(core_call, payload)
        conn.after_action()
        return not self._ended and core.write_pending(core_call)

    def _send_hedged(self, payload):
        for hedge in self._hedges:
            if hedge.live:
                hedge.conn.core.send_message(hedge.core_call, payload)
                hedge.conn.after_action()

    def _close_send(self):
        self._half_closed = True
        if self._ended:
            return
        if self._hedges:
            for hedge in self._hedges:
                if hedge.live:
                    hedge.conn.core.close_send(hedge.core_call)
                    hedge.conn.after_action()
            return
        if self._conn is not None:
            self._conn.core.close_send(self._core_call)
            self._conn.after_action()

    def _cancel(self, code=_CANCELLED, details=LOCALLY_CANCELLED, by_application=True):
        """End the call now with this status (every attempt): False if it
        had ended."""
        if self._ended:
            return False
        self._cancelled_locally = by_application
        if self._timer is not None:
            self._drop_timer()      # an attempt waiting for its time
        conn = self._conn
        hedges = self._hedges
        if hedges:
            for hedge in hedges:
                if hedge.live:
                    hedge.live = False
                    hedge.conn.core.cancel_call(hedge.core_call, details)
        elif conn is not None:
            # resets the stream and queues the core's CALL_ENDED (CANCELLED)
            conn.core.cancel_call(self._core_call, details)
        # the status is ours: settled before that event is delivered, so
        # the core's CANCELLED never replaces the code we were given
        self._finish_local(code, details)
        if hedges:
            for hedge in hedges:
                hedge.conn.after_action()
        elif conn is not None:
            conn.after_action()
        return True

    def _iterator_failed(self):
        """The application's request iterator raised (logged by the caller)."""
        self._cancel(StatusCode.UNKNOWN, _ITERATOR_FAILED, by_application=False)

    # -- results -------------------------------------------------------------------------

    def _unary_result(self):
        """The response of a finished unary-response call; raises the
        facade's error for a failed call."""
        response = self._response
        if response is not _NOTHING:
            return response
        if self._code is not _OK:
            raise self._error()
        if self._messages:
            response = self._messages[0][0]
            deserializer = self._deserializer
            if deserializer is not None:
                response = self._deserialize(response)
                if response is _NOTHING:       # the deserializer failed the call
                    raise self._error()
            self._response = response
            return response
        # OK without a message (the core reports this cardinality violation
        # itself; kept for a status settled locally as OK)
        self._code = StatusCode.UNIMPLEMENTED
        self._details = _NO_RESPONSE
        raise self._error()

    def _debug_string(self):
        if self._code is None or self._code is _OK:
            return ""
        return "grpc_status:%d, grpc_message:%r" % (self._code.value[0], self._details)

    def _time_remaining(self):
        deadline = self._deadline
        if deadline is None:
            return None
        return max(0.0, deadline - self._now())

    def _status_repr(self, name):
        return '<%s of RPC that terminated with:\n\tstatus = %s\n\tdetails = "%s"\n\tdebug_error_string = "%s"\n>' % (
            name, self._code, self._details, self._debug_string())
