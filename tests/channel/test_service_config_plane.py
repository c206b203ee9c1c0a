"""The service config in the channel plane, without I/O: the resolver's
config and the user's default (precedence), gRFC A21's handling of invalid
configs, the DNS TXT choice, and a config that switches the LB policy."""
import json

import pytest

from grpcpy._channel import resolver as resolver_mod
from grpcpy._channel.plane import CONNECTING, READY, TRANSIENT_FAILURE, ChannelPlane
from grpcpy._channel.service_config import EMPTY
from grpcpy._channel.target import Address, parse_target

A1 = Address("inet", "10.0.0.1", 50051)
A2 = Address("inet", "10.0.0.2", 50051)
FIXED = [("grpc.testing.fixed_reconnect_backoff_ms", 1000)]


def _config(timeout="1s", **top):
    return dict({"methodConfig": [{"name": [{"service": "s"}], "timeout": timeout}]}, **top)


def _txt(config):
    return ["grpc_config=" + json.dumps([{"clientLanguage": ["python"], "serviceConfig": config}])]


def _timeout(plane):
    found = plane.service_config.method_config("/s/m")
    return None if found is None else found.timeout


def dns_plane(target="dns://10.0.0.53/svc.test:50051", options=()):
    return ChannelPlane(parse_target(target), list(options) + FIXED, random=lambda: 0.0)


def resolve(plane, now, addresses, records):
    plane.request_connection(now)
    assert [a[0] for a in plane.take_actions()] == ["resolve"]
    plane.resolved(now, addresses, records)


@pytest.mark.parametrize("target, options, txt", [
    ("dns://10.0.0.53/svc.test:1", [], True),
    ("dns://10.0.0.53/svc.test:1", [("grpc.service_config_disable_resolution", 1)], False),
    ("dns://10.0.0.53/localhost:1", [], False),
    ("svc.test:1", [], False),                    # the system resolver: as grpcio, only when asked
    ("svc.test:1", [("grpc.service_config_disable_resolution", 0)], True),
    ("localhost:1", [("grpc.service_config_disable_resolution", 0)], False),
    ("ipv4:10.0.0.1:1", [("grpc.service_config_disable_resolution", 0)], False),
])
def test_when_txt_is_looked_up(target, options, txt):
    plane = dns_plane(target, options)
    assert plane.lookup_txt is txt
    assert plane.dns_server == parse_target(target).dns_server


def test_the_txt_config_and_its_changes():
    plane = dns_plane()
    assert plane.service_config is EMPTY and plane.config_version == 0
    resolve(plane, 0.0, [A1], _txt(_config("1s")))
    assert _timeout(plane) == 1.0 and plane.config_version == 1
    assert plane.state == CONNECTING
    # the same config again: no change
    plane.request_reresolution(100.0)
    plane.take_actions()
    plane.resolved(100.0, [A1], _txt(_config("1s")))
    assert plane.config_version == 1
    # a new one
    plane.request_reresolution(200.0)
    plane.take_actions()
    plane.resolved(200.0, [A1], _txt(_config("2s")))
    assert _timeout(plane) == 2.0 and plane.config_version == 2
    # an invalid one keeps the one in force (A21), and so does a failed TXT lookup
    for records in (_txt(_config("abc")), ["grpc_config=[not json"], None):
        plane.request_reresolution(plane._last_resolve_at + 100)
        plane.take_actions()
        plane.resolved(plane._last_resolve_at, [A1], records)
        assert _timeout(plane) == 2.0 and plane.config_version == 2
        assert plane.config_error is None
    # no TXT record: no config any more
    plane.request_reresolution(1000.0)
    plane.take_actions()
    plane.resolved(1000.0, [A1], [])
    assert plane.service_config is EMPTY and plane.config_version == 3


def test_an_invalid_first_config_fails_the_channel_until_a_good_one():
    plane = dns_plane()
    resolve(plane, 0.0, [A1], _txt(_config("abc")))
    assert plane.state == TRANSIENT_FAILURE
    assert plane.last_error == plane.config_error
    assert plane.config_error.startswith("invalid service config from the resolver of svc.test:50051: "
                                         "errors validating service config: [field:methodConfig[0].timeout")
    assert plane.take_actions() == []            # nothing to connect to yet
    # resolved again after the backoff: a good config, and the channel connects
    assert plane.next_timer() == 1.0
    plane.timer(1.0)
    assert [a[0] for a in plane.take_actions()] == ["resolve"]
    plane.resolved(1.0, [A1], _txt(_config("3s")))
    assert plane.config_error is None and _timeout(plane) == 3.0
    [(kind, sub, address, _)] = plane.take_actions()
    assert (kind, address) == ("connect", A1)
    plane.connect_succeeded(1.1, sub)
    assert plane.state == READY


def test_an_invalid_first_config_with_a_default_uses_the_default():
    default = json.dumps(_config("5s"))
    plane = dns_plane(options=[("grpc.service_config", default)])
    assert _timeout(plane) == 5.0            # in force from the start
    resolve(plane, 0.0, [A1], _txt(_config("abc")))
    assert plane.config_error is None and _timeout(plane) == 5.0
    assert plane.state == CONNECTING


def test_the_resolver_config_wins_over_the_default_unless_resolution_is_disabled():
    default = json.dumps(_config("5s"))
    plane = dns_plane(options=[("grpc.service_config", default)])
    resolve(plane, 0.0, [A1], _txt(_config("1s")))
    assert _timeout(plane) == 1.0
    plane.request_reresolution(100.0)
    plane.take_actions()
    plane.resolved(100.0, [A1], [])             # the resolver has none: the default
    assert _timeout(plane) == 5.0

    plane = dns_plane(options=[("grpc.service_config", default), ("grpc.service_config_disable_resolution", 1)])
    assert not plane.lookup_txt
    resolve(plane, 0.0, [A1], _txt(_config("1s")))
    assert _timeout(plane) == 5.0


@pytest.fixture
def scheme():
    name = "test-svc-config"
    yield name
    resolver_mod._FACTORIES.pop(name, None)


def test_an_application_resolver_gives_a_config(scheme):
    configs = {"good": _config("7s"), "bad": "{", "raises": None}

    class Fleet(resolver_mod.Resolver):
        def addresses(self):
            return [A1]

        def service_config(self):
            which = self.target.path
            if which == "raises":
                raise LookupError("config store down")
            return json.dumps(configs[which]) if isinstance(configs[which], dict) else configs[which]

    resolver_mod.register_resolver(scheme, Fleet)
    assert _timeout(ChannelPlane(parse_target(scheme + ":good"))) == 7.0
    disabled = ChannelPlane(parse_target(scheme + ":good"), [("grpc.service_config_disable_resolution", 1)])
    assert disabled.service_config is EMPTY
    for which, error in (("bad", "JSON parsing failed"), ("raises", "LookupError: config store down")):
        plane = ChannelPlane(parse_target(scheme + ":" + which))
        plane.request_connection(0.0)
        assert plane.state == TRANSIENT_FAILURE and error in plane.last_error
        assert plane.take_actions() == []
        assert plane.next_timer() == float("inf")   # an address-giving resolver is asked once


def test_retry_throttle_follows_the_config():
    plane = dns_plane()
    throttled = _config(retryThrottling={"maxTokens": 4, "tokenRatio": 0.5})
    resolve(plane, 0.0, [A1], _txt(throttled))
    throttle = plane.retry_throttle
    assert (throttle.max_tokens, throttle.token_ratio) == (4, 0.5)
    throttle.record_failure()
    plane.request_reresolution(100.0)
    plane.take_actions()
    plane.resolved(100.0, [A1], _txt(dict(throttled, methodConfig=[])))   # same throttling: same bucket
    assert plane.retry_throttle is throttle and throttle.tokens == 3
    plane.request_reresolution(200.0)
    plane.take_actions()
    plane.resolved(200.0, [A1], [])
    assert plane.retry_throttle is None


def test_a_config_naming_another_policy_switches_to_it():
    plane = dns_plane()
    resolve(plane, 0.0, [A1, A2], [])
    assert plane._policy.name == "pick_first"
    [(_, sub1, address, _)] = plane.take_actions()
    assert address == A1
    plane.connect_succeeded(0.1, sub1)
    assert plane.state == READY and plane.pick() == sub1

    # round_robin: it keeps the READY connection (no 'close') and connects the other
    plane.request_reresolution(100.0)
    plane.take_actions()
    plane.resolved(100.0, [A1, A2], _txt(_config(loadBalancingConfig=[{"round_robin": {}}])))
    assert plane._policy.name == "round_robin"
    assert plane.state == READY and plane.pick() == sub1
    [(kind, sub2, address, _)] = plane.take_actions()
    assert (kind, address) == ("connect", A2)
    plane.connect_succeeded(100.1, sub2)
    assert {plane.pick(), plane.pick()} == {sub1, sub2}

    # back to pick_first: it keeps one READY connection and closes the other
    plane.request_reresolution(200.0)
    plane.take_actions()
    plane.resolved(200.0, [A1, A2], [])
    assert plane._policy.name == "pick_first"
    assert plane.state == READY and plane.pick() == sub1
    assert plane.take_actions() == [("close", sub2)]
