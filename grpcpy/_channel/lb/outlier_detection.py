"""outlier_detection (gRFC A50): eject backends whose calls fail too often.

The policy wraps a child policy (``childPolicy``, any registered one) and
watches the outcome of every call the child's picks start.  Every
``interval`` it looks at the last interval's counts per address and ejects
the outliers: the child then sees the ejected address's subchannel in
TRANSIENT_FAILURE and picks elsewhere, until the ejection time ends and the
subchannel's real state shows through again.  Two algorithms, each on when
its config object is present:

- success rate: an address whose success rate lies more than
  ``stdevFactor / 1000`` standard deviations below the mean of the addresses
  with enough calls;
- failure percentage: an address whose failure percentage is above
  ``threshold``.

Each ejection multiplies the next one's length (``baseEjectionTime`` times
the number of recent ejections, at most ``max(baseEjectionTime,
maxEjectionTime)``); every interval without an ejection takes one off the
multiplier.  At most ``maxEjectionPercent`` of the addresses are ejected
(A50 checks before each ejection, so one is always allowed), and each
ejection happens with probability ``enforcementPercentage`` (drawn from the
plane's randomness, so tests can fix it).

A call counts as a success when it ends OK and as a failure for any other
status, as grpc-go and grpc-core count; it is counted for the address of
the subchannel it was picked for, whatever happened to that address since.

:class:`Ejector` is the bookkeeping and the algorithms, with time passed
in; :class:`OutlierDetection` connects it to a child policy.
"""

import math
import random as _random_module

from grpcpy._channel.lb.base import (READY, TRANSIENT_FAILURE, POLICIES, LoadBalancingPolicy, choose_policy,
                                     register_policy)

__all__ = ["OutlierDetection", "OutlierDetectionConfig", "SuccessRateEjection", "FailurePercentageEjection",
           "Ejector", "parse_config"]

_INF = math.inf
_MIN_INTERVAL = 0.01    # a zero interval (valid) sweeps this often rather than without pause


class _Value:
    """Equal when every field is: the plane tells the policy of a config
    only when it differs from the one in force."""
    __slots__ = ()

    def __eq__(self, other):
        return type(other) is type(self) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None


class SuccessRateEjection(_Value):
    __slots__ = ("stdev_factor", "enforcement_percentage", "minimum_hosts", "request_volume")

    def __init__(self, stdev_factor=1900, enforcement_percentage=100, minimum_hosts=5, request_volume=100):
        self.stdev_factor = stdev_factor
        self.enforcement_percentage = enforcement_percentage
        self.minimum_hosts = minimum_hosts
        self.request_volume = request_volume


class FailurePercentageEjection(_Value):
    __slots__ = ("threshold", "enforcement_percentage", "minimum_hosts", "request_volume")

    def __init__(self, threshold=85, enforcement_percentage=100, minimum_hosts=5, request_volume=50):
        self.threshold = threshold
        self.enforcement_percentage = enforcement_percentage
        self.minimum_hosts = minimum_hosts
        self.request_volume = request_volume


class OutlierDetectionConfig(_Value):
    """The parsed config; durations in seconds.  ``child`` is the child
    policy's class and ``child_config`` what its ``parse_config`` returned."""

    __slots__ = ("interval", "base_ejection_time", "max_ejection_time", "max_ejection_percent",
                 "success_rate", "failure_percentage", "child", "child_config")

    def __init__(self, interval=10.0, base_ejection_time=30.0, max_ejection_time=300.0, max_ejection_percent=10,
                 success_rate=None, failure_percentage=None, child=None, child_config=None):
        self.interval = interval
        self.base_ejection_time = base_ejection_time
        self.max_ejection_time = max_ejection_time
        self.max_ejection_percent = max_ejection_percent
        self.success_rate = success_rate
        self.failure_percentage = failure_percentage
        self.child = child
        self.child_config = child_config

    @property
    def counting(self):
        """Whether any algorithm runs (without one, calls are not counted)."""
        return self.success_rate is not None or self.failure_percentage is not None


# ---------------------------------------------------------------- config parsing

def parse_config(raw):
    """The OutlierDetectionConfig of the policy's JSON object; ValueError
    naming every bad field (gRFC A50's validation: durations valid and not
    negative, percentages at most 100, a usable childPolicy)."""
    from grpcpy._channel.service_config import _Errors, _duration, _field, _number

    if not isinstance(raw, dict):
        raise ValueError("outlier_detection: config is not a JSON object")
    errors = _Errors()
    path = "outlier_detection"

    def duration(key, default):
        value = _duration(raw, key, path, errors)
        return default if value is None else value

    def uint(obj, where, key, default, at_most=None):
        value = _number(obj, key, where, errors, integer=True, non_negative=True)
        if value is None:
            return default
        if value > 0xFFFFFFFF:
            errors.add("%s.%s" % (where, key), "out of range")
        elif at_most is not None and value > at_most:
            errors.add("%s.%s" % (where, key), "must be <= %d" % at_most)
        return value

    interval = duration("interval", 10.0)
    base = duration("baseEjectionTime", 30.0)
    maximum = duration("maxEjectionTime", 300.0)
    max_percent = uint(raw, path, "maxEjectionPercent", 10, at_most=100)
    success_rate = failure_percentage = None
    obj, where = _field(raw, "successRateEjection", path, errors, "object")
    if obj is not None:
        success_rate = SuccessRateEjection(
            uint(obj, where, "stdevFactor", 1900),
            uint(obj, where, "enforcementPercentage", 100, at_most=100),
            uint(obj, where, "minimumHosts", 5),
            uint(obj, where, "requestVolume", 100))
    obj, where = _field(raw, "failurePercentageEjection", path, errors, "object")
    if obj is not None:
        failure_percentage = FailurePercentageEjection(
            uint(obj, where, "threshold", 85, at_most=100),
            uint(obj, where, "enforcementPercentage", 100, at_most=100),
            uint(obj, where, "minimumHosts", 5),
            uint(obj, where, "requestVolume", 50))
    child = child_config = None
    entries, where = _field(raw, "childPolicy", path, errors, "array", required=True)
    if entries is not None:
        if not entries:
            errors.add(where, "empty")
        else:
            try:
                child, child_config = choose_policy(entries)
            except ValueError as exc:
                errors.add(where, str(exc))
    if errors.found:
        raise ValueError("; ".join(errors.found))
    return OutlierDetectionConfig(interval, base, maximum, max_percent, success_rate, failure_percentage,
                                  child, child_config)


# ---------------------------------------------------------------- the algorithms

class _Entry:
    """One address: its call counts (the interval being counted, and the
    last one, which the algorithms read), when it was ejected (None when
    it is not) and its ejection multiplier."""
    __slots__ = ("successes", "failures", "last_successes", "last_failures", "ejected_at", "multiplier")

    def __init__(self):
        self.successes = self.failures = 0
        self.last_successes = self.last_failures = 0
        self.ejected_at = None
        self.multiplier = 0

    def record(self, ok):
        if ok:
            self.successes += 1
        else:
            self.failures += 1


class Ejector:
    """The per-address counts and the ejection algorithms of gRFC A50, with
    the time passed in (``now``) and the randomness injectable
    (``random()`` -> a float in [0, 1)).  Keys are addresses (anything
    hashable); ``entries`` keeps them in the order given."""

    def __init__(self, config, random=_random_module.random):
        self.config = config
        self.random = random
        self.entries = {}
        self.timer_start = None     # when the current interval began; None: no sweeps
        self._out = 0               # addresses ejected, during a sweep

    def set_keys(self, keys):
        """The addresses now in use: new ones get an entry, the others lose
        theirs (with their counts and ejection)."""
        old = self.entries
        self.entries = {key: old.get(key) or _Entry() for key in keys}

    def entry(self, key):
        return self.entries.get(key)

    def is_ejected(self, key):
        entry = self.entries.get(key)
        return entry is not None and entry.ejected_at is not None

    def configure(self, now, config):
        """A (new) config.  Returns the keys un-ejected because the new
        config runs no algorithm.  The interval in progress keeps its
        start, so a changed interval counts from there (A50)."""
        self.config = config
        if not config.counting:
            self.timer_start = None
            released = []
            for key, entry in self.entries.items():
                if entry.ejected_at is not None:
                    released.append(key)
                entry.ejected_at = None
                entry.multiplier = 0
            return released
        if self.timer_start is None:
            self.timer_start = now
            for entry in self.entries.values():
                entry.successes = entry.failures = 0
        return []

    def next_sweep(self):
        if self.timer_start is None:
            return _INF
        return self.timer_start + max(self.config.interval, _MIN_INTERVAL)

    def sweep(self, now):
        """The interval ended: run the algorithms on its counts.  Returns
        (keys ejected, keys un-ejected)."""
        config = self.config
        self.timer_start = now
        for entry in self.entries.values():
            entry.last_successes, entry.last_failures = entry.successes, entry.failures
            entry.successes = entry.failures = 0
        ejected = []
        self._out = sum(1 for entry in self.entries.values() if entry.ejected_at is not None)
        if config.success_rate is not None:
            self._success_rate(now, ejected)
        if config.failure_percentage is not None:
            self._failure_percentage(now, ejected)
        released = []
        base = config.base_ejection_time
        longest = max(base, config.max_ejection_time)
        for key, entry in self.entries.items():
            if entry.ejected_at is None:
                if entry.multiplier > 0:
                    entry.multiplier -= 1
            elif now > entry.ejected_at + min(base * entry.multiplier, longest):
                entry.ejected_at = None
                released.append(key)
        return ejected, released

    def _room(self):
        """May one more address be ejected?  (A50 checks the share already
        ejected before each ejection, so the first is always allowed.)"""
        return self._out * 100 <= self.config.max_ejection_percent * len(self.entries)

    def _enforced(self, percentage):
        return int(self.random() * 100) < percentage

    def _eject(self, now, key, entry, ejected):
        entry.ejected_at = now
        entry.multiplier += 1
        self._out += 1
        ejected.append(key)

    def _success_rate(self, now, ejected):
        params = self.config.success_rate
        volume = params.request_volume
        rates = {}
        for key, entry in self.entries.items():
            total = entry.last_successes + entry.last_failures
            if total >= volume and total > 0:
                rates[key] = entry.last_successes / total
        if len(rates) < params.minimum_hosts or not rates:
            return
        mean = sum(rates.values()) / len(rates)
        stdev = math.sqrt(sum((r - mean) ** 2 for r in rates.values()) / len(rates))
        limit = mean - stdev * (params.stdev_factor / 1000.0)
        for key, rate in rates.items():
            if not self._room():
                return
            entry = self.entries[key]
            if entry.ejected_at is None and rate < limit and self._enforced(params.enforcement_percentage):
                self._eject(now, key, entry, ejected)

    def _failure_percentage(self, now, ejected):
        params = self.config.failure_percentage
        if len(self.entries) < params.minimum_hosts:
            return
        for key, entry in self.entries.items():
            if not self._room():
                return
            total = entry.last_successes + entry.last_failures
            if total < params.request_volume or total == 0 or entry.ejected_at is not None:
                continue
            if entry.last_failures * 100 > params.threshold * total and \
                    self._enforced(params.enforcement_percentage):
                self._eject(now, key, entry, ejected)


# ---------------------------------------------------------------- the policy

_EJECTED = "ejected by outlier detection"


class _Wrapped:
    """A subchannel as the child policy sees it: the plane's Subchannel,
    except that it is in TRANSIENT_FAILURE while its address is ejected.
    The real state shows again when the address comes back (the policy then
    tells the child, as for any other change)."""
    __slots__ = ("real", "ejected")

    def __init__(self, real, ejected):
        self.real = real
        self.ejected = ejected

    @property
    def state(self):
        return TRANSIENT_FAILURE if self.ejected else self.real.state

    @property
    def error(self):
        return "%s: %s" % (self.real.address, _EJECTED) if self.ejected else self.real.error

    @property
    def address(self):
        return self.real.address

    @property
    def sub_id(self):
        return self.real.sub_id

    def __getattr__(self, name):        # backoff, deadline, retry_at, channelz, ...
        return getattr(self.real, name)

    def __setattr__(self, name, value):
        if name in _Wrapped.__slots__:
            object.__setattr__(self, name, value)
        else:   # the child's writes (the address with its latest attributes) are the subchannel's
            setattr(self.real, name, value)

    def __repr__(self):
        return "<%s%s>" % (self.real, " ejected" if self.ejected else "")


class _ChildHelper:
    """The helper the child policy gets: the plane's, speaking in wrapped
    subchannels."""

    def __init__(self, policy, helper):
        self._policy = policy
        self._helper = helper

    def subchannel(self, address):
        return self._policy._wrap(self._helper.subchannel(address))

    def connect(self, sub, now):
        self._helper.connect(sub.real, now)

    def disconnect(self, sub):
        self._helper.disconnect(sub.real)

    def release(self, sub):
        self._policy._forget(sub)
        self._helper.release(sub.real)

    def open_stream(self, sub, *args, **kwargs):
        return self._helper.open_stream(sub.real, *args, **kwargs)

    def update_state(self, state, error):
        self._helper.update_state(state, error)

    def request_reresolution(self, now):
        self._helper.request_reresolution(now)

    def __getattr__(self, name):        # whatever else the plane offers
        return getattr(self._helper, name)


@register_policy
class OutlierDetection(LoadBalancingPolicy):
    """outlier_detection (gRFC A50), see the module docstring.

    Everything the plane asks goes to the child policy; what this policy
    adds is the wrapping of the child's subchannels, the count of every
    pick's outcome (only while an algorithm is configured: otherwise the
    child's picks pass through untouched) and the sweep on its timer.
    Without a config (chosen by grpc.lb_policy_name) it is pick_first with
    no ejection.
    """
    name = "outlier_detection"

    @classmethod
    def parse_config(cls, raw):
        return parse_config(raw)

    def __init__(self, helper, config=None):
        self._child = None
        super().__init__(helper)
        if config is None:
            config = OutlierDetectionConfig(child=POLICIES["pick_first"])
        self.config = config
        self._wrappers = {}         # Address -> _Wrapped
        self._by_sub_id = {}        # sub_id of a READY connection -> _Wrapped
        self._started = False       # the ejector has its config (it needs a `now`)
        self._ejector = Ejector(config, getattr(helper, "random", None) or _random_module.random)
        self._child_helper = _ChildHelper(self, helper)
        self._child = self._new_child(config)

    def _new_child(self, config):
        # the plane makes a PickInfo only for a policy that reads it, and
        # health-checks subchannels only for one that wants it: as the child
        self.uses_pick_info = config.child.uses_pick_info
        self.health_checks = config.child.health_checks
        return config.child(self._child_helper, config.child_config)

    # the plane reads (and on a policy switch, clears) these: the child's
    @property
    def subchannels(self):
        child = self._child
        return [] if child is None else [w.real for w in child.subchannels]

    @subchannels.setter
    def subchannels(self, subs):
        if self._child is not None:
            self._child.subchannels = [self._wrap(s) for s in subs]

    @property
    def idle(self):
        return True if self._child is None else self._child.idle

    @idle.setter
    def idle(self, value):
        if self._child is not None:
            self._child.idle = value

    # ----- inputs from the plane

    def update_config(self, now, config):
        old_config, self.config = self.config, config
        if type(self._child) is not config.child:
            old = self._child
            subchannels, active = [w.real for w in old.subchannels], not old.idle
            old.subchannels = []
            old.shutdown()
            self._child = self._new_child(config)
            self._child.take_over(now, subchannels, active)
        elif config.child_config != old_config.child_config:
            self._child.update_config(now, config.child_config)
        self._started = True
        for key in self._ejector.configure(now, config):
            self._show(now, key, False)

    def update_addresses(self, now, addresses):
        self._start(now)
        self._ejector.set_keys(addresses)
        for address, wrapped in self._wrappers.items():
            if wrapped.ejected and not self._ejector.is_ejected(address):
                wrapped.ejected = False     # gone from the list: the child drops it now
        self._child.update_addresses(now, addresses)

    def subchannel_state_changed(self, now, sub):
        wrapped = self._wrappers.get(sub.address)
        if wrapped is None or wrapped.real is not sub:
            return
        if sub.state == READY:
            self._note_id(sub.sub_id, wrapped)
        if not wrapped.ejected:     # an ejected one keeps looking TRANSIENT_FAILURE
            self._child.subchannel_state_changed(now, wrapped)

    def exit_idle(self, now):
        self._start(now)
        self._child.exit_idle(now)

    def enter_idle(self):
        self._child.enter_idle()

    def _connect(self, now):
        self._child._connect(now)

    def is_ready(self):
        return self._child.is_ready()

    def _report(self):
        self._child._report()

    def shutdown(self):
        self._ejector.timer_start = None        # no more sweeps
        self._child.shutdown()

    def take_over(self, now, subchannels, active):
        self._start(now)
        self._ejector.set_keys([sub.address for sub in subchannels])
        self._child.take_over(now, subchannels, active)

    def pick(self, info=None):
        result = self._child.pick(info)
        if result is None or not self.config.counting:
            return result
        if type(result) is tuple:
            sub_id, child_done = result
        else:
            sub_id, child_done = result, None
        wrapped = self._by_sub_id.get(sub_id) or self._find(sub_id)
        entry = None if wrapped is None else self._ejector.entry(wrapped.real.address)
        if entry is None:
            return result
        if child_done is None:
            def done(now, code, trailing):
                if code is not None:        # None: the pick was not used
                    entry.record(code == 0)
        else:
            def done(now, code, trailing):
                if code is not None:
                    entry.record(code == 0)
                child_done(now, code, trailing)
        return sub_id, done

    def next_timer(self):
        return min(self._ejector.next_sweep(), self._child.next_timer())

    def timer(self, now):
        if self._child.next_timer() <= now:        # the child's own timers (weights, streams)
            self._child.timer(now)
        if now < self._ejector.next_sweep():
            return
        ejected, released = self._ejector.sweep(now)
        for key in ejected:
            self._show(now, key, True)
        for key in released:
            self._show(now, key, False)

    # ----- internals

    def _start(self, now):
        if not self._started:
            self._started = True
            self._ejector.configure(now, self.config)

    def _wrap(self, real):
        wrapped = self._wrappers.get(real.address)
        if wrapped is None or wrapped.real is not real:
            wrapped = _Wrapped(real, self._ejector.is_ejected(real.address))
            self._wrappers[real.address] = wrapped
        return wrapped

    def _forget(self, wrapped):
        if self._wrappers.get(wrapped.address) is wrapped:
            del self._wrappers[wrapped.address]

    def _show(self, now, key, ejected):
        """Eject or un-eject the subchannel of an address: the child sees
        TRANSIENT_FAILURE, or the real state again."""
        wrapped = self._wrappers.get(key)
        if wrapped is None or wrapped.ejected == ejected:
            return
        wrapped.ejected = ejected
        if wrapped in self._child.subchannels:
            self._child.subchannel_state_changed(now, wrapped)

    def _note_id(self, sub_id, wrapped):
        ids = self._by_sub_id
        if len(ids) > 4 * len(self._wrappers) + 16:     # ids of connections long gone
            ids.clear()
        ids[sub_id] = wrapped

    def _find(self, sub_id):
        """The wrapper of a connection not seen READY here (one that was
        READY before this policy took over)."""
        for wrapped in self._wrappers.values():
            if wrapped.real.sub_id == sub_id:
                self._note_id(sub_id, wrapped)
                return wrapped
        return None
