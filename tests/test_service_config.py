"""The service config's parsing (doc/service_config.md, gRFC A6), method
matching, the retry throttle and the DNS TXT choice (gRFC A2), without I/O;
grpcio says what a bad config's error names."""
import asyncio
import json
import re

import grpc
import pytest

import grpcpy
import grpcpy.aio
from grpcpy._options import ChannelOptions
from grpcpy._channel.service_config import (EMPTY, RetryThrottle, ServiceConfigError, choose_from_txt,
                                            parse_service_config)

RETRY = {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2,
         "retryableStatusCodes": ["UNAVAILABLE"]}


def _with_retry(**changes):
    policy = dict(RETRY, **changes)
    for key in [k for k, v in policy.items() if v is None]:
        del policy[key]
    return {"methodConfig": [{"name": [{"service": "a"}], "retryPolicy": policy}]}


def _method(**fields):
    return {"methodConfig": [{"name": [{"service": "a"}], **fields}]}


# ---------------------------------------------------------------- valid configs

def test_the_spec_example():
    # doc/service_config.md's example, with A6's policies
    config = parse_service_config(json.dumps({
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {"name": [{"service": "foo", "method": "bar"}, {"service": "baz"}], "timeout": "1.000000001s"},
            {"name": [{"service": "foo"}], "waitForReady": True, "maxRequestMessageBytes": "1024",
             "maxResponseMessageBytes": 2048,
             "retryPolicy": {"maxAttempts": 9, "initialBackoff": "0.5s", "maxBackoff": "30s",
                             "backoffMultiplier": "1.5", "retryableStatusCodes": ["UNAVAILABLE", "ABORTED"]}},
            {"name": [{"service": "h"}],
             "hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "0.25s", "nonFatalStatusCodes": ["INTERNAL"]}},
        ],
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
        "healthCheckConfig": {"serviceName": "svc"},
        "somethingNew": {"ignored": True},
    }))
    assert config.lb_config_names == ["round_robin"]
    assert config.health_check_service == "svc"
    assert (config.retry_throttling.max_tokens, config.retry_throttling.token_ratio) == (10, 0.1)
    bar = config.method_config("/foo/bar")
    assert bar.timeout == pytest.approx(1.000000001) and bar.retry is None
    assert config.method_config("/baz/anything") is bar
    foo = config.method_config("/foo/other")
    assert (foo.wait_for_ready, foo.max_request_bytes, foo.max_response_bytes, foo.timeout) == (True, 1024, 2048, None)
    retry = foo.retry
    assert retry.max_attempts == 5          # capped (gRFC A6)
    assert (retry.initial_backoff, retry.max_backoff, retry.backoff_multiplier) == (0.5, 30.0, 1.5)
    assert retry.retryable_codes == {grpc.StatusCode.UNAVAILABLE.value[0], grpc.StatusCode.ABORTED.value[0]}
    hedging = config.method_config("/h/m").hedging
    assert (hedging.max_attempts, hedging.hedging_delay, hedging.non_fatal_codes) == (3, 0.25, {13})
    assert config.method_config("/other/m") is None


def test_the_most_specific_name_wins():
    config = parse_service_config(json.dumps({"methodConfig": [
        {"name": [{}], "timeout": "1s"},
        {"name": [{"service": "s"}], "timeout": "2s"},
        {"name": [{"service": "s", "method": "m"}], "timeout": "3s"},
    ]}))
    assert config.method_config("/s/m").timeout == 3.0
    assert config.method_config("/s/n").timeout == 2.0
    assert config.method_config("/t/m").timeout == 1.0
    assert config.method_config(b"/s/m").timeout == 3.0       # as the call layer has it
    # {"service": ""} is the default too
    default = parse_service_config('{"methodConfig": [{"name": [{"service": ""}], "waitForReady": true}]}')
    assert default.method_config("/any/thing").wait_for_ready is True
    assert EMPTY.method_config("/s/m") is None


def test_older_and_empty_fields():
    assert parse_service_config('{"loadBalancingPolicy": "ROUND_ROBIN"}').lb_config_names == ["round_robin"]
    config = parse_service_config("{}")
    assert (config.lb_config_names, config.retry_throttling, config.health_check_service) == (None, None, None)
    # a zero timeout is no timeout (grpc-core); maxTokens above 1000 is 1000
    assert parse_service_config(json.dumps(_method(timeout="0s"))).method_config("/a/m").timeout is None
    throttling = parse_service_config('{"retryThrottling": {"maxTokens": 5000, "tokenRatio": 1.2345}}')
    assert (throttling.retry_throttling.max_tokens, throttling.retry_throttling.token_ratio) == (1000, 1.234)


# ---------------------------------------------------------------- invalid configs

# Each names the field as grpc-core does: grpcio fails its calls with exactly this.
SAME_AS_GRPCIO = [
    (_with_retry(maxAttempts=1), "methodConfig[0].retryPolicy.maxAttempts error:must be at least 2"),
    (_with_retry(maxAttempts=None), "methodConfig[0].retryPolicy.maxAttempts error:field not present"),
    (_with_retry(initialBackoff="0s"), "methodConfig[0].retryPolicy.initialBackoff error:must be greater than 0"),
    (_with_retry(initialBackoff="1"), "methodConfig[0].retryPolicy.initialBackoff error:Not a duration (no s suffix)"),
    (_with_retry(maxBackoff="0s"), "methodConfig[0].retryPolicy.maxBackoff error:must be greater than 0"),
    (_with_retry(backoffMultiplier=0), "methodConfig[0].retryPolicy.backoffMultiplier error:must be greater than 0"),
    (_with_retry(retryableStatusCodes=[]), "methodConfig[0].retryPolicy.retryableStatusCodes error:must be non-empty"),
    (_with_retry(retryableStatusCodes=["NOPE"]),
     "methodConfig[0].retryPolicy.retryableStatusCodes error:must be non-empty; "
     "field:methodConfig[0].retryPolicy.retryableStatusCodes[0] error:failed to parse status code"),
    (_with_retry(retryableStatusCodes=[14]),
     "methodConfig[0].retryPolicy.retryableStatusCodes error:must be non-empty; "
     "field:methodConfig[0].retryPolicy.retryableStatusCodes[0] error:is not a string"),
    ({"methodConfig": [{"name": [{"method": "m"}]}]},
     "methodConfig[0].name[0] error:method name populated without service name"),
    ({"methodConfig": [{"name": [{"service": "a"}]}, {"name": [{"service": "a"}]}]},
     "methodConfig[1].name[0] error:multiple method configs for path /a/"),
    ({"methodConfig": [{"name": [{}]}, {"name": [{"service": ""}]}]},
     "methodConfig[1].name[0] error:duplicate default method config"),
    ({"methodConfig": {}}, "methodConfig error:is not an array"),
    ({"methodConfig": [{"name": {}}]}, "methodConfig[0].name error:is not an array"),
    ({"methodConfig": [{"name": [{"service": 1}]}]}, "methodConfig[0].name[0].service error:is not a string"),
    (_method(timeout="abc"), "methodConfig[0].timeout error:Not a duration (no s suffix)"),
    (_method(timeout="-1s"), "methodConfig[0].timeout error:seconds must be in the range [0, 315576000000]"),
    (_method(timeout="1.0000000001s"), "methodConfig[0].timeout error:Not a duration (too many digits after decimal)"),
    (_method(timeout=1), "methodConfig[0].timeout error:is not a string"),
    (_method(waitForReady="yes"), "methodConfig[0].waitForReady error:is not a boolean"),
    (_method(maxRequestMessageBytes=-1),
     "methodConfig[0].maxRequestMessageBytes error:failed to parse non-negative number"),
    (_method(maxResponseMessageBytes="x"),
     "methodConfig[0].maxResponseMessageBytes error:failed to parse non-negative number"),
    ({"retryThrottling": {"maxTokens": 0, "tokenRatio": 1}},
     "retryThrottling.maxTokens error:must be greater than 0"),
    ({"retryThrottling": {"maxTokens": 10, "tokenRatio": 0}},
     "retryThrottling.tokenRatio error:must be greater than 0"),
    ({"retryThrottling": {"maxTokens": 10, "tokenRatio": 0.0001}},
     "retryThrottling.tokenRatio error:must be greater than 0"),
    ({"retryThrottling": {"maxTokens": 10}}, "retryThrottling.tokenRatio error:field not present"),
    ({"loadBalancingConfig": [{"a": {}, "b": {}}]}, "loadBalancingConfig error:oneOf violation"),
    ({"loadBalancingConfig": "x"}, "loadBalancingConfig error:type should be array"),
    ({"loadBalancingConfig": [{"nope": {}}]}, "loadBalancingConfig error:No known policies in list: nope"),
    ({"loadBalancingPolicy": "nope"}, 'loadBalancingPolicy error:unknown LB policy "nope"'),
    ({"healthCheckConfig": {"serviceName": 1}}, "healthCheckConfig.serviceName error:is not a string"),
]


def _message(field_error):
    return "errors validating service config: [field:%s]" % field_error


@pytest.mark.parametrize("config, field_error", SAME_AS_GRPCIO)
def test_an_invalid_config_names_its_field(config, field_error):
    with pytest.raises(ServiceConfigError) as info:
        parse_service_config(json.dumps(config))
    assert str(info.value) == _message(field_error)


def test_grpcio_names_the_same_fields():
    # grpcio makes a lame channel whose calls fail with the message
    for config, field_error in SAME_AS_GRPCIO:
        options = [("grpc.service_config", json.dumps(config)), ("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel("127.0.0.1:1", options) as channel:
            with pytest.raises(grpc.RpcError) as info:
                channel.unary_unary("/a/m")(b"", timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == "Failed to create channel to '127.0.0.1:1':" + _message(field_error)


@pytest.mark.parametrize("config, field_error", [
    # gRFC A6 (grpc-core does not parse hedging)
    ({"methodConfig": [{"name": [{"service": "a"}], "retryPolicy": RETRY,
                        "hedgingPolicy": {"maxAttempts": 2}}]},
     "methodConfig[0] error:retryPolicy and hedgingPolicy are mutually exclusive"),
    (_method(hedgingPolicy={"maxAttempts": 1}), "methodConfig[0].hedgingPolicy.maxAttempts error:must be at least 2"),
    (_method(hedgingPolicy={"maxAttempts": 2, "hedgingDelay": "1"}),
     "methodConfig[0].hedgingPolicy.hedgingDelay error:Not a duration (no s suffix)"),
    (_method(hedgingPolicy={"maxAttempts": 2, "nonFatalStatusCodes": ["X"]}),
     "methodConfig[0].hedgingPolicy.nonFatalStatusCodes[0] error:failed to parse status code"),
    ({"methodConfig": [1]}, "methodConfig[0] error:is not an object"),
])
def test_invalid_hedging_and_shapes(config, field_error):
    with pytest.raises(ServiceConfigError) as info:
        parse_service_config(json.dumps(config))
    assert str(info.value) == _message(field_error)


def test_every_error_is_reported():
    config = {"methodConfig": [{"name": [{"service": "a"}], "timeout": 1, "waitForReady": 0}],
              "retryThrottling": {"maxTokens": -1, "tokenRatio": 1}}
    with pytest.raises(ServiceConfigError) as info:
        parse_service_config(json.dumps(config))
    assert str(info.value) == _message("methodConfig[0].timeout error:is not a string; "
                                       "field:methodConfig[0].waitForReady error:is not a boolean; "
                                       "field:retryThrottling.maxTokens error:must be greater than 0")


@pytest.mark.parametrize("text", ["not json", "[1]", "", "{"])
def test_not_a_json_object(text):
    with pytest.raises(ServiceConfigError):
        parse_service_config(text)


# ---------------------------------------------------------------- channels

BAD = json.dumps(_with_retry(maxAttempts=1))
BAD_FIELD = "methodConfig[0].retryPolicy.maxAttempts"


def _sync_channel(options, tls=False):
    if tls:
        channel = grpcpy.secure_channel("localhost:1", grpcpy.ssl_channel_credentials(), options)
    else:
        channel = grpcpy.insecure_channel("localhost:1", options)
    with channel:
        return channel._plane.service_config


def _aio_channel(options, tls=False):
    async def make():
        if tls:
            channel = grpcpy.aio.secure_channel("localhost:1", grpcpy.ssl_channel_credentials(), options)
        else:
            channel = grpcpy.aio.insecure_channel("localhost:1", options)
        async with channel:
            return channel._plane.service_config
    return asyncio.run(make())


@pytest.mark.parametrize("make", [
    _sync_channel, lambda options: _sync_channel(options, tls=True),
    _aio_channel, lambda options: _aio_channel(options, tls=True),
], ids=["sync", "sync-tls", "aio", "aio-tls"])
def test_an_invalid_user_config_fails_channel_creation(make):
    expected = re.escape("errors validating service config: [field:%s error:must be at least 2]" % BAD_FIELD)
    with pytest.raises(ValueError, match=expected):
        make([("grpc.service_config", BAD)])
    # a valid one makes a channel
    config = make([("grpc.service_config", json.dumps(_with_retry()))])
    assert config.method_config("/a/m").retry.max_attempts == 3


def test_retry_options():
    options = ChannelOptions(None)
    assert (options.enable_retries, options.per_rpc_retry_buffer_size, options.retry_buffer_size) == (
        True, 256 * 1024, 16 * 1024 * 1024)
    assert options.service_config is None and options.service_config_disable_resolution is None
    options = ChannelOptions([("grpc.enable_retries", 0), ("grpc.per_rpc_retry_buffer_size", 1000),
                              ("grpc.retry_buffer_size", 5000), ("grpc.service_config_disable_resolution", 1),
                              ("grpc.service_config", json.dumps(_with_retry()))])
    assert (options.enable_retries, options.per_rpc_retry_buffer_size, options.retry_buffer_size) == (
        False, 1000, 5000)
    assert options.service_config_disable_resolution is True
    assert options.service_config.method_config("/a/m").retry.max_attempts == 3


# ---------------------------------------------------------------- retry throttle

def test_retry_throttle_token_bucket():
    throttle = RetryThrottle(10, 0.5)
    assert throttle.tokens == 10 and throttle.allows_retry()
    for _ in range(4):
        throttle.record_failure()
    assert throttle.tokens == 6 and throttle.allows_retry()
    throttle.record_failure()           # 5: not more than half
    assert throttle.tokens == 5 and not throttle.allows_retry()
    throttle.record_success()           # 5.5
    assert throttle.allows_retry()
    for _ in range(20):
        throttle.record_failure()
    assert throttle.tokens == 0         # never below empty
    for _ in range(100):
        throttle.record_success()
    assert throttle.tokens == 10        # never above full


def test_retry_throttle_counts_thousandths_exactly():
    throttle = RetryThrottle(3, 0.001)
    throttle.record_failure()
    throttle.record_failure()           # 1: not allowed
    for _ in range(500):
        throttle.record_success()       # + 0.5 exactly
    assert throttle.tokens == 1.5 and not throttle.allows_retry()
    throttle.record_success()
    assert throttle.allows_retry()
    assert RetryThrottle.of(None) is None


# ---------------------------------------------------------------- DNS TXT choice (gRFC A2)

def _txt(choices):
    return ["other=1", "grpc_config=" + json.dumps(choices)]


def test_txt_choice():
    one = {"methodConfig": [{"name": [{}], "timeout": "1s"}]}
    two = {"methodConfig": [{"name": [{}], "timeout": "2s"}]}
    never = lambda: 0.99    # noqa: E731
    always = lambda: 0.0    # noqa: E731
    assert choose_from_txt(["v=spf1"], "h", always) is None
    assert choose_from_txt(_txt([{"serviceConfig": one}]), "h", never) == one
    assert choose_from_txt(_txt([{"clientLanguage": ["go", "c++"], "serviceConfig": one},
                                 {"clientLanguage": ["Python"], "serviceConfig": two}]), "h", never) == two
    assert choose_from_txt(_txt([{"clientHostname": ["other"], "serviceConfig": one},
                                 {"clientHostname": ["me"], "serviceConfig": two}]), "me", never) == two
    assert choose_from_txt(_txt([{"percentage": 50, "serviceConfig": one},
                                 {"serviceConfig": two}]), "h", never) == two
    assert choose_from_txt(_txt([{"percentage": 50, "serviceConfig": one}]), "h", always) == one
    assert choose_from_txt(_txt([{"percentage": 0, "serviceConfig": one}]), "h", always) is None
    assert choose_from_txt(_txt([{"clientLanguage": ["java"], "serviceConfig": one}]), "h", always) is None


@pytest.mark.parametrize("records, error", [
    (["grpc_config=not json"], "JSON parsing failed"),
    (["grpc_config={}"], "field:grpc_config error:is not an array"),
    (_txt([{"clientLanguage": ["python"]}]), "field:grpc_config[0].serviceConfig error:field not present"),
    (_txt([{"serviceConfig": {}, "percentage": "x"}]), "field:grpc_config[0].percentage error:failed to parse"),
])
def test_an_invalid_txt_record(records, error):
    with pytest.raises(ServiceConfigError, match=error.replace("[", r"\[").replace("]", r"\]")):
        choose_from_txt(records, "h", lambda: 0.0)
