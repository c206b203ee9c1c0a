"""weighted_round_robin (gRFC A58): round_robin whose picks follow weights
that the backends' load reports (ORCA, gRFC A51) give them.

An endpoint's weight is qps / (utilization + eps / qps * penalty), with the
utilization its application_utilization, else its cpu_utilization; a report
without qps or utilization says nothing.  Reports come per call (the
``endpoint-load-metrics-bin`` trailer, through the pick's ``done``) or, with
enableOobLoadReport, out of band on a stream of
OpenRcaService/StreamCoreMetrics per READY subchannel (opened again after a
backoff if the server ends it while connected, unless UNIMPLEMENTED).  A
weight counts only once the endpoint has reported for blackoutPeriod since
it (re)connected or its weight expired, and until weightExpirationPeriod
passes without a report.

Picks: an earliest-deadline-first schedule over the READY subchannels,
rebuilt every weightUpdatePeriod and whenever the READY set changes.  An
endpoint without a usable weight gets the mean of the others; with fewer than
two weights, or all of them equal, picks rotate as round_robin's do.
Connectivity and sticky TRANSIENT_FAILURE are round_robin's.

Weights belong to addresses, not subchannels, so they survive a resolver
update that keeps the address (a new weight attribute included).
"""

import heapq
import math
import random as _random_module

from grpcpy._channel.lb.base import IDLE, READY, TRANSIENT_FAILURE, LoadBalancingPolicy, register_policy
from grpcpy._channel.service_config import _duration, _Errors, _field, _number

__all__ = ["WeightedRoundRobin", "WrrConfig", "EndpointWeight", "EdfScheduler", "report_weight",
           "build_scheduler"]

_INF = math.inf
OOB_METHOD = "/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics"
TRAILER_KEY = "endpoint-load-metrics-bin"
MIN_WEIGHT_UPDATE_PERIOD = 0.1
# a report stream the server ended (the connection still up) is opened again
# after a backoff, reset by a report; never on UNIMPLEMENTED (no ORCA service)
OOB_RETRY_INITIAL = 1.0
OOB_RETRY_MAX = 120.0
_UNIMPLEMENTED = 12


class WrrConfig:
    """The policy's loadBalancingConfig entry (times in seconds)."""
    __slots__ = ("enable_oob", "oob_period", "blackout", "expiration", "update_period", "penalty")

    def __init__(self, enable_oob=False, oob_period=10.0, blackout=10.0, expiration=180.0,
                 update_period=1.0, penalty=1.0):
        self.enable_oob = enable_oob
        self.oob_period = oob_period
        self.blackout = blackout
        self.expiration = expiration
        self.update_period = max(update_period, MIN_WEIGHT_UPDATE_PERIOD)
        self.penalty = penalty

    @classmethod
    def parse(cls, raw):
        """From the JSON object; ValueError naming every bad field."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValueError("weighted_round_robin: the config is not an object")
        errors = _Errors()
        path = "weighted_round_robin"
        enable, _ = _field(raw, "enableOobLoadReport", path, errors, "boolean")
        durations = {}
        for key in ("oobReportingPeriod", "blackoutPeriod", "weightExpirationPeriod", "weightUpdatePeriod"):
            durations[key] = _duration(raw, key, path, errors)
        penalty = _number(raw, "errorUtilizationPenalty", path, errors)
        if penalty is not None and penalty < 0:
            errors.add(path + ".errorUtilizationPenalty", "must be non-negative")
        if errors.found:
            raise ValueError("; ".join(errors.found))
        config = cls()
        if enable is not None:
            config.enable_oob = enable
        for key, attr in (("oobReportingPeriod", "oob_period"), ("blackoutPeriod", "blackout"),
                          ("weightExpirationPeriod", "expiration"), ("weightUpdatePeriod", "update_period")):
            if durations[key] is not None:
                setattr(config, attr, durations[key])
        config.update_period = max(config.update_period, MIN_WEIGHT_UPDATE_PERIOD)
        if penalty is not None:
            config.penalty = float(penalty)
        return config

    def __eq__(self, other):
        return isinstance(other, WrrConfig) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self):
        return "WrrConfig(%s)" % ", ".join("%s=%r" % (n, getattr(self, n)) for n in self.__slots__)


def report_weight(report, penalty):
    """The weight an OrcaLoadReport gives (0: it says nothing)."""
    qps = report.rps_fractional
    utilization = report.application_utilization or report.cpu_utilization
    if utilization <= 0 or qps <= 0:
        return 0.0
    return qps / (utilization + report.eps / qps * penalty)


class EndpointWeight:
    """One address's weight, with the times that blackout and expiration
    read: ``non_empty_since`` (the first useful report since the endpoint
    became READY or its weight expired) and ``last_updated``."""
    __slots__ = ("weight", "non_empty_since", "last_updated", "_policy")

    def __init__(self, policy):
        self.weight = 0.0
        self.non_empty_since = _INF
        self.last_updated = -_INF
        self._policy = policy

    def update(self, now, report):
        weight = report_weight(report, self._policy.config.penalty)
        if weight <= 0:
            return
        if self.non_empty_since == _INF:
            self.non_empty_since = now
        self.last_updated = now
        self.weight = weight

    def reset(self):
        """The endpoint (re)connected: its reports count after a new blackout."""
        self.non_empty_since = _INF

    def get(self, now, config):
        """The weight to use now: 0 while blacked out or expired."""
        if now - self.last_updated >= config.expiration:
            self.non_empty_since = _INF
            return 0.0
        if config.blackout > 0 and now - self.non_empty_since < config.blackout:
            return 0.0
        return self.weight

    def call_done(self, now, code, trailing):
        """A call's end (the pick's ``done``): its trailer's report, if any."""
        if not trailing:
            return
        for key, value in trailing:
            if key == TRAILER_KEY:
                report = _parse(value)
                if report is not None:
                    self.update(now, report)
                return


def _parse(data):
    from grpcpy._protos.orca_load_report_pb import OrcaLoadReport
    if isinstance(data, str):
        return None
    try:
        return OrcaLoadReport.FromString(bytes(data))
    except Exception:   # the backend's bytes: a bad report is no report
        return None


class EdfScheduler:
    """Earliest deadline first: index i comes up every 1 / weights[i]; the
    first deadlines are random within one period, so clients that build
    their schedules at the same time do not all pick the same backend
    first.  Equal deadlines go in the order they were set."""
    __slots__ = ("_heap", "_periods", "_seq")

    def __init__(self, weights, random=_random_module.random):
        self._periods = [1.0 / w for w in weights]
        self._heap = [(random() * p, i, i) for i, p in enumerate(self._periods)]
        heapq.heapify(self._heap)
        self._seq = len(weights)

    def pick(self):
        deadline, _, index = self._heap[0]
        self._seq += 1
        heapq.heapreplace(self._heap, (deadline + self._periods[index], self._seq, index))
        return index


def build_scheduler(weights, random=_random_module.random):
    """An EdfScheduler over ``weights`` (0: unknown, gets the mean of the
    known ones), or None when picks should simply rotate: fewer than two
    known weights, or all equal."""
    known = [w for w in weights if w > 0]
    if len(known) < 2:
        return None
    mean = sum(known) / len(known)
    filled = [w if w > 0 else mean for w in weights]
    if min(filled) == max(filled):
        return None
    return EdfScheduler(filled, random)


@register_policy
class WeightedRoundRobin(LoadBalancingPolicy):
    """weighted_round_robin (see the module docstring)."""
    name = "weighted_round_robin"

    def __init__(self, helper, config=None):
        super().__init__(helper, config if config is not None else WrrConfig())
        self._random = getattr(helper, "random", _random_module.random)
        self._weights = {}          # Address -> EndpointWeight
        self._ready = []            # the READY subchannels the schedule covers, in list order
        self._ids = []              # ... their sub_ids
        self._done = []             # ... their EndpointWeight.call_done
        self._scheduler = None      # EdfScheduler, or None: rotate
        self.weighted = 0           # how many READY endpoints the schedule has a weight for
        self._next = 0
        self._update_at = _INF
        self._streams = {}          # id(sub) -> the OOB stream's handle
        self._reopen = {}           # id(sub) -> (when, sub): a stream to open again
        self._retries = {}          # id(sub) -> streams ended since its last report

    @classmethod
    def parse_config(cls, raw):
        return WrrConfig.parse(raw)

    # ----- updates

    def update_config(self, now, config):
        old, self.config = self.config, config
        if (old.enable_oob, old.oob_period) != (config.enable_oob, config.oob_period):
            # the streams follow the new setting (a new period needs a new stream)
            self._close_streams()
            self._open_streams()
        self._rebuild(now)

    def update_addresses(self, now, addresses):
        addresses = list(addresses)
        if not self._same_addresses(addresses):
            for sub in self.subchannels:
                if sub.address not in addresses:
                    self._close_stream(sub)
            self._replace_subchannels(addresses)
            self._weights = {a: self._weights.get(a) or EndpointWeight(self) for a in addresses}
            self._connect(now)
        self._rebuild(now)
        self._report()

    def subchannel_state_changed(self, now, sub):
        if sub not in self.subchannels:
            return
        if sub.state == READY:
            self._reset_failures()
            weight = self._weights.get(sub.address)
            if weight is not None:
                weight.reset()
            self._open_stream(sub)
        else:
            self._close_stream(sub)
            if sub.state == TRANSIENT_FAILURE:
                self._note_failure(now, sub)
            elif sub.state == IDLE:
                self.helper.request_reresolution(now)
                self._connect(now)
        self._rebuild(now)
        self._report()

    _connect = LoadBalancingPolicy._connect_all

    def is_ready(self):
        return any(s.state == READY for s in self.subchannels)

    def enter_idle(self):
        self._close_streams()
        super().enter_idle()
        self._rebuild(None)

    def shutdown(self):
        self._close_streams()
        self._ready, self._ids, self._done = [], [], []
        self._update_at = _INF

    def take_over(self, now, subchannels, active):
        self._weights = {sub.address: EndpointWeight(self) for sub in subchannels}
        super().take_over(now, subchannels, active)
        self._rebuild(now)
        self._report()

    # ----- picks

    def pick(self, info=None):
        ids = self._ids
        if not ids:
            return None
        scheduler = self._scheduler
        if scheduler is None:
            index = self._next % len(ids)
            self._next = index + 1
        else:
            index = scheduler.pick()
        if self.config.enable_oob:
            return ids[index]
        return ids[index], self._done[index]

    def next_timer(self):
        if self._reopen:
            return min(self._update_at, min(when for when, _ in self._reopen.values()))
        return self._update_at

    def timer(self, now):
        if self._reopen:
            for key, (when, sub) in list(self._reopen.items()):
                if when <= now:
                    del self._reopen[key]
                    if sub.state == READY and sub in self.subchannels:
                        self._open_stream(sub)
        if now >= self._update_at:
            self._rebuild(now)

    def _rebuild(self, now):
        """A new schedule over the READY subchannels and their weights now;
        the next one weightUpdatePeriod later (while there is a choice)."""
        ready = [sub for sub in self.subchannels if sub.state == READY]
        self._ready = ready
        self._ids = [sub.sub_id for sub in ready]
        weights = [self._weights.get(sub.address) or EndpointWeight(self) for sub in ready]
        self._done = [w.call_done for w in weights]
        if len(ready) < 2 or now is None:
            self._scheduler = None
            self.weighted = 0
            self._update_at = _INF
            return
        config = self.config
        values = [w.get(now, config) for w in weights]
        self.weighted = sum(1 for v in values if v > 0)
        self._scheduler = build_scheduler(values, self._random)
        self._update_at = now + config.update_period

    # ----- out-of-band reports

    def _open_streams(self):
        for sub in self.subchannels:
            if sub.state == READY:
                self._open_stream(sub)

    def _open_stream(self, sub):
        if not self.config.enable_oob or id(sub) in self._streams:
            return
        from grpcpy._protos.orca_service_pb import OrcaLoadReportRequest
        request = OrcaLoadReportRequest()
        request.report_interval.FromNanoseconds(int(self.config.oob_period * 1e9))
        weight = self._weights.get(sub.address)
        key = id(sub)
        handle = []

        def on_message(now, data):
            report = _parse(data)
            if report is not None:
                self._retries.pop(key, None)
                if weight is not None:
                    weight.update(now, report)

        def on_end(now, code, details):
            # the connection went (a READY subchannel gets a new stream), or
            # the server ended the stream: again after a backoff
            if not handle or self._streams.get(key) is not handle[0]:
                return
            del self._streams[key]
            if code == _UNIMPLEMENTED or sub.state != READY or not self.config.enable_oob:
                return
            failures = self._retries.get(key, 0)
            self._retries[key] = failures + 1
            delay = min(OOB_RETRY_INITIAL * 1.6 ** failures, OOB_RETRY_MAX) * (0.8 + 0.4 * self._random())
            self._reopen[key] = (now + delay, sub)

        handle.append(self.helper.open_stream(sub, OOB_METHOD, request.SerializeToString(), on_message, on_end))
        self._streams[key] = handle[0]

    def _close_stream(self, sub):
        key = id(sub)
        self._reopen.pop(key, None)
        self._retries.pop(key, None)
        handle = self._streams.pop(key, None)
        if handle is not None:
            handle.cancel()

    def _close_streams(self):
        streams, self._streams = self._streams, {}
        self._reopen.clear()
        self._retries.clear()
        for handle in streams.values():
            handle.cancel()
