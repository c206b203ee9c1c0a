"""The gRPC service config (doc/service_config.md): the parsed form the
channel and its calls read.

The shapes here are what the rest of grpcpy uses:

- the channel plane holds the config in force (``ServiceConfig``), from the
  resolver, the ``grpc.service_config`` option or the empty default;
- a call asks ``config.method_config("/pkg.Service/Method")`` once when it
  starts, for its timeout, waitForReady, size limits and its retry or
  hedging policy;
- the channel keeps one ``RetryThrottle`` (token bucket) while the config
  has ``retryThrottling``.

Durations are seconds (float); status codes are their numbers (int).

``parse_service_config`` validates a config as a whole (gRFC A21: one bad
field rejects it all, unknown fields are ignored) with grpc-core's rules and
words, so the error grpcpy raises names the field grpcio's error names;
``choose_from_txt`` picks a client's config from DNS TXT records (gRFC A2).
Where grpc-core has no rule (hedgingPolicy, which it does not parse), gRFC
A6's apply.
"""

import json
import re

__all__ = ["ServiceConfig", "MethodConfig", "RetryPolicy", "HedgingPolicy", "RetryThrottling",
           "ServiceConfigError", "EMPTY", "parse_service_config", "RetryThrottle"]

MAX_ATTEMPTS_CAP = 5     # gRFC A6: maxAttempts above this is taken as this


class ServiceConfigError(ValueError):
    """A service config that cannot be used; the message names the field."""


class RetryPolicy:
    __slots__ = ("max_attempts", "initial_backoff", "max_backoff", "backoff_multiplier", "retryable_codes")

    def __init__(self, max_attempts, initial_backoff, max_backoff, backoff_multiplier, retryable_codes):
        self.max_attempts = min(max_attempts, MAX_ATTEMPTS_CAP)
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.backoff_multiplier = backoff_multiplier
        self.retryable_codes = frozenset(retryable_codes)


class HedgingPolicy:
    __slots__ = ("max_attempts", "hedging_delay", "non_fatal_codes")

    def __init__(self, max_attempts, hedging_delay, non_fatal_codes):
        self.max_attempts = min(max_attempts, MAX_ATTEMPTS_CAP)
        self.hedging_delay = hedging_delay
        self.non_fatal_codes = frozenset(non_fatal_codes)


class RetryThrottling:
    __slots__ = ("max_tokens", "token_ratio")

    def __init__(self, max_tokens, token_ratio):
        self.max_tokens = max_tokens
        self.token_ratio = token_ratio


class MethodConfig:
    """One methodConfig entry; None means "not set" for every field."""

    __slots__ = ("timeout", "wait_for_ready", "max_request_bytes", "max_response_bytes", "retry", "hedging")

    def __init__(self, timeout=None, wait_for_ready=None, max_request_bytes=None, max_response_bytes=None,
                 retry=None, hedging=None):
        self.timeout = timeout
        self.wait_for_ready = wait_for_ready
        self.max_request_bytes = max_request_bytes
        self.max_response_bytes = max_response_bytes
        self.retry = retry
        self.hedging = hedging


class ServiceConfig:
    """A parsed service config."""

    def __init__(self, methods=None, lb_config_names=None, retry_throttling=None, health_check_service=None,
                 raw=None):
        # (service, method) -> MethodConfig; (service, "") a whole service;
        # ("", "") the default
        self._methods = methods or {}
        self.lb_config_names = lb_config_names
        # (policy class, its parsed config) of loadBalancingConfig, or None
        self.lb_policy = None
        self.retry_throttling = retry_throttling
        self.health_check_service = health_check_service
        self.raw = raw

    @property
    def has_method_configs(self):
        """Whether any method has an entry (calls skip the lookup otherwise)."""
        return bool(self._methods)

    def method_config(self, method):
        """The MethodConfig for '/pkg.Service/Method' (str, or bytes as the
        call layer keeps it; the most specific match), or None."""
        methods = self._methods
        if not methods:
            return None
        if isinstance(method, bytes):
            method = method.decode("latin-1")
        service, _, name = method.lstrip("/").partition("/")
        found = methods.get((service, name))
        if found is None:
            found = methods.get((service, ""))
            if found is None:
                found = methods.get(("", ""))
        return found


EMPTY = ServiceConfig()


# ---------------------------------------------------------------- parsing

_STATUS_CODES = {name: number for number, name in enumerate((
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"))}
_MAX_DURATION_SECONDS = 315576000000        # google.protobuf.Duration's range
_DURATION_RE = re.compile(r"(-?)(\d+)(?:\.(\d*))?s\Z")
_MAX_TOKENS_CAP = 1000                      # gRFC A6; grpc-core caps larger values to it
_MISSING = object()


class _Errors:
    """Every problem found, each under the path of its field, reported at
    once in grpc-core's words so a message from grpcpy and one from grpcio
    point at the same place."""

    def __init__(self):
        self.found = []

    def add(self, field, error):
        self.found.append("field:%s error:%s" % (field, error))

    def raise_any(self):
        if self.found:
            raise ServiceConfigError("errors validating service config: [%s]" % "; ".join(self.found))


def _field(obj, key, path, errors, kind, required=False):
    """``obj[key]`` checked to be ``kind`` ('string', 'boolean', 'array',
    'object'); None when absent or wrong (an error then)."""
    value = obj.get(key, _MISSING)
    where = "%s.%s" % (path, key) if path else key
    if value is _MISSING or value is None:
        if required:
            errors.add(where, "field not present")
        return None, where
    ok = {"string": str, "boolean": bool, "array": list, "object": dict}[kind]
    if not isinstance(value, ok):
        errors.add(where, "is not %s %s" % ("an" if kind[0] in "ao" else "a", kind))
        return None, where
    return value, where


def _number(obj, key, path, errors, required=False, integer=False, non_negative=False):
    """A JSON number, or a string holding one (proto3 JSON writes 64-bit
    integers as strings); None when absent or wrong."""
    value = obj.get(key, _MISSING)
    where = "%s.%s" % (path, key) if path else key
    if value is _MISSING or value is None:
        if required:
            errors.add(where, "field not present")
        return None
    what = "non-negative number" if non_negative else "number"
    if isinstance(value, bool):
        errors.add(where, "failed to parse %s" % what)
        return None
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            errors.add(where, "failed to parse %s" % what)
            return None
    elif not isinstance(value, (int, float)):
        errors.add(where, "failed to parse %s" % what)
        return None
    if integer:
        if value != int(value):
            errors.add(where, "failed to parse %s" % what)
            return None
        value = int(value)
    if non_negative and value < 0:
        errors.add(where, "failed to parse %s" % what)
        return None
    return value


def _duration(obj, key, path, errors, required=False):
    """A proto3 JSON Duration ("1.5s") in seconds, or None."""
    text, where = _field(obj, key, path, errors, "string", required)
    if text is None:
        return None
    if not text.endswith("s"):
        errors.add(where, "Not a duration (no s suffix)")
        return None
    match = _DURATION_RE.match(text)
    if match is None:
        errors.add(where, "Not a duration (not a number)")
        return None
    sign, seconds, fraction = match.groups()
    if fraction is not None and len(fraction) > 9:
        errors.add(where, "Not a duration (too many digits after decimal)")
        return None
    seconds = int(seconds)
    if sign or seconds > _MAX_DURATION_SECONDS:
        errors.add(where, "seconds must be in the range [0, %d]" % _MAX_DURATION_SECONDS)
        return None
    return seconds + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def _status_codes(obj, key, path, errors, required):
    """A list of status code names (grpc-core takes names only, upper
    case); a required list must name at least one."""
    items, where = _field(obj, key, path, errors, "array", required)
    if items is None:
        return None
    codes = set()
    bad = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            bad.append(("%s[%d]" % (where, i), "is not a string"))
        elif item not in _STATUS_CODES:
            bad.append(("%s[%d]" % (where, i), "failed to parse status code"))
        else:
            codes.add(_STATUS_CODES[item])
    if required and not codes:
        errors.add(where, "must be non-empty")
    for field, error in bad:
        errors.add(field, error)
    return codes


def _retry_policy(obj, path, errors):
    before = len(errors.found)
    max_attempts = _number(obj, "maxAttempts", path, errors, required=True, integer=True)
    if max_attempts is not None and max_attempts < 2:
        errors.add(path + ".maxAttempts", "must be at least 2")
    initial = _duration(obj, "initialBackoff", path, errors, required=True)
    if initial is not None and initial <= 0:
        errors.add(path + ".initialBackoff", "must be greater than 0")
    maximum = _duration(obj, "maxBackoff", path, errors, required=True)
    if maximum is not None and maximum <= 0:
        errors.add(path + ".maxBackoff", "must be greater than 0")
    multiplier = _number(obj, "backoffMultiplier", path, errors, required=True)
    if multiplier is not None and multiplier <= 0:
        errors.add(path + ".backoffMultiplier", "must be greater than 0")
    codes = _status_codes(obj, "retryableStatusCodes", path, errors, required=True)
    if len(errors.found) != before:
        return None
    return RetryPolicy(max_attempts, initial, maximum, multiplier, codes)


def _hedging_policy(obj, path, errors):
    """gRFC A6's hedgingPolicy (grpc-core does not parse it; the rules are
    the spec's: maxAttempts at least 2, a non-negative hedgingDelay)."""
    before = len(errors.found)
    max_attempts = _number(obj, "maxAttempts", path, errors, required=True, integer=True)
    if max_attempts is not None and max_attempts < 2:
        errors.add(path + ".maxAttempts", "must be at least 2")
    delay = _duration(obj, "hedgingDelay", path, errors)
    codes = _status_codes(obj, "nonFatalStatusCodes", path, errors, required=False)
    if len(errors.found) != before:
        return None
    return HedgingPolicy(max_attempts, delay or 0.0, codes or ())


def _method_config(entry, path, errors, methods):
    before = len(errors.found)
    timeout = _duration(entry, "timeout", path, errors)
    wait_for_ready, _ = _field(entry, "waitForReady", path, errors, "boolean")
    max_request = _number(entry, "maxRequestMessageBytes", path, errors, integer=True, non_negative=True)
    max_response = _number(entry, "maxResponseMessageBytes", path, errors, integer=True, non_negative=True)
    retry = hedging = None
    retry_obj, where = _field(entry, "retryPolicy", path, errors, "object")
    if retry_obj is not None:
        retry = _retry_policy(retry_obj, where, errors)
    hedging_obj, where = _field(entry, "hedgingPolicy", path, errors, "object")
    if hedging_obj is not None:
        hedging = _hedging_policy(hedging_obj, where, errors)
        if retry_obj is not None:
            errors.add(path, "retryPolicy and hedgingPolicy are mutually exclusive")
    config = MethodConfig(timeout or None, wait_for_ready, max_request, max_response, retry, hedging)
    names, names_path = _field(entry, "name", path, errors, "array")
    for j, name in enumerate(names or ()):
        where = "%s[%d]" % (names_path, j)
        if not isinstance(name, dict):
            errors.add(where, "is not an object")
            continue
        service, _ = _field(name, "service", where, errors, "string")
        method, _ = _field(name, "method", where, errors, "string")
        service, method = service or "", method or ""
        if method and not service:
            errors.add(where, "method name populated without service name")
            continue
        key = (service, method)
        if key in methods:
            if not service:
                errors.add(where, "duplicate default method config")
            else:
                errors.add(where, "multiple method configs for path /%s/%s" % key)
            continue
        methods[key] = config
    return len(errors.found) == before


def _lb_choice(config, errors):
    """(names, (class, config)) of loadBalancingConfig (names first choice
    first; the first registered policy with its config parsed) or of the
    older loadBalancingPolicy; (None, None) when neither is there."""
    from grpcpy._channel.lb.base import POLICIES, choose_policy   # the registry, as it stands now
    lb = config.get("loadBalancingConfig")
    if lb is not None:
        if not isinstance(lb, list):
            errors.add("loadBalancingConfig", "type should be array")
            return None, None
        if not lb:
            return None, None
        names = [name for entry in lb if isinstance(entry, dict) for name in entry]
        try:
            return names, choose_policy(lb)
        except ValueError as exc:
            errors.add("loadBalancingConfig", str(exc))
            return None, None
    policy, _ = _field(config, "loadBalancingPolicy", "", errors, "string")
    if policy is None:
        return None, None
    cls = POLICIES.get(policy.lower())
    if cls is None:
        errors.add("loadBalancingPolicy", 'unknown LB policy "%s"' % policy)
        return None, None
    try:
        return [policy.lower()], (cls, cls.parse_config({}))
    except ValueError as exc:       # a policy that cannot run without a config
        errors.add("loadBalancingPolicy", "%s: %s" % (policy, exc))
        return None, None


def parse_service_config(text):
    """The ServiceConfig of a JSON service config (text, or already decoded
    to a dict).  Raises ServiceConfigError naming every bad field, in the
    form grpc-core uses ("errors validating service config: [field:... error:...]").
    Unknown fields are ignored, as every gRPC implementation does."""
    if isinstance(text, (str, bytes)):
        try:
            config = json.loads(text)
        except ValueError as exc:
            raise ServiceConfigError("JSON parsing failed: %s" % exc) from None
    else:
        config = text
    if not isinstance(config, dict):
        raise ServiceConfigError("errors validating service config: [field: error:is not an object]")
    errors = _Errors()
    methods = {}
    entries, _ = _field(config, "methodConfig", "", errors, "array")
    for i, entry in enumerate(entries or ()):
        path = "methodConfig[%d]" % i
        if not isinstance(entry, dict):
            errors.add(path, "is not an object")
            continue
        _method_config(entry, path, errors, methods)
    lb_names, lb_policy = _lb_choice(config, errors)
    throttling = None
    throttle_obj, _ = _field(config, "retryThrottling", "", errors, "object")
    if throttle_obj is not None:
        before = len(errors.found)
        max_tokens = _number(throttle_obj, "maxTokens", "retryThrottling", errors, required=True)
        if max_tokens is not None and max_tokens <= 0:
            errors.add("retryThrottling.maxTokens", "must be greater than 0")
        ratio = _number(throttle_obj, "tokenRatio", "retryThrottling", errors, required=True)
        if ratio is not None:
            ratio = int(ratio * 1000) / 1000.0       # three decimal places count
            if ratio <= 0:
                errors.add("retryThrottling.tokenRatio", "must be greater than 0")
        if len(errors.found) == before:
            throttling = RetryThrottling(min(max_tokens, _MAX_TOKENS_CAP), ratio)
    health = None
    health_obj, _ = _field(config, "healthCheckConfig", "", errors, "object")
    if health_obj is not None:
        health, _ = _field(health_obj, "serviceName", "healthCheckConfig", errors, "string")
    errors.raise_any()
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    parsed = ServiceConfig(methods, lb_names, throttling, health,
                           text if isinstance(text, str) else json.dumps(text, sort_keys=True))
    parsed.lb_policy = lb_policy
    return parsed


class RetryThrottle:
    """The per-channel token bucket of gRFC A6's retryThrottling.

    The bucket starts full (maxTokens).  Every failed attempt whose status
    would allow a retry (retryable, non-fatal or with server pushback) takes
    one token, every success gives back tokenRatio, never above maxTokens;
    retries and hedged attempts are allowed only while more than half the
    tokens are left.  Tokens are counted in thousandths, the precision the
    spec gives tokenRatio, so repeated additions do not drift.
    """

    __slots__ = ("max_tokens", "token_ratio", "_max", "_ratio", "_threshold", "_tokens")

    def __init__(self, max_tokens, token_ratio):
        self.max_tokens = max_tokens
        self.token_ratio = token_ratio
        self._max = int(round(max_tokens * 1000))
        self._ratio = int(round(token_ratio * 1000))
        self._threshold = self._max // 2
        self._tokens = self._max

    @classmethod
    def of(cls, throttling):
        """The throttle a config's RetryThrottling asks for (None: none)."""
        if throttling is None:
            return None
        return cls(throttling.max_tokens, throttling.token_ratio)

    @property
    def tokens(self):
        return self._tokens / 1000.0

    def record_failure(self):
        self._tokens = max(0, self._tokens - 1000)

    def record_success(self):
        self._tokens = min(self._max, self._tokens + self._ratio)

    def allows_retry(self):
        return self._tokens > self._threshold


# ---------------------------------------------------------------- DNS TXT (gRFC A2)

TXT_PREFIX = "grpc_config="
CLIENT_LANGUAGE = "python"


def choose_from_txt(records, hostname, random):
    """The service config (a dict) a client picks from the TXT records of
    ``_grpc_config.<name>``, or None when no record or no choice applies.

    The record starting ``grpc_config=`` holds a JSON list of choices; the
    first choice whose clientLanguage (names, any case), clientHostname and
    percentage (``random()`` in [0, 1) below percentage/100) all admit this
    client gives its serviceConfig.  Raises ServiceConfigError for a record
    that is not such a list."""
    texts = [record[len(TXT_PREFIX):] for record in records if record.startswith(TXT_PREFIX)]
    if not texts:
        return None
    try:
        choices = json.loads(texts[0])
    except ValueError as exc:
        raise ServiceConfigError("JSON parsing failed in the grpc_config TXT record: %s" % exc) from None
    errors = _Errors()
    if not isinstance(choices, list):
        errors.add("grpc_config", "is not an array")
        errors.raise_any()
    picked = None
    for i, choice in enumerate(choices):
        path = "grpc_config[%d]" % i
        if not isinstance(choice, dict):
            errors.add(path, "is not an object")
            continue
        languages, _ = _field(choice, "clientLanguage", path, errors, "array")
        hosts, _ = _field(choice, "clientHostname", path, errors, "array")
        percentage = _number(choice, "percentage", path, errors, integer=True, non_negative=True)
        config, _ = _field(choice, "serviceConfig", path, errors, "object", required=True)
        if errors.found or picked is not None:
            continue
        if languages and CLIENT_LANGUAGE not in [str(name).lower() for name in languages]:
            continue
        if hosts and hostname not in hosts:
            continue
        if percentage is not None and not random() * 100 < percentage:
            continue
        picked = config
    errors.raise_any()
    return picked
