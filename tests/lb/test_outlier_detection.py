"""outlier_detection (gRFC A50): its config, its ejection algorithms on a fake
clock, the policy driven through the channel plane, and a real multi-backend
run."""
import asyncio
import concurrent.futures
import itertools
import json
import math
import random
import threading
import time

import grpc
import pytest

import grpcpy
import grpcpy.aio

from grpcpy._channel import resolver as resolver_mod
from grpcpy._channel.lb.base import POLICIES, READY, TRANSIENT_FAILURE, register_policy
from grpcpy._channel.lb.outlier_detection import (Ejector, FailurePercentageEjection, OutlierDetection,
                                                  OutlierDetectionConfig, SuccessRateEjection, parse_config)
from grpcpy._channel.plane import ChannelPlane
from grpcpy._channel.resolver import Resolver, register_resolver
from grpcpy._channel.service_config import ServiceConfigError, parse_service_config
from grpcpy._channel.target import Address, parse_target
from grpcpy._channel.lb.pick_first import PickFirst
from grpcpy._channel.lb.round_robin import RoundRobin

RR = [{"round_robin": {}}]


# ---------------------------------------------------------------- config

def test_config_defaults_are_a50s():
    config = parse_config({"childPolicy": RR, "successRateEjection": {}, "failurePercentageEjection": {}})
    assert (config.interval, config.base_ejection_time, config.max_ejection_time,
            config.max_ejection_percent) == (10.0, 30.0, 300.0, 10)
    sr, fp = config.success_rate, config.failure_percentage
    assert (sr.stdev_factor, sr.enforcement_percentage, sr.minimum_hosts, sr.request_volume) == (1900, 100, 5, 100)
    assert (fp.threshold, fp.enforcement_percentage, fp.minimum_hosts, fp.request_volume) == (85, 100, 5, 50)
    assert config.child is RoundRobin and config.counting


def test_config_without_algorithms_counts_nothing():
    config = parse_config({"childPolicy": [{"unknown_policy": {}}, {"pick_first": {}}]})
    assert config.success_rate is None and config.failure_percentage is None
    assert not config.counting
    assert config.child is PickFirst        # the first registered one


def test_config_values():
    config = parse_config({
        "interval": "0.25s", "baseEjectionTime": "1.5s", "maxEjectionTime": "7s", "maxEjectionPercent": 50,
        "successRateEjection": {"stdevFactor": 1000, "enforcementPercentage": 30, "minimumHosts": 3,
                                "requestVolume": "20"},
        "failurePercentageEjection": {"threshold": 40, "enforcementPercentage": 0, "minimumHosts": 2,
                                      "requestVolume": 10},
        "childPolicy": RR})
    assert (config.interval, config.base_ejection_time, config.max_ejection_time,
            config.max_ejection_percent) == (0.25, 1.5, 7.0, 50)
    sr, fp = config.success_rate, config.failure_percentage
    assert (sr.stdev_factor, sr.enforcement_percentage, sr.minimum_hosts, sr.request_volume) == (1000, 30, 3, 20)
    assert (fp.threshold, fp.enforcement_percentage, fp.minimum_hosts, fp.request_volume) == (40, 0, 2, 10)


@pytest.mark.parametrize("raw, words", [
    ([], "not a JSON object"),
    ({}, "childPolicy error:field not present"),
    ({"childPolicy": []}, "childPolicy error:empty"),
    ({"childPolicy": [{"nope": {}}]}, "childPolicy error:No known policies in list: nope"),
    ({"childPolicy": [{"a": {}, "b": {}}]}, "childPolicy error:oneOf violation"),
    ({"childPolicy": [{"round_robin": []}]}, "round_robin: config should be an object"),
    ({"childPolicy": [{"outlier_detection": {"childPolicy": RR, "maxEjectionPercent": 200}}]},
     "childPolicy error:outlier_detection: field:outlier_detection.maxEjectionPercent error:must be <= 100"),
    ({"childPolicy": {"round_robin": {}}}, "childPolicy error:is not an array"),
    ({"childPolicy": RR, "interval": "-1s"}, "interval error:seconds must be in the range"),
    ({"childPolicy": RR, "baseEjectionTime": "3"}, "baseEjectionTime error:Not a duration"),
    ({"childPolicy": RR, "maxEjectionTime": 5}, "maxEjectionTime error:is not a string"),
    ({"childPolicy": RR, "maxEjectionPercent": 101}, "maxEjectionPercent error:must be <= 100"),
    ({"childPolicy": RR, "maxEjectionPercent": -1}, "maxEjectionPercent error:failed to parse"),
    ({"childPolicy": RR, "successRateEjection": {"enforcementPercentage": 200}},
     "successRateEjection.enforcementPercentage error:must be <= 100"),
    ({"childPolicy": RR, "successRateEjection": []}, "successRateEjection error:is not an object"),
    ({"childPolicy": RR, "failurePercentageEjection": {"threshold": 101}},
     "failurePercentageEjection.threshold error:must be <= 100"),
    ({"childPolicy": RR, "failurePercentageEjection": {"enforcementPercentage": 101}},
     "failurePercentageEjection.enforcementPercentage error:must be <= 100"),
    ({"childPolicy": RR, "failurePercentageEjection": {"minimumHosts": 1.5}},
     "failurePercentageEjection.minimumHosts error:failed to parse"),
])
def test_config_errors(raw, words):
    with pytest.raises(ValueError) as info:
        parse_config(raw)
    assert words in str(info.value)


def test_config_error_names_every_bad_field():
    with pytest.raises(ValueError) as info:
        parse_config({"interval": "x", "maxEjectionPercent": 500})
    text = str(info.value)
    assert "interval" in text and "maxEjectionPercent" in text and "childPolicy" in text


# ---------------------------------------------------------------- the algorithms, fake time

class Draws:
    """random() answering a scripted sequence (then 0.0)."""

    def __init__(self, *values):
        self.values = list(values)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.values.pop(0) if self.values else 0.0


def make(keys, random=None, **kwargs):
    kwargs.setdefault("interval", 1.0)
    kwargs.setdefault("base_ejection_time", 10.0)
    config = OutlierDetectionConfig(**kwargs)
    ejector = Ejector(config, random or Draws())
    ejector.set_keys(keys)
    ejector.configure(0.0, config)
    return ejector


def feed(ejector, counts):
    """counts: key -> (successes, failures) in the current interval."""
    for key, (ok, bad) in counts.items():
        entry = ejector.entry(key)
        for _ in range(ok):
            entry.record(True)
        for _ in range(bad):
            entry.record(False)


FP = FailurePercentageEjection(threshold=40, minimum_hosts=3, request_volume=10)


def test_failure_percentage_ejects_above_the_threshold_only():
    ej = make("abcd", failure_percentage=FP, max_ejection_percent=100)
    assert ej.next_sweep() == 1.0
    feed(ej, {"a": (10, 0), "b": (5, 5), "c": (6, 4), "d": (1, 1)})
    assert ej.sweep(1.0) == (["b"], [])      # c is at 40 %, not above; d has too few calls
    assert ej.is_ejected("b") and not ej.is_ejected("c")
    assert ej.next_sweep() == 2.0


def test_failure_percentage_needs_minimum_hosts():
    ej = make("ab", failure_percentage=FP, max_ejection_percent=100)
    feed(ej, {"a": (0, 20), "b": (20, 0)})
    assert ej.sweep(1.0) == ([], [])


def test_counts_are_per_interval():
    ej = make("abc", failure_percentage=FP, max_ejection_percent=100)
    feed(ej, {"a": (0, 5), "b": (10, 0), "c": (10, 0)})
    assert ej.sweep(1.0) == ([], [])        # a: 5 calls, below the volume
    feed(ej, {"a": (0, 5)})
    assert ej.sweep(2.0) == ([], [])        # the earlier 5 do not add up with these
    feed(ej, {"a": (0, 10)})
    assert ej.sweep(3.0) == (["a"], [])


def test_enforcement_percentage_draws():
    fp = FailurePercentageEjection(threshold=40, enforcement_percentage=30, minimum_hosts=3, request_volume=10)
    draws = Draws(0.30, 0.29)       # 30 is not below 30; 29 is
    ej = make("abc", random=draws, failure_percentage=fp, max_ejection_percent=100)
    feed(ej, {"a": (0, 10), "b": (10, 0), "c": (10, 0)})
    assert ej.sweep(1.0) == ([], [])
    feed(ej, {"a": (0, 10), "b": (10, 0), "c": (10, 0)})
    assert ej.sweep(2.0) == (["a"], [])
    assert draws.calls == 2         # a draw only for an outlier


def test_success_rate_ejects_the_statistical_outlier():
    sr = SuccessRateEjection(stdev_factor=1000, minimum_hosts=5, request_volume=100)
    ej = make("abcdef", success_rate=sr, max_ejection_percent=100)
    feed(ej, {"a": (100, 0), "b": (100, 0), "c": (99, 1), "d": (100, 0), "e": (50, 50), "f": (1, 9)})
    # over a..e (f has too few calls): mean 0.898, stdev ~0.2; 0.5 is below mean - 1 stdev
    assert ej.sweep(1.0) == (["e"], [])


def test_success_rate_needs_minimum_hosts_with_volume():
    sr = SuccessRateEjection(stdev_factor=1000, minimum_hosts=5, request_volume=100)
    ej = make("abcde", success_rate=sr, max_ejection_percent=100)
    feed(ej, {"a": (100, 0), "b": (100, 0), "c": (100, 0), "d": (100, 0), "e": (10, 80)})
    assert ej.sweep(1.0) == ([], [])        # e has 90 calls: four hosts qualify, five needed
    feed(ej, {"a": (100, 0), "b": (100, 0), "c": (100, 0), "d": (100, 0), "e": (10, 90)})
    assert ej.sweep(2.0) == (["e"], [])


def test_success_rate_ejects_nobody_when_all_are_alike():
    sr = SuccessRateEjection(stdev_factor=0, minimum_hosts=3, request_volume=10)
    ej = make("abc", success_rate=sr, max_ejection_percent=100)
    feed(ej, {k: (5, 5) for k in "abc"})
    assert ej.sweep(1.0) == ([], [])        # stdev 0: nobody is below the mean


def test_max_ejection_percent():
    fp = FailurePercentageEjection(threshold=10, minimum_hosts=1, request_volume=1)
    ej = make("abcdefghij", failure_percentage=fp, max_ejection_percent=20)
    feed(ej, {k: (0, 1) for k in "abcdefghij"})
    # ejecting is allowed while at most 20 % are out: 0 %, 10 %, 20 %, then 30 % stops it
    assert ej.sweep(1.0) == (["a", "b", "c"], [])


def test_max_ejection_percent_always_allows_one():
    fp = FailurePercentageEjection(threshold=10, minimum_hosts=1, request_volume=1)
    ej = make("abc", failure_percentage=fp, max_ejection_percent=0)
    feed(ej, {k: (0, 1) for k in "abc"})
    assert ej.sweep(1.0) == (["a"], [])


def test_unejection_time_grows_with_the_multiplier_and_is_capped():
    fp = FailurePercentageEjection(threshold=10, minimum_hosts=1, request_volume=1)
    ej = make("ab", failure_percentage=fp, max_ejection_percent=50, base_ejection_time=2.0,
              max_ejection_time=3.0)
    feed(ej, {"a": (0, 1)})
    assert ej.sweep(1.0) == (["a"], [])                 # multiplier 1: out for 2 s
    assert ej.sweep(2.0) == ([], [])
    assert ej.sweep(3.0) == ([], [])                    # not after 1 + 2 yet
    assert ej.sweep(3.5) == ([], ["a"])
    feed(ej, {"a": (0, 1)})
    assert ej.sweep(4.5) == (["a"], [])                 # multiplier 2: min(4, max(2, 3)) = 3 s
    assert ej.sweep(7.5) == ([], [])
    assert ej.sweep(7.6) == ([], ["a"])
    assert ej.entry("a").multiplier == 2


def test_multiplier_decreases_while_not_ejected():
    fp = FailurePercentageEjection(threshold=10, minimum_hosts=1, request_volume=1)
    ej = make("ab", failure_percentage=fp, max_ejection_percent=50, base_ejection_time=1.0)
    feed(ej, {"a": (0, 1)})
    ej.sweep(1.0)
    feed(ej, {"a": (0, 1)})
    ej.sweep(2.5)               # un-ejected at this sweep (after 1 + 1), not ejected again: no calls counted
    assert not ej.is_ejected("a")
    entry = ej.entry("a")
    assert entry.multiplier == 1
    ej.sweep(3.5)
    assert entry.multiplier == 0
    ej.sweep(4.5)
    assert entry.multiplier == 0


def test_removed_addresses_lose_their_state():
    fp = FailurePercentageEjection(threshold=10, minimum_hosts=1, request_volume=1)
    ej = make("ab", failure_percentage=fp, max_ejection_percent=50)
    feed(ej, {"a": (0, 1)})
    ej.sweep(1.0)
    ej.set_keys("bc")
    assert list(ej.entries) == ["b", "c"] and not ej.is_ejected("a")
    ej.set_keys("abc")
    assert not ej.is_ejected("a") and ej.entry("a").multiplier == 0


def test_a_config_without_algorithms_stops_the_sweeps_and_releases_everyone():
    fp = FailurePercentageEjection(threshold=10, minimum_hosts=1, request_volume=1)
    ej = make("ab", failure_percentage=fp, max_ejection_percent=50)
    feed(ej, {"a": (0, 1)})
    ej.sweep(1.0)
    assert ej.configure(1.5, OutlierDetectionConfig()) == ["a"]
    assert ej.next_sweep() == float("inf") and not ej.is_ejected("a")
    assert ej.entry("a").multiplier == 0


def test_a_new_interval_counts_from_the_last_sweep():
    ej = make("ab", failure_percentage=FP, interval=10.0)
    ej.sweep(10.0)
    ej.configure(12.0, OutlierDetectionConfig(interval=5.0, failure_percentage=FP))
    assert ej.next_sweep() == 15.0
    ej.configure(13.0, OutlierDetectionConfig(interval=1.0, failure_percentage=FP))
    assert ej.next_sweep() == 11.0      # already due: the plane runs it at once


def test_a_service_config_with_outlier_detection():
    text = {"loadBalancingConfig": [{"outlier_detection": {
        "childPolicy": RR, "failurePercentageEjection": {"threshold": 40}}}]}
    cls, config = parse_service_config(text).lb_policy
    assert cls is OutlierDetection and config.child is RoundRobin and config.failure_percentage.threshold == 40
    bad = {"loadBalancingConfig": [{"outlier_detection": {"childPolicy": RR, "maxEjectionPercent": 101}}]}
    with pytest.raises(ServiceConfigError) as info:
        parse_service_config(bad)
    assert "field:loadBalancingConfig error:outlier_detection:" in str(info.value)
    assert "maxEjectionPercent error:must be <= 100" in str(info.value)


# ---------------------------------------------------------------- the policy in the channel plane

OK, FAILED = 0, 14      # status codes
ADDRS = [Address.ip("10.0.0.%d" % i, 50051) for i in (1, 2, 3)]


def od_config(child=RR, **fields):
    fields.setdefault("interval", "1s")
    fields.setdefault("baseEjectionTime", "2s")
    fields.setdefault("maxEjectionPercent", 50)
    return {"loadBalancingConfig": [{"outlier_detection": dict(fields, childPolicy=child)}]}


FAIL_40 = {"threshold": 40, "minimumHosts": 3, "requestVolume": 4}


class Harness:
    """A plane on addresses pushed by a test resolver, connections that
    succeed at once, and calls whose outcome the test decides."""

    def __init__(self, scheme, config, addresses=ADDRS, random=lambda: 0.0):
        self.plane = ChannelPlane(parse_target(scheme + ":///svc"), random=random)
        self.now = 0.0
        self.kinds = []     # of every action carried out
        self.plane.request_connection(self.now)
        self.step()
        self.push(addresses, config)

    def push(self, addresses, config):
        self.plane.pushed(self.now, addresses, config)
        self.step()

    def step(self):
        """Carry out the plane's actions: every connect succeeds."""
        while True:
            actions = self.plane.take_actions()
            if not actions:
                return
            for action in actions:
                self.kinds.append(action[0])
                if action[0] == "connect":
                    self.plane.connect_succeeded(self.now, action[1])

    def address_of(self, sub_id):
        return self.plane._by_id[sub_id].address.host

    def call(self, fail=()):
        """One call: the host it went to (None: no pick); it fails when its host is in ``fail``."""
        self.plane.request_connection(self.now)
        self.step()
        picked = self.plane.pick()
        if picked is None:
            return None
        sub_id, done = picked if type(picked) is tuple else (picked, None)
        host = self.address_of(sub_id)
        if done is not None:
            done(self.now, FAILED if host in fail else OK, ())
        return host

    def calls(self, n, fail=()):
        return [self.call(fail) for _ in range(n)]

    def tick(self):
        """Time moves to the plane's next timer, which runs."""
        self.now = self.plane.next_timer()
        self.plane.timer(self.now)
        self.step()


@pytest.fixture
def scheme():
    name = "od-test-%d" % next(_schemes)

    class Pushed(Resolver):
        def start(self, listener):
            pass

    register_resolver(name, Pushed)
    yield name
    resolver_mod._FACTORIES.pop(name, None)


_schemes = itertools.count()


def test_failure_percentage_ejects_a_failing_backend_and_brings_it_back(scheme):
    h = Harness(scheme, od_config(failurePercentageEjection=FAIL_40))
    assert sorted(set(h.calls(6))) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert h.plane.next_timer() == 1.0
    h.calls(12, fail={"10.0.0.2"})
    h.tick()                                        # t=1: .2 failed 100 % of its 4+ calls
    assert h.now == 1.0
    assert set(h.calls(12)) == {"10.0.0.1", "10.0.0.3"}
    assert h.plane.state == READY
    h.tick()
    h.tick()                                        # t=3: not after 1 + 2 s
    assert set(h.calls(6)) == {"10.0.0.1", "10.0.0.3"}
    h.tick()                                        # t=4: back
    assert h.now == 4.0
    assert set(h.calls(6)) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}


def test_success_rate_ejects_the_outlier(scheme):
    addresses = [Address.ip("10.0.0.%d" % i, 50051) for i in range(1, 6)]
    h = Harness(scheme, od_config(successRateEjection={"stdevFactor": 1000, "minimumHosts": 5,
                                                       "requestVolume": 4}), addresses)
    h.calls(30, fail={"10.0.0.4"})
    h.tick()
    assert set(h.calls(20)) == {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5"}


def test_max_ejection_percent_keeps_backends_in(scheme):
    h = Harness(scheme, od_config(failurePercentageEjection=FAIL_40, maxEjectionPercent=0))
    h.calls(12, fail={"10.0.0.1", "10.0.0.2"})
    h.tick()                                        # one ejected (always allowed), not two
    assert set(h.calls(6)) == {"10.0.0.2", "10.0.0.3"}


def test_enforcement_draws_come_from_the_channels_randomness(scheme):
    draw = [0.5]        # what the channel's random() answers (to whoever asks)
    h = Harness(scheme, od_config(failurePercentageEjection=dict(FAIL_40, enforcementPercentage=30)),
                random=lambda: draw[0])
    h.calls(12, fail={"10.0.0.2"})
    h.tick()                                        # draws 50: not enforced
    assert "10.0.0.2" in h.calls(6)
    draw[0] = 0.2
    h.calls(12, fail={"10.0.0.2"})
    h.tick()                                        # draws 20: ejected
    assert "10.0.0.2" not in h.calls(6)


def test_all_ejected_fails_the_channel_naming_the_ejection(scheme):
    h = Harness(scheme, od_config(failurePercentageEjection=dict(FAIL_40, threshold=0), maxEjectionPercent=100),
                ADDRS[:1] + ADDRS[1:])
    h.calls(12, fail={"10.0.0.1", "10.0.0.2", "10.0.0.3"})
    h.tick()
    assert h.plane.state == TRANSIENT_FAILURE
    assert "ejected by outlier detection" in h.plane.last_error
    assert h.call() is None
    h.tick()
    h.tick()
    h.tick()                                        # t=4, after 1 + 2 s: all back
    assert h.plane.state == READY
    assert len(set(h.calls(6))) == 3


def test_with_pick_first_an_ejected_backend_hands_over_to_the_next(scheme):
    h = Harness(scheme, od_config(child=[{"pick_first": {}}],
                                  failurePercentageEjection={"threshold": 40, "minimumHosts": 1,
                                                             "requestVolume": 4}))
    assert set(h.calls(5, fail={"10.0.0.1"})) == {"10.0.0.1"}
    h.tick()
    assert set(h.calls(5)) == {"10.0.0.2"}
    h.tick()
    h.tick()
    h.tick()                                        # .1 is back, but pick_first stays where it is
    assert set(h.calls(5)) == {"10.0.0.2"}
    assert h.plane.state == READY


def test_without_an_algorithm_picks_pass_through_uncounted(scheme):
    h = Harness(scheme, od_config())
    picked = h.plane.pick()
    assert type(picked) is int
    assert h.plane.next_timer() == math.inf


def test_a_pick_not_used_is_not_counted(scheme):
    h = Harness(scheme, od_config(failurePercentageEjection=dict(FAIL_40, requestVolume=1)))
    for _ in range(6):
        sub_id, done = h.plane.pick()
        done(h.now, None, None)
    h.tick()
    entries = h.plane._policy._ejector.entries.values()
    assert [(e.last_successes, e.last_failures) for e in entries] == [(0, 0)] * 3


def test_a_new_config_keeps_the_connections_and_can_release_everyone(scheme):
    h = Harness(scheme, od_config(failurePercentageEjection=FAIL_40))
    h.calls(12, fail={"10.0.0.2"})
    h.tick()
    ids = {sub.address.host: sub.sub_id for sub in h.plane._subchannels.values()}
    # a config with no algorithm: everyone back at once, on the same connections
    h.push(ADDRS, od_config())
    assert h.plane.take_actions() == []
    assert {sub.address.host: sub.sub_id for sub in h.plane._subchannels.values()} == ids
    assert set(h.calls(6)) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}
    # another child: it takes the subchannels over (pick_first keeps one connection)
    h.push(ADDRS, od_config(child=[{"pick_first": {}}], failurePercentageEjection=FAIL_40))
    assert h.plane.state == READY
    sub_id, done = h.plane.pick()
    assert sub_id == ids[h.address_of(sub_id)]


def test_addresses_leaving_and_coming_back(scheme):
    h = Harness(scheme, od_config(failurePercentageEjection=FAIL_40))
    h.calls(12, fail={"10.0.0.2"})
    h.tick()
    h.push([ADDRS[0], ADDRS[2]], od_config(failurePercentageEjection=FAIL_40))
    h.push(ADDRS, od_config(failurePercentageEjection=FAIL_40))
    # it came back as a new address: not ejected, and connected again
    assert set(h.calls(6)) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}


def test_an_ejected_backend_losing_its_connection_reconnects_when_back(scheme):
    h = Harness(scheme, od_config(failurePercentageEjection=FAIL_40))
    h.calls(12, fail={"10.0.0.2"})
    h.tick()
    sub = h.plane.subchannel(ADDRS[1])
    h.plane.connection_lost(h.now, sub.sub_id)     # the child is not told: it sees an ejected backend
    assert h.plane.take_actions() == []
    h.tick()
    h.tick()
    h.tick()                                        # back: the child sees IDLE and connects
    assert set(h.calls(6)) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}


def test_switching_to_outlier_detection_keeps_the_connections(scheme):
    h = Harness(scheme, {"loadBalancingConfig": [{"round_robin": {}}]})
    assert len(set(h.calls(6))) == 3
    ids = {sub.address.host: sub.sub_id for sub in h.plane._subchannels.values()}
    h.push(ADDRS, od_config(failurePercentageEjection=FAIL_40))
    assert h.plane.take_actions() == [] and h.plane.state == READY
    assert {sub.address.host: sub.sub_id for sub in h.plane._subchannels.values()} == ids
    h.calls(12, fail={"10.0.0.3"})
    h.tick()
    assert set(h.calls(6)) == {"10.0.0.1", "10.0.0.2"}


def test_new_address_attributes_reach_the_subchannels_through_the_wrapping(scheme):
    h = Harness(scheme, od_config(failurePercentageEjection=FAIL_40))
    ids = {sub.address.host: sub.sub_id for sub in h.plane._subchannels.values()}
    h.push([Address.ip(a.host, a.port, weight=i) for i, a in enumerate(ADDRS)],
           od_config(failurePercentageEjection=FAIL_40))
    subs = list(h.plane._subchannels.values())
    assert [sub.address.attributes["weight"] for sub in subs] == [0, 1, 2]
    assert {sub.address.host: sub.sub_id for sub in subs} == ids


@pytest.mark.parametrize("child, watches", [(RR, 3), ([{"pick_first": {}}], 0)])
def test_health_checking_follows_the_child(scheme, child, watches):
    config = dict(od_config(child=child), healthCheckConfig={"serviceName": ""})
    h = Harness(scheme, config)
    assert h.kinds.count("stream") == watches


def test_the_child_hears_of_its_own_config_changes_only(scheme):
    updates = []

    class Child(RoundRobin):
        name = "od-test-child"

        def update_config(self, now, config):
            updates.append(config)
            super().update_config(now, config)

    register_policy(Child)
    try:
        h = Harness(scheme, od_config(child=[{"od-test-child": {"x": 1}}]))
        assert h.plane._policy._child.config == {"x": 1}
        h.push(ADDRS, od_config(child=[{"od-test-child": {"x": 1}}], interval="2s"))
        assert updates == []
        h.push(ADDRS, od_config(child=[{"od-test-child": {"x": 2}}], interval="2s"))
        assert updates == [{"x": 2}]
    finally:
        POLICIES.pop("od-test-child", None)


def test_the_childs_timers_run(scheme):
    fired = []

    class Child(RoundRobin):
        name = "od-test-timed"
        at = 0.5

        def next_timer(self):
            return self.at

        def timer(self, now):
            fired.append(now)
            self.at = math.inf

    register_policy(Child)
    try:
        h = Harness(scheme, od_config(child=[{"od-test-timed": {}}], failurePercentageEjection=FAIL_40))
        assert h.plane.next_timer() == 0.5
        h.tick()
        assert fired == [0.5] and h.plane.next_timer() == 1.0
        h.tick()
        assert fired == [0.5]
    finally:
        POLICIES.pop("od-test-timed", None)


@pytest.mark.parametrize("child", ["weighted_round_robin", "least_request", "ring_hash"])
def test_over_other_children(scheme, child):
    h = Harness(scheme, od_config(child=[{child: {}}], failurePercentageEjection=FAIL_40),
                random=random.Random(7).random)     # the children draw from it
    assert type(h.plane.pick()) is tuple
    served = h.calls(60, fail={"10.0.0.2"})
    assert "10.0.0.2" in served
    h.tick()
    assert "10.0.0.2" not in h.calls(60)
    while h.now < 4.0:
        h.tick()
    assert "10.0.0.2" in h.calls(60)


def test_no_sweeps_after_shutdown(scheme):
    h = Harness(scheme, od_config(failurePercentageEjection=FAIL_40))
    assert h.plane.next_timer() == 1.0
    h.plane.shutdown()
    assert h.plane.next_timer() == math.inf


def test_a_zero_interval_does_not_spin(scheme):
    h = Harness(scheme, od_config(interval="0s", failurePercentageEjection=FAIL_40))
    assert h.plane.next_timer() > h.now
    h.tick()
    assert h.plane.next_timer() > h.now


def test_lb_policy_name_without_a_config_is_pick_first(scheme):
    plane = ChannelPlane(parse_target("ipv4:10.0.0.1:1,10.0.0.2:1"),
                         [("grpc.lb_policy_name", "outlier_detection")])
    plane.request_connection(0.0)
    connects = [a for a in plane.take_actions() if a[0] == "connect"]
    assert len(connects) == 1
    plane.connect_succeeded(0.0, connects[0][1])
    assert plane.state == READY and plane.pick() == connects[0][1]


# ---------------------------------------------------------------- real backends

class Backend:
    """A grpcio or grpcpy server answering /t.S/Echo with its name; a
    ``flaky`` one aborts every other call."""

    def __init__(self, kind, host, name, flaky=False):
        self.name = name
        self.flaky = flaky
        self.calls = 0
        self.lock = threading.Lock()
        self.pool = concurrent.futures.ThreadPoolExecutor(4)
        module = grpc if kind == "grpcio" else grpcpy
        self.server = module.server(self.pool)
        self.server.add_generic_rpc_handlers((module.method_handlers_generic_handler(
            "t.S", {"Echo": module.unary_unary_rpc_method_handler(self.echo)}),))
        self.port = self.server.add_insecure_port("%s:0" % host)
        self.host = host
        self.server.start()

    def echo(self, request, context):
        with self.lock:
            self.calls += 1
            fail = self.flaky and self.calls % 2 == 0
        if fail:
            context.abort(grpc.StatusCode.INTERNAL, "every other call fails")
        return self.name.encode()

    def stop(self):
        self.server.stop(None)
        self.pool.shutdown(wait=False)


@pytest.fixture(scope="module")
def backends():
    servers = [Backend("grpcio", "127.0.0.1", "a"), Backend("grpcpy", "127.0.0.2", "b", flaky=True),
               Backend("grpcpy", "127.0.0.3", "c")]
    yield servers
    for server in servers:
        server.stop()


def _run_until(call, predicate, limit=20.0):
    """Calls one after another until ``predicate(served_by)`` holds; the
    names that served them (None for a failed call)."""
    served = []
    end = time.monotonic() + limit
    while time.monotonic() < end:
        served.append(call())
        if predicate(served):
            return served
    raise AssertionError("not reached in %d calls: %s" % (len(served), served[-30:]))


@pytest.mark.parametrize("facade", ["sync", "aio"])
def test_a_backend_failing_half_its_calls_is_ejected_and_comes_back(backends, facade):
    a, b, c = backends
    target = "ipv4:" + ",".join("%s:%d" % (s.host, s.port) for s in backends)
    config = json.dumps({"loadBalancingConfig": [{"outlier_detection": {
        "interval": "0.1s", "baseEjectionTime": "0.5s", "maxEjectionPercent": 50,
        "failurePercentageEjection": {"threshold": 40, "minimumHosts": 3, "requestVolume": 4},
        "childPolicy": [{"round_robin": {}}]}}]})
    options = [("grpc.service_config", config)]
    loop = None
    if facade == "sync":
        channel = grpcpy.insecure_channel(target, options)
        echo = channel.unary_unary("/t.S/Echo")

        def call():
            try:
                return echo(b"x", timeout=5, wait_for_ready=True).decode()
            except grpcpy.RpcError:
                return None
    else:
        loop = asyncio.new_event_loop()
        channel = loop.run_until_complete(_aio_channel(target, options))
        echo = channel.unary_unary("/t.S/Echo")

        async def one():
            try:
                return (await echo(b"x", timeout=5, wait_for_ready=True)).decode()
            except grpcpy.RpcError:
                return None

        def call():
            return loop.run_until_complete(one())
    try:
        # all three serve; b fails every other call
        served = _run_until(call, lambda s: {"a", "b", "c", None} <= set(s))
        # ejected: a long run of calls without b (round robin would give it every third)
        served = _run_until(call, lambda s: len(s) >= 30 and "b" not in s[-30:] and None not in s[-30:])
        calls_at_ejection = b.calls
        assert set(served[-30:]) == {"a", "c"}
        # back after the ejection time: b serves (or fails) calls again
        _run_until(call, lambda s: s[-1] in ("b", None))
        assert b.calls > calls_at_ejection
    finally:
        if loop is None:
            channel.close()
        else:
            loop.run_until_complete(channel.close())
            loop.close()


async def _aio_channel(target, options):
    return grpcpy.aio.insecure_channel(target, options)
