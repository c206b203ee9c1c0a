"""weighted_round_robin (gRFC A58): its config, weights from load reports,
blackout and expiration, the earliest-deadline-first schedule; then the
policy on a channel plane with a fake clock; then real backends reporting
different utilisation."""
import asyncio
import collections
import itertools
import json
import math
import time
from concurrent import futures

import grpc
import pytest

import grpcpy
import grpcpy.aio
from grpcpy import orca
from grpcpy._channel.lb import weighted_round_robin as wrr
from grpcpy._channel.plane import CONNECTING, IDLE, READY, TRANSIENT_FAILURE, ChannelPlane
from grpcpy._channel.service_config import ServiceConfigError, parse_service_config
from grpcpy._channel.target import Address
from grpcpy._protos.orca_load_report_pb import OrcaLoadReport
from grpcpy._protos.orca_service_pb import OrcaLoadReportRequest


# ---------------------------------------------------------------- config

def test_config_defaults():
    c = wrr.WrrConfig.parse({})
    assert (c.enable_oob, c.oob_period, c.blackout, c.expiration, c.update_period, c.penalty) == (
        False, 10.0, 10.0, 180.0, 1.0, 1.0)


def test_config_fields():
    c = wrr.WrrConfig.parse({"enableOobLoadReport": True, "oobReportingPeriod": "2.5s", "blackoutPeriod": "0s",
                             "weightExpirationPeriod": "60s", "weightUpdatePeriod": "0.2s",
                             "errorUtilizationPenalty": 0.5})
    assert (c.enable_oob, c.oob_period, c.blackout, c.expiration, c.update_period, c.penalty) == (
        True, 2.5, 0.0, 60.0, 0.2, 0.5)


def test_config_update_period_has_a_floor():
    assert wrr.WrrConfig.parse({"weightUpdatePeriod": "0.01s"}).update_period == 0.1
    assert wrr.WrrConfig(update_period=0).update_period == 0.1


@pytest.mark.parametrize("raw, words", [
    ({"errorUtilizationPenalty": -1}, "errorUtilizationPenalty"),
    ({"errorUtilizationPenalty": "x"}, "errorUtilizationPenalty"),
    ({"blackoutPeriod": "10"}, "blackoutPeriod"),
    ({"weightUpdatePeriod": "-1s"}, "weightUpdatePeriod"),
    ({"enableOobLoadReport": "yes"}, "enableOobLoadReport"),
    ([], "not an object"),
])
def test_config_rejected(raw, words):
    with pytest.raises(ValueError, match=words):
        wrr.WrrConfig.parse(raw)


def test_config_rejection_names_every_bad_field():
    with pytest.raises(ValueError) as caught:
        wrr.WrrConfig.parse({"blackoutPeriod": 3, "errorUtilizationPenalty": -2})
    assert "blackoutPeriod" in str(caught.value) and "errorUtilizationPenalty" in str(caught.value)


# ---------------------------------------------------------------- weights

def test_report_weight():
    r = OrcaLoadReport(rps_fractional=100, cpu_utilization=0.5)
    assert wrr.report_weight(r, 1.0) == 200
    # application utilization is preferred to the CPU's
    r = OrcaLoadReport(rps_fractional=100, cpu_utilization=0.5, application_utilization=0.25)
    assert wrr.report_weight(r, 1.0) == 400
    # errors add eps / qps * penalty to the utilization
    r = OrcaLoadReport(rps_fractional=100, cpu_utilization=0.5, eps=50)
    assert wrr.report_weight(r, 1.0) == 100
    assert wrr.report_weight(r, 0.0) == 200
    assert wrr.report_weight(r, 2.0) == pytest.approx(100 / 1.5)
    # no qps or no utilization: says nothing
    assert wrr.report_weight(OrcaLoadReport(cpu_utilization=0.5), 1.0) == 0
    assert wrr.report_weight(OrcaLoadReport(rps_fractional=10), 1.0) == 0


class _Policy:
    def __init__(self, **kw):
        self.config = wrr.WrrConfig(**kw)


def test_weight_blackout_then_expiration():
    policy = _Policy(blackout=10, expiration=180)
    w = wrr.EndpointWeight(policy)
    c = policy.config
    assert w.get(0, c) == 0
    w.update(100, OrcaLoadReport(rps_fractional=10, cpu_utilization=0.5))
    assert w.get(105, c) == 0           # blacked out
    w.update(108, OrcaLoadReport(rps_fractional=10, cpu_utilization=0.25))
    assert w.get(110, c) == 40          # 10 s after the first report: the latest weight
    assert w.get(287.9, c) == 40
    assert w.get(288, c) == 0           # 180 s without a report: expired ...
    w.update(300, OrcaLoadReport(rps_fractional=10, cpu_utilization=0.5))
    assert w.get(305, c) == 0           # ... and blacked out again
    assert w.get(310, c) == 20


def test_weight_empty_reports_change_nothing():
    policy = _Policy(blackout=0)
    w = wrr.EndpointWeight(policy)
    w.update(0, OrcaLoadReport(rps_fractional=10, cpu_utilization=0.5))
    w.update(5, OrcaLoadReport())
    assert w.get(6, policy.config) == 20 and w.last_updated == 0


def test_weight_reset_on_reconnect_starts_a_new_blackout():
    policy = _Policy(blackout=10)
    w = wrr.EndpointWeight(policy)
    w.update(0, OrcaLoadReport(rps_fractional=10, cpu_utilization=0.5))
    assert w.get(10, policy.config) == 20
    w.reset()
    assert w.get(11, policy.config) == 0
    w.update(12, OrcaLoadReport(rps_fractional=10, cpu_utilization=0.5))
    assert w.get(21, policy.config) == 0 and w.get(22, policy.config) == 20


def test_weight_from_a_call_trailer():
    policy = _Policy(blackout=0)
    w = wrr.EndpointWeight(policy)
    report = OrcaLoadReport(rps_fractional=30, cpu_utilization=0.3).SerializeToString()
    w.call_done(1, 0, (("other", "x"), (wrr.TRAILER_KEY, b"\xff\xff")))     # unparseable: ignored
    assert w.get(2, policy.config) == 0
    w.call_done(1, 14, None)
    w.call_done(1, 0, (("other", "x"), (wrr.TRAILER_KEY, report)))
    assert w.get(2, policy.config) == pytest.approx(100)


# ---------------------------------------------------------------- scheduling

def _counts(scheduler, n):
    return collections.Counter(scheduler.pick() for _ in range(n))


def test_edf_follows_the_weights_exactly():
    s = wrr.EdfScheduler([1, 2, 4], random=lambda: 0.0)
    counts = _counts(s, 7 * 100)
    assert counts == {0: 100, 1: 200, 2: 400}


def test_edf_spreads_picks_within_a_round():
    # every window of one round holds each index about its share, not a run of one
    s = wrr.EdfScheduler([3, 1], random=lambda: 0.5)
    picks = [s.pick() for _ in range(40)]
    for start in range(0, 40, 4):
        assert picks[start:start + 4].count(0) in (2, 3, 4)
    assert max(len(list(g)) for k, g in itertools.groupby(picks) if k == 1) == 1


def test_edf_random_start():
    s = wrr.EdfScheduler([1, 1, 1], random=iter([0.9, 0.1, 0.5]).__next__)
    assert [s.pick() for _ in range(3)] == [1, 2, 0]


def test_build_scheduler_rules():
    assert wrr.build_scheduler([]) is None
    assert wrr.build_scheduler([0, 0, 5]) is None            # fewer than two weights
    assert wrr.build_scheduler([5, 5, 0]) is None            # the unknown gets the mean: all equal
    s = wrr.build_scheduler([1, 3, 0], random=lambda: 0.0)   # the unknown gets 2
    assert _counts(s, 600) == {0: 100, 1: 300, 2: 200}


# ---------------------------------------------------------------- the policy on a plane

A = [Address("inet", "10.0.0.%d" % i, 1) for i in (1, 2, 3)]
TARGET = "ipv4:10.0.0.1:1,10.0.0.2:1,10.0.0.3:1"


def _plane(target=TARGET, **config):
    config.setdefault("blackoutPeriod", "5s")
    raw = json.dumps({"loadBalancingConfig": [{"weighted_round_robin": config}]})
    return ChannelPlane(target, [("grpc.service_config", raw)], random=lambda: 0.0)


def _connect(p, now=0.0):
    """Every connect succeeds: the sub_ids in address order."""
    p.request_connection(now)
    ids = {}
    for action in p.take_actions():
        if action[0] == "connect":
            ids[action[2]] = action[1]
    for address in A:
        if address in ids:
            p.connect_succeeded(now, ids[address])
    return [ids.get(a) for a in A]


def _trailer(cpu, qps=100.0, eps=0.0):
    return ((wrr.TRAILER_KEY, OrcaLoadReport(cpu_utilization=cpu, rps_fractional=qps, eps=eps).SerializeToString()),)


def _report_all(p, now, loads):
    """One call to each backend, ended with its load report."""
    seen = set()
    while len(seen) < len(loads):
        sub_id, done = p.pick()
        if sub_id not in seen:
            seen.add(sub_id)
            done(now, 0, _trailer(loads[sub_id]))
        else:
            done(now, None, None)       # a pick not used after all


def _spread(p, n):
    counts = collections.Counter()
    for _ in range(n):
        picked = p.pick()
        counts[picked[0] if isinstance(picked, tuple) else picked] += 1
    return counts


def test_chosen_by_name_and_config_validated():
    p = ChannelPlane(TARGET, [("grpc.lb_policy_name", "weighted_round_robin")])
    assert p._policy.name == "weighted_round_robin" and p._policy.config == wrr.WrrConfig()
    with pytest.raises(ServiceConfigError, match="loadBalancingConfig.*errorUtilizationPenalty"):
        parse_service_config(json.dumps({"loadBalancingConfig": [
            {"weighted_round_robin": {"errorUtilizationPenalty": -1}}]}))


def test_rotates_until_weights_are_known_then_follows_them():
    p = _plane()
    s1, s2, s3 = _connect(p)
    assert p.state == READY
    # no weights yet: round robin, each pick with its done
    picks = [p.pick() for _ in range(6)]
    assert all(callable(done) for _, done in picks)
    assert [sub_id for sub_id, _ in picks] == [s1, s2, s3] * 2
    for _, done in picks:
        done(0.0, None, None)
    assert p.next_timer() == 1.0
    loads = {s1: 0.2, s2: 0.4, s3: 0.8}
    _report_all(p, 0.5, loads)
    p.timer(1.0)                # rebuilt, but the reports are in their blackout
    assert p._policy.weighted == 0 and _spread(p, 30) == {s1: 10, s2: 10, s3: 10}
    assert p.next_timer() == 2.0
    _report_all(p, 5.0, loads)
    p.timer(5.4)                # still 0.1 s short of the blackout's end (5 s from 0.5)
    assert p._policy.weighted == 0 and p.next_timer() == 6.4
    p.timer(6.4)
    assert p._policy.weighted == 3
    assert _spread(p, 700) == {s1: 400, s2: 200, s3: 100}


def test_errors_lower_a_weight():
    p = _plane(blackoutPeriod="0s", errorUtilizationPenalty=1.0)
    s1, s2, s3 = _connect(p)
    # the same qps and cpu; s3 fails half its calls: utilization 0.5 + 0.5
    for sub_id, eps in ((s1, 0), (s2, 0), (s3, 50)):
        while True:
            picked, done = p.pick()
            if picked == sub_id:
                done(0.0, 0, _trailer(0.5, 100, eps))
                break
            done(0.0, None, None)
    p.timer(1.0)
    assert _spread(p, 500) == {s1: 200, s2: 200, s3: 100}


def test_weights_expire_and_then_need_a_new_blackout():
    p = _plane(blackoutPeriod="1s", weightExpirationPeriod="10s")
    s1, s2, s3 = _connect(p)
    _report_all(p, 0.0, {s1: 0.25, s2: 0.5, s3: 0.5})
    p.timer(1.0)
    assert _spread(p, 400) == {s1: 200, s2: 100, s3: 100}
    p.timer(10.0)               # nothing reported for 10 s: plain rotation again
    assert p._policy.weighted == 0 and _spread(p, 30) == {s1: 10, s2: 10, s3: 10}
    _report_all(p, 10.5, {s1: 0.25, s2: 0.5, s3: 0.5})
    p.timer(11.0)               # fresh reports, in a new blackout
    assert p._policy.weighted == 0
    p.timer(12.0)
    assert p._policy.weighted == 3


def test_reconnected_backend_gets_a_new_blackout_and_others_keep_theirs():
    p = _plane(blackoutPeriod="1s")
    s1, s2, s3 = _connect(p)
    _report_all(p, 0.0, {s1: 0.25, s2: 0.5, s3: 0.5})
    p.timer(1.0)
    assert p._policy.weighted == 3
    p.connection_lost(1.5, s1)          # the schedule drops it at once ...
    (action,) = [a for a in p.take_actions() if a[0] == "connect"]
    assert action[2] == A[0] and set(_spread(p, 10)) == {s2, s3}
    p.connect_succeeded(1.6, action[1])
    new1 = action[1]
    assert p._policy.weighted == 2      # ... and counts it again without weight
    assert _spread(p, 300) == {new1: 100, s2: 100, s3: 100}
    _report_all(p, 1.7, {new1: 0.25, s2: 0.5, s3: 0.5})
    p.timer(2.6)                        # its blackout runs to 2.7
    assert p._policy.weighted == 2
    p.timer(3.6)
    assert _spread(p, 400) == {new1: 200, s2: 100, s3: 100}


def test_fewer_than_two_ready_needs_no_timer():
    p = _plane(target="ipv4:10.0.0.1:1")
    p.request_connection(0.0)
    (action,) = p.take_actions()
    p.connect_succeeded(0.0, action[1])
    sub_id, done = p.pick()
    assert sub_id == action[1] and p.next_timer() == math.inf
    done(0.0, 0, _trailer(0.5))


def test_weights_survive_an_address_update_with_new_attributes():
    p = _plane(blackoutPeriod="0s")
    s1, s2, s3 = _connect(p)
    _report_all(p, 0.0, {s1: 0.25, s2: 0.5, s3: 0.5})
    p.timer(1.0)
    policy = p._policy
    policy.update_addresses(1.5, [Address.ip("10.0.0.%d" % i, 1, weight=i) for i in (1, 2, 3)])
    assert p.take_actions() == []       # the same subchannels and connections
    assert policy.subchannels[2].address.attributes["weight"] == 3
    p.timer(2.0)
    assert _spread(p, 400) == {s1: 200, s2: 100, s3: 100}


def test_sticky_transient_failure_as_round_robin():
    p = _plane()
    p.request_connection(0.0)
    ids = [a[1] for a in p.take_actions() if a[0] == "connect"]
    for sub_id in ids[:2]:
        p.connect_failed(0.1, sub_id, "refused")
    assert p.state == CONNECTING
    p.connect_failed(0.2, ids[2], "refused")
    assert p.state == TRANSIENT_FAILURE and p.last_error.endswith("refused")
    assert p.pick() is None


def test_out_of_band_reports():
    p = _plane(enableOobLoadReport=True, oobReportingPeriod="2.5s", blackoutPeriod="0s")
    p.request_connection(0.0)
    ids = [a[1] for a in p.take_actions() if a[0] == "connect"]
    for sub_id in ids:
        p.connect_succeeded(0.0, sub_id)
    streams = [a[1] for a in p.take_actions() if a[0] == "stream"]
    assert [s.sub_id for s in streams] == ids
    assert {s.method for s in streams} == {orca.METHOD}
    request = OrcaLoadReportRequest.FromString(streams[0].request)
    assert request.report_interval.ToNanoseconds() == 2_500_000_000
    assert p.pick() in ids              # no per-call report asked for
    for stream, cpu in zip(streams, (0.2, 0.4, 0.8)):
        stream.on_message(0.5, OrcaLoadReport(cpu_utilization=cpu, rps_fractional=10).SerializeToString())
    streams[0].on_message(0.5, b"\xff\xff")     # a bad report changes nothing
    p.timer(1.0)
    assert _spread(p, 700) == {ids[0]: 400, ids[1]: 200, ids[2]: 100}
    # a lost connection's stream is cancelled; reconnected, a new one opens
    p.connection_lost(2.0, ids[0])
    actions = p.take_actions()
    assert ("cancel_stream", streams[0]) in actions
    (connect,) = [a for a in actions if a[0] == "connect"]
    p.connect_succeeded(2.1, connect[1])
    (again,) = [a[1] for a in p.take_actions() if a[0] == "stream"]
    assert again.sub_id == connect[1]
    # per-call reporting again: the streams go
    p._policy.update_config(3.0, wrr.WrrConfig(blackout=0))
    cancelled = [a[1] for a in p.take_actions() if a[0] == "cancel_stream"]
    assert set(cancelled) == {again, streams[1], streams[2]}
    assert isinstance(p.pick(), tuple)


def test_a_stream_the_server_ends_opens_again_after_a_backoff():
    p = _plane(enableOobLoadReport=True, blackoutPeriod="0s", weightUpdatePeriod="100s")
    _connect(p)
    streams = [a[1] for a in p.take_actions() if a[0] == "stream"]
    assert p.next_timer() == 100.0
    streams[0].on_end(1.0, 13, "internal")          # the connection stays up
    assert p.next_timer() == pytest.approx(1.8)     # 1 s, jitter -20 % (random() is 0 here)
    p.timer(1.8)
    (again,) = [a[1] for a in p.take_actions() if a[0] == "stream"]
    assert again.sub_id == streams[0].sub_id
    again.on_end(2.0, 13, "internal")               # failing again: a longer wait
    assert p.next_timer() == pytest.approx(2.0 + 1.6 * 0.8)
    p.timer(4.0)
    (third,) = [a[1] for a in p.take_actions() if a[0] == "stream"]
    third.on_message(4.1, OrcaLoadReport(cpu_utilization=0.5, rps_fractional=1).SerializeToString())
    third.on_end(5.0, 0, "")                        # a report came: the backoff starts over
    assert p.next_timer() == pytest.approx(5.8)
    # no ORCA service on that backend: not asked again
    streams[1].on_end(5.0, 12, "unimplemented")
    assert p.next_timer() == pytest.approx(5.8)
    p.timer(5.8)
    assert len([a for a in p.take_actions() if a[0] == "stream"]) == 1


def test_idle_cancels_the_streams_and_their_retries():
    p = _plane(enableOobLoadReport=True, blackoutPeriod="0s")
    _connect(p)
    streams = [a[1] for a in p.take_actions() if a[0] == "stream"]
    streams[0].on_end(1.0, 13, "internal")
    p.enter_idle(1.5)
    cancelled = [a[1] for a in p.take_actions() if a[0] == "cancel_stream"]
    assert set(cancelled) == {streams[1], streams[2]}
    assert p.state == IDLE and p.pick() is None and p.next_timer() == math.inf
    _connect(p, 3.0)       # connected again: new streams
    assert len([a for a in p.take_actions() if a[0] == "stream"]) == 3 and p.state == READY


# ---------------------------------------------------------------- real backends

# CPU 0.2 / 0.4 / 0.8 at equal qps: weights 4 : 2 : 1
BACKENDS = [("127.0.0.2", 0.2, grpcpy), ("127.0.0.3", 0.4, grpc), ("127.0.0.4", 0.8, grpcpy)]


@pytest.fixture(scope="module")
def backends():
    started = []
    for host, cpu, api in BACKENDS:
        recorder = orca.ServerMetricsRecorder()
        recorder.set_cpu_utilization(cpu)
        recorder.set_qps(100)
        server = api.server(futures.ThreadPoolExecutor(4), interceptors=[orca.ServerInterceptor(recorder)])
        server.add_generic_rpc_handlers((api.method_handlers_generic_handler("test.Who", {
            "Who": api.unary_unary_rpc_method_handler(lambda request, context, host=host: host.encode())}),))
        orca.add_orca_service(server, recorder, min_report_interval=0.05)
        port = server.add_insecure_port("%s:0" % host)
        server.start()
        started.append((server, "%s:%d" % (host, port)))
    yield [address for _, address in started]
    for server, _ in started:
        server.stop(None)


def _policy(channel):
    return channel._plane._policy


def _service_config(oob):
    config = {"blackoutPeriod": "0s", "weightUpdatePeriod": "0.1s"}
    if oob:
        config.update(enableOobLoadReport=True, oobReportingPeriod="0.05s")
    return [("grpc.service_config", json.dumps({"loadBalancingConfig": [{"weighted_round_robin": config}]}))]


def _check_shares(counts, backends):
    shares = [counts[address.split(":")[0].encode()] / sum(counts.values()) for address in backends]
    for share, expected in zip(shares, (4 / 7, 2 / 7, 1 / 7)):
        assert abs(share - expected) < 0.05, shares


@pytest.mark.parametrize("oob", [False, True], ids=["per-call", "out-of-band"])
def test_spread_follows_the_reported_utilisation(backends, oob):
    with grpcpy.insecure_channel("ipv4:" + ",".join(backends), options=_service_config(oob)) as channel:
        who = channel.unary_unary("/test.Who/Who")
        who(b"", timeout=10)
        policy = channel._plane._policy
        assert policy.name == "weighted_round_robin"
        # until the schedule weighs all three (a bound against hangs, not a timing check)
        end = time.monotonic() + 20
        while policy.weighted < 3 and time.monotonic() < end:
            if oob:
                time.sleep(0.01)
            else:
                who(b"", timeout=10)     # per-call reports come with calls
        assert policy.weighted == 3
        counts = collections.Counter(who(b"", timeout=10) for _ in range(700))
    _check_shares(counts, backends)


@pytest.mark.parametrize("oob", [False, True], ids=["per-call", "out-of-band"])
def test_spread_follows_the_reported_utilisation_aio(backends, oob):
    async def run():
        async with grpcpy.aio.insecure_channel("ipv4:" + ",".join(backends), options=_service_config(oob)) as ch:
            who = ch.unary_unary("/test.Who/Who")
            await who(b"", timeout=10)
            policy = ch._plane._policy
            end = time.monotonic() + 20
            while policy.weighted < 3 and time.monotonic() < end:
                if oob:
                    await asyncio.sleep(0.01)
                else:
                    await who(b"", timeout=10)
            assert policy.weighted == 3
            return collections.Counter([await who(b"", timeout=10) for _ in range(700)])
    _check_shares(asyncio.run(run()), backends)


def test_backend_stopped_mid_run_loses_no_call():
    started = []
    for host, cpu in (("127.0.0.2", 0.2), ("127.0.0.3", 0.4), ("127.0.0.4", 0.8)):
        recorder = orca.ServerMetricsRecorder()
        recorder.set_cpu_utilization(cpu)
        recorder.set_qps(100)
        server = grpcpy.server(futures.ThreadPoolExecutor(2), interceptors=[orca.ServerInterceptor(recorder)])
        server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler("test.Who", {
            "Who": grpcpy.unary_unary_rpc_method_handler(lambda request, context, host=host: host.encode())}),))
        port = server.add_insecure_port("%s:0" % host)
        server.start()
        started.append((server, "%s:%d" % (host, port)))
    try:
        target = "ipv4:" + ",".join(address for _, address in started)
        with grpcpy.insecure_channel(target, options=_service_config(False)) as channel:
            who = channel.unary_unary("/test.Who/Who")
            for _ in range(100):
                who(b"", timeout=10)
            started[0][0].stop(None).wait(10)
            # every call after the stop succeeds, on the two left, weighted 2 : 1
            after = collections.Counter(who(b"", timeout=10) for _ in range(600))
    finally:
        for server, _ in started:
            server.stop(None)
    assert set(after) <= {b"127.0.0.3", b"127.0.0.4"} and sum(after.values()) == 600
    assert abs(after[b"127.0.0.3"] / 600 - 2 / 3) < 0.07, after
