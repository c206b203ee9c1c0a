"""The call layer's side of grpcpy.stats: what a call tells its hooks.

A channel or server takes its hooks once, when it is made (grpcpy._options
reads them). A call of one with no hooks has `_stats` None and pays an
attribute check per event. A call with hooks holds one observer:

- ClientObserver: the call's ClientCallStats (one per hook that wanted
  the call), its attempts (AttemptRecord) and the retry figures of gRFC
  A96. The call layer (client.py, attempts.py) tells it when an attempt
  starts and ends and when the call ends. Headers and messages reach an
  attempt's hooks through an ObservedAttempt set as the core call's `user`
  (or the Hedge that carries a hedged attempt), and only when a hook asked
  for them: a hook that only counts calls costs no extra call per event.
- ServerObserver: the server call's ServerCallStats; the server context
  (server.py) and the facades' handler runners call it.

Which optional methods a hook's objects override is found once per class
(`_overrides`), so the base classes' empty methods are never called.

A hook that raises is logged and replaced, for that call, by one that does
nothing (`_Dead`): a broken hook never fails a call.
"""
import logging
import math
import time

from grpcpy import _types, stats as _stats

_LOGGER = logging.getLogger("grpcpy.stats")
_clock = _stats.clock
_monotonic = time.monotonic     # the servers' deadlines are in the monotonic clock
_INF = math.inf
_status_from_number = _types.status_from_number
_STATUS_BY_NUMBER = _types.STATUS_BY_NUMBER
_UNKNOWN = _types.StatusCode.UNKNOWN
_REFUSED = _types.status_number(_types.StatusCode.UNAVAILABLE)
_AttemptTotals = _stats.AttemptTotals
_CallTotals = _stats.CallTotals
# go-grpc-prometheus' names of the call types, by (request streaming,
# response streaming)
_KINDS = {(False, False): "unary", (True, False): "client_stream", (False, True): "server_stream",
          (True, True): "bidi_stream"}


class _Dead(_stats.AttemptStats, _stats.ClientCallStats, _stats.ServerCallStats):
    """What a hook that raised is replaced by, for the rest of its call."""


_DEAD = _Dead()


def _broken(targets, target, where):
    _LOGGER.exception("stats hook object %r failed in %s; it is left out of this call", target, where)
    for i, one in enumerate(targets):
        if one is target:
            targets[i] = _DEAD


def _tell(targets, name, *args):
    """Call `name` on each of a call's hook objects (the empty default of a
    method nobody overrides is never asked for: see _overrides)."""
    for one in targets:
        try:
            getattr(one, name)(*args)
        except Exception:
            _broken(targets, one, name)


_known = {}


def _overrides(obj, base, names):
    """The names among `names` that obj's class overrides (cached by class)."""
    cls = type(obj)
    found = _known.get((cls, base))
    if found is None:
        found = _known[cls, base] = frozenset(n for n in names if getattr(cls, n, None) is not getattr(base, n))
    return found


def _begin(hook_list, server, info):
    """The per-call objects of the hooks that want this call, and whether
    one of them wants message events."""
    wanted = []
    messages = False
    for hook in hook_list:
        try:
            per_call = hook.server_call(info) if server else hook.client_call(info)
        except Exception:
            _LOGGER.exception("stats hook %r failed at the start of a call; it is left out of it", hook)
            continue
        if per_call is not None:
            wanted.append(per_call)
            if getattr(per_call, "messages", hook.messages):     # (the call's own choice first)
                messages = True
    return wanted, messages


def _wants_attempts(calls):
    for one in calls:
        if "attempt" in _overrides(one, _stats.ClientCallStats, ("attempt",)):
            return True
    return False


# -- client --------------------------------------------------------------------------------

class AttemptRecord:
    """One attempt of an observed client call."""

    __slots__ = ("stats", "start", "core_call", "peer", "open", "messages", "metadata", "proxy")

    def __init__(self, stats, start, messages):
        self.stats = stats              # AttemptStats of the hooks
        self.start = start
        self.core_call = None
        self.peer = None
        self.open = True
        self.messages = messages        # per-message events wanted
        metadata = ()
        proxy = messages
        for one in stats:
            extra = one.metadata
            if extra:
                metadata += tuple(extra)
            if not proxy and "headers_in" in _overrides(one, _stats.AttemptStats, ("headers_in",)):
                proxy = True
        self.metadata = metadata        # what the attempt adds to the request headers
        self.proxy = proxy              # its core call's events go through an ObservedAttempt

    def headers_in(self, metadata):
        _tell(self.stats, "headers_in", metadata)

    def message_in(self, data, compressed):
        size = len(data)
        _tell(self.stats, "message_in", size, compressed or size)

    def message_out(self, size, wire_size):
        _tell(self.stats, "message_out", size, wire_size)

    def totals(self, now):
        core_call = self.core_call
        if core_call is None:
            return _AttemptTotals(now - self.start, 0, 0, 0, 0, self.peer)
        return _AttemptTotals(now - self.start, core_call.sent_messages, core_call.sent_bytes,
                              core_call.received_messages, core_call.received_bytes, self.peer)

    def end(self, code, details, trailing, now=None):
        if not self.open:
            return
        self.open = False
        if self.stats:
            _tell(self.stats, "end", _status_from_number(code), details, trailing,
                  self.totals(_clock() if now is None else now))


class ObservedAttempt:
    """The core call's user for an attempt whose hooks want its headers or
    messages (a hedged attempt's Hedge does this itself): reports, then
    passes the event on to the call."""

    __slots__ = ("call", "record")

    def __init__(self, call, record):
        self.call = call
        self.record = record

    def _on_initial_metadata(self, metadata):
        self.record.headers_in(metadata)
        self.call._on_initial_metadata(metadata)

    def _on_message(self, data, wire, compressed):
        if self.record.messages:
            self.record.message_in(data, compressed)
        self.call._on_message(data, wire, compressed)

    def _on_write_ready(self):
        self.call._on_write_ready()

    def _on_stream_refused(self):
        self.record = self.call._stats.replayed(self.call._core_call, self.record)

    def _on_end(self, code, details, trailing):
        self.call._on_end(code, details, trailing)


class ClientObserver:
    """The hooks' view of one client call."""

    __slots__ = ("calls", "messages", "start", "records", "current", "transparent", "retries", "hedges",
                 "delay", "waiting_since", "ended", "metadata", "attempts", "call", "fresh", "number", "tally")

    def __init__(self, calls, messages, start, call):
        self.calls = calls              # ClientCallStats of the hooks
        self.messages = messages
        self.start = start
        self.call = call                # (until the end: CallInfo.figures() reads its core call)
        # attempts are recorded (AttemptRecord) when a hook wants them or
        # their messages; else only counted, and the first attempt starts
        # on the call layer's everyday path
        self.attempts = messages or _wants_attempts(calls)
        self.records = []               # every attempt, oldest first
        self.current = None             # the attempt the call's events are about
        self.number = 1                 # attempts so far (counted when not recorded)
        self.fresh = True               # (not recorded) the first attempt has not started or ended
        self.transparent = 0
        self.retries = 0
        self.hedges = 0
        self.delay = 0.0                # seconds between attempts (A96 retry_delay)
        self.waiting_since = None
        self.ended = False
        self.tally = None               # the call's _ClientTally when the channel has tallies too

    @classmethod
    def begin(cls, call, hook_list, request_streaming):
        """The observer of a new call, or None when no hook wants it."""
        start = _clock()
        info = _client_info(call, request_streaming, start)
        wanted, messages = _begin(hook_list, False, info)
        if not wanted:
            return None
        observer = info._live = cls(wanted, messages, start, call)
        observer.metadata = call._metadata
        if observer.attempts:
            observer.open_attempt(call._metadata, False, 0, start)     # the first starts with the call
        return observer

    def core_call(self):
        """The core call of the current attempt (None before one started)."""
        if self.attempts:
            return self.current.core_call
        call = self.call
        return None if call is None else call._core_call

    def _count(self, transparent, previous, hedge):
        if transparent:
            self.transparent += 1
        elif hedge:
            self.hedges += 1
        elif previous:
            self.retries += 1

    def open_attempt(self, metadata, transparent, previous, start=None, hedge=False):
        """A new attempt (its record becomes the current one)."""
        now = _clock() if start is None else start
        if self.waiting_since is not None:
            self.delay += now - self.waiting_since
            self.waiting_since = None
        number = len(self.records)
        if number:
            self._count(transparent, previous, hedge)
        stats = []
        calls = self.calls
        for one in calls:
            try:
                attempt = one.attempt(number, transparent, previous, metadata)
            except Exception:
                _broken(calls, one, "attempt")
                continue
            if attempt is not None:
                stats.append(attempt)
        record = AttemptRecord(stats, now, self.messages)
        self.records.append(record)
        self.current = record
        return record

    def claim(self, conn, metadata, transparent, previous, hedge):
        """The record of the attempt starting on `conn` (the caller sets its
        core call): the first one (open since the call began) or a new one;
        None when attempts are only counted."""
        if not self.attempts:
            if self.fresh:
                self.fresh = False
            else:
                self._count(transparent, previous, hedge)
                self.number += 1
                if self.waiting_since is not None:
                    self.delay += _clock() - self.waiting_since
                    self.waiting_since = None
            return None
        record = self.current
        if not record.open or record.core_call is not None:
            record = self.open_attempt(metadata, transparent, previous, hedge=hedge)
        record.peer = conn.peer
        return record

    def retrying(self, code, details, trailing):
        """The current attempt ended with `code` (or its pick failed) and
        another will follow, after a backoff or at once."""
        now = _clock()
        record = self.current
        if record is not None and record.open:
            record.end(code, details, trailing, now)
        self.waiting_since = now
        self.fresh = False

    def replayed(self, core_call, record=None):
        """The server refused the stream of `record` (the current attempt
        by default) before processing it and the core sent it again on the
        same connection: that attempt ended UNAVAILABLE, and a transparent
        one began on the same core call (which sends again what the
        refused stream carried: the figures of both are the core call's)."""
        if not self.attempts:
            self.transparent += 1
            self.number += 1
            return None
        if record is None:
            record = self.current
        if not record.open:
            return record
        record.end(_REFUSED, "stream refused by the server (REFUSED_STREAM), sent again", ())
        replay = self.open_attempt(self.metadata, True, 0)
        replay.core_call = core_call
        replay.peer = record.peer
        return replay

    def end(self, code, details, trailing):
        """The call ended: attempts still open end with its status, then the
        call's hooks hear of it."""
        if self.ended:
            return
        self.ended = True
        now = _clock()
        call, self.call = self.call, None
        if self.attempts:
            for record in self.records:
                if record.open:
                    record.end(code, details, trailing, now)
            last = self.current
            core_call, peer, attempts = last.core_call, last.peer, len(self.records)
        else:
            core_call, attempts = call._core_call, self.number
            peer = None if core_call is None else call._conn.peer
        if core_call is None:
            totals = _CallTotals(now - self.start, 0, 0, 0, 0, None, attempts, self.retries,
                                 self.transparent, self.hedges, self.delay)
        else:
            totals = _CallTotals(now - self.start, core_call.sent_messages, core_call.sent_bytes,
                                 core_call.received_messages, core_call.received_bytes, peer,
                                 attempts, self.retries, self.transparent, self.hedges, self.delay)
        _tell(self.calls, "end", _status_from_number(code), details, trailing, totals)
        if self.tally is not None:
            self.tally.end(code, details, trailing)


def _client_info(call, request_streaming, start):
    channel = call._channel
    deadline = call._deadline
    method = call._method
    if not isinstance(method, str):
        method = method.decode("utf-8", "replace")
    return _stats.CallInfo(method, method in channel._registered_methods, channel._target_text,
                           channel._authority, None, call._metadata,
                           None if deadline is None else max(0.0, deadline - call._now()), start, False,
                           _KINDS[request_streaming, call._response_streaming])


def client_begin(call, request_streaming):
    """What a new client call of a channel with stats hooks reports to: a
    ClientObserver, a _ClientTally, or None."""
    channel = call._channel
    observer = None
    if channel._stats_calls:
        observer = ClientObserver.begin(call, channel._stats_calls, request_streaming)
    if not channel._stats_tallies:
        return observer
    key = (call._method, request_streaming, call._response_streaming)
    series = channel._tally_series.get(key)
    if series is None:
        info = _client_info(call, request_streaming, _clock())
        series = channel._tally_series[key] = _series(channel._stats_tallies, info)
    tally = _ClientTally(series, call)
    if observer is None:
        return tally
    observer.tally = tally
    return observer


def _series(tallies, info):
    found = []
    for tally in tallies:
        try:
            found.append(tally.series(info))
        except Exception:
            _LOGGER.exception("stats tally %r failed making a series; it is left out", tally)
    return tuple(found)


class _Tally:
    """A call of channels' or servers' tallies: its series and start (what
    a Tally's series are given as `call`)."""

    __slots__ = ("series", "start", "owner")
    # what the call layer asks of an observer, for a call only tallies watch
    messages = attempts = headers = handler = sends = False
    current = None

    def __init__(self, series, owner):
        self.series = series
        self.owner = owner
        self.start = _clock()
        for one in series:
            try:
                one.started(self)
            except Exception:
                _LOGGER.exception("stats series %r failed at a call's start", one)

    def _ended(self, code):
        duration = _clock() - self.start
        status = _STATUS_BY_NUMBER.get(code, _UNKNOWN)
        for one in self.series:
            try:
                one.ended(self, status, duration)
            except Exception:
                _LOGGER.exception("stats series %r failed at a call's end", one)
        self.owner = None


class _ClientTally(_Tally):
    __slots__ = ()

    def figures(self):
        call = self.owner
        core_call = None if call is None else call._core_call
        if core_call is None:
            return (0, 0, 0, 0)
        return core_call.sent_messages, core_call.sent_bytes, core_call.received_messages, core_call.received_bytes

    def claim(self, conn, metadata, transparent, previous, hedge):
        return None

    def retrying(self, code, details, trailing):
        pass

    def replayed(self, core_call, record=None):
        return None

    def end(self, code, details, trailing):
        self._ended(code)


class _ServerTally(_Tally):
    __slots__ = ()

    def figures(self):
        core_call = self.owner
        if core_call is None:
            return (0, 0, 0, 0)
        return core_call.sent_messages, core_call.sent_bytes, core_call.received_messages, core_call.received_bytes

    def end(self, core_call, code, details, trailing, peer):
        if self.owner is not None:
            self._ended(code)


def server_begin(server, conn, call, handler):
    """What a new server call reports to (see client_begin)."""
    observer = None
    if server._stats_calls:
        observer = ServerObserver.begin(server, conn, call, handler)
    if not server._stats_tallies:
        return observer
    series = server._tally_series.get(call.method) if handler is not None else None
    if series is None:
        kind = None if handler is None else _KINDS[handler.request_streaming, handler.response_streaming]
        method = call.method
        info = _stats.CallInfo(method, method in server._registered_names, None, None, conn.peer, None, None,
                               _clock(), True, kind, call)
        series = _series(server._stats_tallies, info)
        if handler is not None:
            server._tally_series[method] = series
    tally = _ServerTally(series, call)
    if observer is None:
        return tally
    observer.tally = tally
    return observer


# -- server --------------------------------------------------------------------------------

class ServerObserver:
    """The hooks' view of one server call."""

    __slots__ = ("calls", "messages", "start", "ended", "handler", "headers", "tally", "sends")

    def __init__(self, calls, messages, start):
        self.calls = calls
        self.messages = messages
        self.start = start
        self.tally = None               # the call's _ServerTally when the server has tallies too
        self.ended = False
        handler = headers = False
        for one in calls:
            names = _overrides(one, _stats.ServerCallStats, ("handler_enter", "handler_exit", "headers_out"))
            if names:
                handler = handler or "handler_enter" in names or "handler_exit" in names
                headers = headers or "headers_out" in names
        self.handler = handler          # handler_enter / handler_exit wanted
        self.headers = headers          # headers_out wanted
        self.sends = headers or messages    # _send tells the hooks of what it sends

    @classmethod
    def begin(cls, server, conn, call, handler):
        """The observer of a new server call, or None when no hook wants it
        (`handler`: the method's handler when it has one)."""
        start = _clock()
        method = call.method
        kind = None if handler is None else _KINDS[handler.request_streaming, handler.response_streaming]
        deadline = call.deadline
        info = _stats.CallInfo(method, method in server._registered_names, None, None, conn.peer, None,
                               None if deadline == _INF else max(0.0, deadline - _monotonic()), start, True, kind,
                               call)
        wanted, messages = _begin(server._stats_calls, True, info)
        if not wanted:
            return None
        return cls(wanted, messages, start)

    def handler_enter(self):
        tokens = []
        calls = self.calls
        for one in calls:
            try:
                tokens.append((one, one.handler_enter()))
            except Exception:
                _broken(calls, one, "handler_enter")
        return tokens

    def handler_exit(self, tokens):
        for one, token in reversed(tokens):
            try:
                one.handler_exit(token)
            except Exception:
                _broken(self.calls, one, "handler_exit")

    def headers_out(self, metadata):
        _tell(self.calls, "headers_out", metadata)

    def message_in(self, data, compressed):
        size = len(data)
        _tell(self.calls, "message_in", size, compressed or size)

    def message_out(self, size, wire_size):
        _tell(self.calls, "message_out", size, wire_size)

    def end(self, core_call, code, details, trailing, peer):
        if self.ended:
            return
        self.ended = True
        totals = _CallTotals(_clock() - self.start, core_call.sent_messages, core_call.sent_bytes,
                             core_call.received_messages, core_call.received_bytes, peer)
        _tell(self.calls, "end", _status_from_number(code), details, trailing, totals)
        if self.tally is not None:
            self.tally.end(core_call, code, details, trailing, peer)
