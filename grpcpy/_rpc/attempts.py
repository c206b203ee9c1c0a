"""A client call's attempts: retries, hedging and transparent retry (gRFC A6).

The application sees one call; underneath, the call is carried by one or
more attempts, each a core call on one connection. Everything here is the
call layer's (sans-IO, both facades): a facade only runs the timers it is
given (`_call_at`) and finds a connection for the next attempt
(`_attempt_timer`, which ends in `_start_on(conn)` or `_pick_failed`).

The rules:

- Commit. A call commits to an attempt when that attempt's response headers
  arrive (a trailers-only response is not headers), or when the requests it
  had to keep for a replay outgrow the buffer (`grpc.per_rpc_retry_buffer_size`,
  256 KiB as grpcio; `grpc.retry_buffer_size`, every call of the channel
  together), or when it ends locally (cancel, deadline, a failure of our
  own). After the commit nothing is retried; the committed attempt's events
  are the call's.
- Transparent retry (on unless `grpc.enable_retries` is 0): an attempt the
  server cannot have processed (the core's `unprocessed`: never sent because
  the connection closed or went away first, a stream above a GOAWAY's
  last-stream-id, REFUSED_STREAM the core could not replay itself) is sent
  again at once, on whatever connection the channel picks, once per call;
  it does not count as an attempt of the retry policy.
- retryPolicy: an attempt that ends with a code in retryableStatusCodes,
  before the commit, is retried while fewer than maxAttempts (capped at 5)
  were made, the channel's retryThrottling bucket allows it and the server
  did not push back with a negative or malformed `grpc-retry-pushback-ms`.
  The next attempt starts after the server's pushback when it gave one
  (and the backoff starts again from initialBackoff), else after a random
  delay in [0, backoff), backoff growing by backoffMultiplier up to
  maxBackoff. Each retry carries `grpc-previous-rpc-attempts`.
- hedgingPolicy: the first attempt starts at once, another every
  hedgingDelay while fewer than maxAttempts were sent; the first attempt to
  receive response headers wins and the others are cancelled. An attempt
  that ends before any headers with a code in nonFatalStatusCodes lets the
  others go on (and sends the next one at once if none is left running,
  or after the server's pushback); any other status ends the call with it.
- A pick that fails (the channel is in TRANSIENT_FAILURE and the call is not
  wait_for_ready) ends an attempt UNAVAILABLE, which the policy may retry.
- The call's deadline spans every attempt: each attempt gets what is left,
  and a backoff that would outlast it ends the call DEADLINE_EXCEEDED when
  the deadline comes. Cancelling the call cancels every attempt and any
  pending one.
- retryThrottling (one token bucket per channel): a call with a policy
  takes a token per failed attempt (a retryable or non-fatal code) and
  gives back tokenRatio per OK call; retries and hedges stop while the
  bucket is at half or below.
"""
import random as _random

from grpcpy import _types
from grpcpy._channel.service_config import HedgingPolicy, RetryPolicy
from grpcpy._rpc.observe import ObservedAttempt

StatusCode = _types.StatusCode
_UNAVAILABLE = _types.status_number(StatusCode.UNAVAILABLE)
_DEADLINE_EXCEEDED = _types.status_number(StatusCode.DEADLINE_EXCEEDED)
_PUSHBACK = "grpc-retry-pushback-ms"
_PREVIOUS = "grpc-previous-rpc-attempts"
_HEDGE_LOST = "hedged attempt lost to another"
# the policy of a call made before its channel's first resolution, which
# may bring the service config: the call looks it up when it starts
UNSETTLED = object()


def pushback_seconds(trailing):
    """The server's grpc-retry-pushback-ms in seconds: None when absent,
    -1.0 when negative or malformed (stop retrying)."""
    for key, value in trailing or ():
        if key == _PUSHBACK:
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if value.isdigit() and value.isascii():
                return int(value) / 1000.0
            return -1.0
    return None


class Hedge:
    """The core's user for one hedged attempt: its events go to the call,
    which decides which attempt's events the application sees."""

    __slots__ = ("call", "conn", "core_call", "live", "lb_done", "stats")

    def __init__(self, call):
        self.call = call
        self.conn = None
        self.core_call = None
        self.live = True
        self.lb_done = None     # the balancer's report for this attempt
        self.stats = None       # its grpcpy._rpc.observe.AttemptRecord, when observed

    def _on_initial_metadata(self, metadata):
        if self.stats is not None:
            self.stats.headers_in(metadata)
        self.call._hedge_headers(self, metadata)

    def _on_message(self, data, wire, compressed):
        if self.stats is not None and self.stats.messages:
            self.stats.message_in(data, compressed)
        self.call._on_message(data, wire, compressed)

    def _on_write_ready(self):
        self.call._on_write_ready()

    def _on_stream_refused(self):
        if self.stats is not None:
            self.stats = self.call._stats.replayed(self.core_call, self.stats)

    def _on_end(self, code, details, trailing):
        done = self.lb_done
        if done is not None:
            self.lb_done = None
            done(code, trailing)
        if self.stats is not None:
            self.stats.end(code, details, trailing)
        self.call._hedge_ended(self, code, details, trailing)


class CallAttempts:
    """The retry half of grpcpy._rpc.client.ClientCall (see the module
    docstring). The facade provides `_call_at(when, fn)` (run fn at that
    time of its clock; returns something with cancel()) and
    `_attempt_timer()` (called by that timer: find a connection and start
    the next attempt with `_start_on`, or call `_pick_failed`)."""

    # state of a call that never retries lives on the class
    _policy = None             # RetryPolicy or HedgingPolicy of the method
    _committed = False         # no more attempts (see the module docstring)
    _kept = None               # request messages kept for a replay (streaming requests)
    _kept_bytes = 0
    _half_closed = False       # the application half-closed (replayed too)
    _tries = 1                 # attempts of the policy made or scheduled
    _backoff = None            # the next retry's backoff ceiling
    _transparent_used = False
    _transparent_next = False  # the next attempt is the transparent retry (grpcpy.stats)
    _timer = None              # a pending attempt's timer
    _hedges = None             # the live Hedge objects of a hedging call
    _winner = None
    _last_failure = None       # (code, details, trailing) of the latest failed attempt
    _max_send = None           # the method config's maxRequestMessageBytes

    # -- facade hooks ------------------------------------------------------------------

    def _call_at(self, when, fn):
        raise NotImplementedError

    def _attempt_timer(self):
        raise NotImplementedError

    # -- the method config --------------------------------------------------------------

    def _apply_method_config(self, config, timeout, wait_for_ready):
        """Fold the service config's method entry into the call: the smaller
        timeout, waitForReady when the call did not say, the smaller size
        limits (the config's or the channel's) and the retry or hedging
        policy. Returns the timeout to use."""
        if config.timeout is not None and (timeout is None or config.timeout < timeout):
            timeout = config.timeout
        if wait_for_ready is None and config.wait_for_ready is not None:
            self._wait_for_ready = config.wait_for_ready
        if config.max_request_bytes is not None:
            # (the channel's own limit is the core's to apply)
            self._max_send = config.max_request_bytes
        if config.max_response_bytes is not None:
            limit = self._channel._options.max_receive_message_length
            self._max_receive = config.max_response_bytes if limit < 0 else min(limit, config.max_response_bytes)
        policy = config.retry or config.hedging
        if policy is not None and self._channel._retries:
            self._policy = policy
            if type(policy) is HedgingPolicy:
                self._hedges = []
        return timeout

    def _too_large(self, payload):
        """A request (streamed, or the unary one before it is sent) over the
        method config's maxRequestMessageBytes fails the call
        RESOURCE_EXHAUSTED (grpcio's words). True when it did."""
        limit = self._max_send
        if limit is None or len(payload) <= limit:
            return False
        self._cancel(StatusCode.RESOURCE_EXHAUSTED,
                     "CLIENT: Sent message larger than max (%d vs. %d)" % (len(payload), limit),
                     by_application=False)
        return True

    # -- keeping requests for a replay ----------------------------------------------------

    def _keep(self, payload):
        """Keep a request message sent before the commit; commit when the
        buffer limits are passed."""
        channel = self._channel
        size = len(payload)
        kept = self._kept
        if kept is None:
            kept = self._kept = []
        kept.append(payload)
        self._kept_bytes += size
        channel._retry_buffered += size
        if self._kept_bytes > channel._retry_buffer_size or channel._retry_buffered > channel._retry_buffer_total:
            dropped = self._commit()
            if dropped and not any(h.live for h in self._hedges or ()) and self._last_failure is not None:
                # between attempts: the last failure is the call's
                self._end_call(*self._last_failure)

    def _release_kept(self):
        self._channel._retry_buffered -= self._kept_bytes
        self._kept = None
        self._kept_bytes = 0

    def _commit(self):
        """No more attempts: the live one (if any) carries the call. True
        when an attempt that was waiting to start is dropped."""
        self._committed = True
        if self._kept is not None:
            self._release_kept()
        return self._drop_timer()

    def _drop_timer(self):
        """Cancel a pending attempt: True if there was one."""
        timer = self._timer
        if timer is None:
            return False
        self._timer = None
        timer.cancel()
        return True

    # -- the end of an attempt ------------------------------------------------------------

    def _retry_or_not(self, code, details, trailing):
        """The current attempt ended with `code` (not OK) before the call
        committed: True when another attempt is on its way."""
        channel = self._channel
        if not channel._retries:
            return False
        now = self._now()
        deadline = self._deadline
        if deadline is not None and now >= deadline:
            return False
        core_call = self._core_call
        if core_call is not None and core_call.unprocessed and not self._transparent_used:
            self._transparent_used = self._transparent_next = True
            self._last_failure = (code, details, trailing)
            self._schedule(now)
            return True
        policy = self._policy
        if type(policy) is not RetryPolicy or code not in policy.retryable_codes:
            return False
        if code == _DEADLINE_EXCEEDED and core_call is not None and core_call.deadline <= now:
            return False        # this attempt's (the call's) own deadline
        throttle = channel._retry_throttle
        if throttle is not None:
            throttle.record_failure()
        pushback = pushback_seconds(trailing)
        if pushback is not None and pushback < 0:
            return False
        if self._tries >= policy.max_attempts:
            return False
        if throttle is not None and not throttle.allows_retry():
            return False
        backoff = self._backoff
        if backoff is None:
            backoff = policy.initial_backoff
        if pushback is not None:
            delay = pushback
            self._backoff = policy.initial_backoff
        else:
            delay = _random.uniform(0.0, backoff)
            self._backoff = min(backoff * policy.backoff_multiplier, policy.max_backoff)
        self._tries += 1
        self._last_failure = (code, details, trailing)
        self._schedule(now + delay)
        return True

    def _schedule(self, when):
        deadline = self._deadline
        if deadline is not None and when > deadline:
            when = deadline
        self._timer = self._call_at(when, self._attempt_timer)

    def _attempt_due(self):
        """The pending attempt's time has come: True when the facade should
        find it a connection (the deadline may have passed meanwhile)."""
        self._timer = None
        if self._ended:
            return False
        deadline = self._deadline
        if deadline is not None and self._now() >= deadline:
            self._finish_local(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
            return False
        return True

    def _pick_failed(self, code, details):
        """The channel had no connection for an attempt: an UNAVAILABLE pick
        (TRANSIENT_FAILURE, not wait_for_ready) is a failed attempt the
        policy may retry; anything else ends the call."""
        if self._ended:
            return
        number = _types.status_number(code)
        hedges = self._hedges
        if number == _UNAVAILABLE and not self._committed:
            if hedges is not None:
                if self._hedge_failed(number, details, ()):
                    return
            elif self._policy is not None and self._retry_or_not(number, details, ()):
                if self._stats is not None:
                    self._stats.retrying(number, details, ())
                return
        self._finish_local(code, details)

    def _record_outcome(self, code):
        """A call with a policy ended: the channel's throttle hears of it."""
        throttle = self._channel._retry_throttle
        if throttle is not None and code == 0:
            throttle.record_success()

    # -- starting an attempt after the first -----------------------------------------------

    def _settle(self):
        """A call made before the channel's first resolution starts: the
        method config the resolver brought applies (its timeout counted
        from now)."""
        self._policy = None
        config = self._channel._plane.service_config.method_config(self._method)
        if config is None:
            return
        remaining = self._time_remaining()
        timeout = self._apply_method_config(config, remaining, self._wait_for_ready)
        if timeout is not None and timeout != remaining:
            self._deadline = self._now() + timeout
        if self._request is not None:
            self._too_large(self._request)

    def _start_again(self, conn):
        """Start an attempt that is not the call's plain first one: a retry,
        a transparent retry or a hedge (the facade holds the lock)."""
        if self._policy is UNSETTLED:
            self._settle()
            if self._policy is None and self._conn is None and self._stats is None:
                return self._start_on(conn)
        hedges = self._hedges
        previous = self._tries - 1 if hedges is None else len(hedges)
        metadata = self._metadata
        if previous:
            metadata = tuple(metadata or ()) + ((_PREVIOUS, str(previous)),)
        if self._conn is not None and hedges is None:
            self._attempt_log += ((self._conn, self._core_call),)
        stats = self._stats
        record = None
        if stats is not None:
            record = stats.claim(conn, self._metadata, self._transparent_next, previous,
                                 hedges is not None and bool(hedges))
            self._transparent_next = False
            if record is not None and record.metadata:
                metadata = tuple(metadata or ()) + record.metadata
        if hedges is not None:
            user = Hedge(self)
            user.lb_done, self._lb_done = self._lb_done, None
            user.stats = record
        elif record is not None and record.proxy:
            user = ObservedAttempt(self, record)
        else:
            user = self
        core_call = self._open(conn, metadata, user)
        if record is not None:
            record.core_call = core_call
        if hedges is not None:
            user.conn = conn
            user.core_call = core_call
            hedges.append(user)
            self._attempt_log += ((conn, core_call),)
            if self._conn is None or not self._committed:
                self._conn = conn
                self._core_call = core_call
        else:
            self._conn = conn
            self._core_call = core_call
        request = self._request
        core = conn.core
        if request is not None:
            core.send_unary(core_call, request)
            if record is not None and record.messages:
                record.message_out(len(request), core_call.sent_bytes)
        else:
            for payload in self._kept or ():
                before = core_call.sent_bytes
                core.send_message(core_call, payload)
                if record is not None and record.messages:
                    record.message_out(len(payload), core_call.sent_bytes - before)
            if self._half_closed:
                core.close_send(core_call)
        if hedges is not None and self._tries < self._policy.max_attempts and self._timer is None:
            self._schedule_hedge(self._now() + self._policy.hedging_delay)
        conn.after_action()

    # -- hedging ---------------------------------------------------------------------------

    def _schedule_hedge(self, when):
        """Send another hedged attempt at `when` (it counts from now: an
        attempt whose pick fails is one of maxAttempts too)."""
        throttle = self._channel._retry_throttle
        if throttle is not None and not throttle.allows_retry():
            return False
        self._tries += 1
        self._schedule(when)
        return True

    def _hedge_headers(self, hedge, metadata):
        if self._winner is None:
            self._win(hedge)
        if hedge is self._winner:
            self._on_initial_metadata(metadata)

    def _win(self, hedge):
        """Commit to this hedged attempt and cancel the others."""
        self._winner = hedge
        self._conn = hedge.conn
        self._core_call = hedge.core_call
        self._commit()
        for other in self._hedges:
            if other is not hedge and other.live:
                other.live = False
                other.conn.core.cancel_call(other.core_call, _HEDGE_LOST)
                other.conn.after_action()

    def _hedge_ended(self, hedge, code, details, trailing):
        hedge.live = False
        hedge.core_call.user = None
        if self._ended:
            return
        if self._winner is not None:
            if hedge is self._winner:
                self._end_call(code, details, trailing)
            return
        if code and self._hedge_failed(code, details, trailing):
            return
        self._win(hedge)
        self._end_call(code, details, trailing)

    def _hedge_failed(self, code, details, trailing):
        """A hedged attempt ended before any headers with `code`: True when
        the call goes on (other attempts, or one more)."""
        policy = self._policy
        if self._committed or code not in policy.non_fatal_codes:
            return False
        throttle = self._channel._retry_throttle
        if throttle is not None:
            throttle.record_failure()
        self._last_failure = (code, details, trailing)
        pushback = pushback_seconds(trailing)
        if pushback is not None and pushback < 0:
            self._drop_timer()          # no more hedges
            return any(h.live for h in self._hedges)
        running = any(h.live for h in self._hedges)
        if pushback is None and running:
            return True         # the others go on; the next hedge keeps its time
        if self._drop_timer():
            # the next hedge is sent now, or after the server's pushback
            self._tries -= 1
        if self._tries >= policy.max_attempts:
            return running
        return self._schedule_hedge(self._now() + (pushback or 0.0)) or running
