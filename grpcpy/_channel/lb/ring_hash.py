"""ring_hash: consistent hashing of calls onto backends (gRFC A42, A76).

Every address gets points on a ring of 64-bit hashes (more points for a
larger "weight" attribute); a call's hash lands on the ring and the call
goes to the first address at or after it.  Calls with the same key so keep
reaching the same backend, and when a backend leaves only the keys that
were on it move (about 1/N of them).

The call's key is the value of the request header named by the config's
``requestHashHeader`` (A76; several values joined with ","); a call
without it, or a config without a header, gets a random hash: any READY
backend.  Hashes are xxHash64 with seed 0, as in gRPC, and an address is
placed by its "hash_key" attribute when it has one (A76), else by its
``host:port``, so the ring matches other gRPC implementations' for the
same addresses.

Connections are lazy (A42): a subchannel connects when a call hashes to it.
A subchannel that failed counts as TRANSIENT_FAILURE until it connects
again (and keeps retrying after its backoff); picks walk past failed ones
to the next address on the ring.  The policy's state follows A42's rules:
READY if any subchannel is READY; else TRANSIENT_FAILURE with two or more
failed; else CONNECTING if any is connecting or one has failed (of
several); else IDLE.  While no subchannel is READY and one has failed, the
policy keeps one connection attempt going, moving along the ring, so it
does not depend on calls to recover.

The plane hands out picks only while the channel is READY, so leaving IDLE
(a call or try_to_connect) connects one subchannel when none is READY or
connecting; from then on each call's hash drives its own connection.  A
pick cannot start a connection itself (it has no ``now``): it notes the
subchannel it wants, and the next input that carries the time (the
call's own ``exit_idle``, or any state change) connects it.
"""

import bisect
import math
import re

from grpcpy._channel.lb.base import (CONNECTING, IDLE, READY, TRANSIENT_FAILURE, LoadBalancingPolicy,
                                     register_policy)

__all__ = ["RingHash", "RingHashConfig", "xxh64", "build_ring", "endpoint_key"]

_DEFAULT_MIN_RING = 1024
_DEFAULT_MAX_RING = 4096
_RING_LIMIT = 8 * 1024 * 1024       # the largest ring gRPC accepts in either field
_HEADER = re.compile(r"[0-9a-z_.\-]+\Z")


_digest = None


def xxh64(text):
    """xxHash64, seed 0, of a str (UTF-8) or bytes: the ring's hash."""
    global _digest
    if _digest is None:     # (imported by the channels that use ring_hash only)
        from xxhash import xxh64_intdigest as _digest
    if isinstance(text, str):
        text = text.encode("utf-8")
    return _digest(text)


class RingHashConfig:
    """The policy's loadBalancingConfig entry, checked."""
    __slots__ = ("min_ring_size", "max_ring_size", "request_hash_header")

    def __init__(self, min_ring_size=_DEFAULT_MIN_RING, max_ring_size=_DEFAULT_MAX_RING,
                 request_hash_header=None):
        self.min_ring_size = min_ring_size
        self.max_ring_size = max_ring_size
        self.request_hash_header = request_hash_header

    def __eq__(self, other):
        return isinstance(other, RingHashConfig) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self):
        return "RingHashConfig(min_ring_size=%d, max_ring_size=%d, request_hash_header=%r)" % (
            self.min_ring_size, self.max_ring_size, self.request_hash_header)

    @classmethod
    def parse(cls, raw):
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ValueError("ring_hash config should be an object")
        sizes = []
        for field, default in (("minRingSize", _DEFAULT_MIN_RING), ("maxRingSize", _DEFAULT_MAX_RING)):
            value = raw.get(field)
            # JSON numbers for uint64 fields may come as strings (proto3 JSON)
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if value is None or value == 0:
                value = default
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError("ring_hash %s should be a positive integer" % field)
            elif value > _RING_LIMIT:
                raise ValueError("ring_hash %s %d is larger than %d" % (field, value, _RING_LIMIT))
            sizes.append(value)
        if sizes[0] > sizes[1]:
            raise ValueError("ring_hash minRingSize %d is larger than maxRingSize %d" % tuple(sizes))
        header = raw.get("requestHashHeader")
        if header is not None and not isinstance(header, str):
            raise ValueError("ring_hash requestHashHeader should be a string")
        if header:
            header = header.lower()
            if not _HEADER.match(header):
                raise ValueError("ring_hash requestHashHeader %r is not a valid header name" % header)
            if header.endswith("-bin"):
                raise ValueError("ring_hash requestHashHeader %r is a binary header" % header)
        return cls(sizes[0], sizes[1], header or None)


def endpoint_key(address):
    """Where an address sits on the ring: its "hash_key" attribute, else
    ``host:port`` (``[host]:port`` for IPv6), as gRPC hashes it."""
    attributes = getattr(address, "attributes", None)
    if attributes:
        key = attributes.get("hash_key")
        if isinstance(key, str) and key:
            return key
    if address.family == "inet":
        return "%s:%d" % (address.host, address.port)
    if address.family == "inet6":
        return "[%s]:%d" % (address.host, address.port)
    return str(address)


def _weight(address):
    attributes = getattr(address, "attributes", None)
    weight = attributes.get("weight") if attributes else None
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        return 1
    return weight


def build_ring(endpoints, min_size, max_size):
    """The ring of ``endpoints``, (key, weight, item) with distinct items:
    (sorted hashes, the item of each hash).

    As Envoy and gRPC build it: the ring has the fewest points (between
    ``min_size`` and ``max_size``) that give the lightest endpoint a whole
    number of them; each endpoint gets its share of the points, hashed from
    ``key_0``, ``key_1``, ..., so an endpoint's points do not move when
    other endpoints come or go.
    """
    total = sum(weight for _, weight, _ in endpoints)
    shares = sorted(((key, weight / total, item) for key, weight, item in endpoints), key=lambda e: e[0])
    smallest = min(share for _, share, _ in shares)
    scale = min(math.ceil(smallest * min_size) / smallest, max_size)
    points = []
    target = placed = 0.0
    for key, share, item in shares:
        # (a hair under the float sum, whose rounding would add a point past the size)
        target += scale * share
        n = 0
        while placed < target - 1e-9 * scale:
            points.append((xxh64("%s_%d" % (key, n)), item))
            n += 1
            placed += 1
    points.sort(key=lambda p: p[0])
    return [h for h, _ in points], [item for _, item in points]


@register_policy
class RingHash(LoadBalancingPolicy):
    """ring_hash (see the module docstring)."""
    name = "ring_hash"
    uses_pick_info = True       # the key is in the call's metadata

    def __init__(self, helper, config=None):
        super().__init__(helper, config)
        self.config = config if isinstance(config, RingHashConfig) else RingHashConfig.parse(config)
        self._hashes = []           # the ring: sorted point hashes ...
        self._ring = []             # ... and the subchannel of each point
        self._endpoints = None      # what the ring was built from
        self._down = set()          # subchannels failed since they were last READY
        self._last_down = None      # the latest to fail: the search for another starts after it
        self._wanted = []           # subchannels picks found IDLE, to connect with the next ``now``
        self._now = 0.0             # the latest time an input brought

    @classmethod
    def parse_config(cls, raw):
        return RingHashConfig.parse(raw)

    # ----- inputs

    def update_config(self, now, config):
        self.config = config if isinstance(config, RingHashConfig) else RingHashConfig.parse(config)
        self._endpoints = None
        self._use(now, [sub.address for sub in self.subchannels])

    def update_addresses(self, now, addresses):
        self._use(now, addresses)

    def take_over(self, now, subchannels, active):
        self._use(now, [sub.address for sub in subchannels], report=False)
        # (subchannels the other policy saw fail count as failed here too)
        self._down = {sub for sub in self.subchannels if sub.state == TRANSIENT_FAILURE}
        if active:
            self.idle = False
            self._connect(now)
        self._report(now)

    def subchannel_state_changed(self, now, sub):
        if sub not in self._members:
            return
        state = sub.state
        if state == READY:
            self._down.discard(sub)
        elif state == TRANSIENT_FAILURE:
            self._down.add(sub)
            self._last_down = sub
        elif state == IDLE:
            if sub in self._down:
                # its backoff is over: a failed backend is retried (the
                # policy still counts it failed until it connects)
                if not self.idle:
                    self.helper.connect(sub, now)
            else:
                # a READY connection was lost: the subchannel stays IDLE
                # until a call wants it
                self.helper.request_reresolution(now)
        self._connect(now)
        self._report(now)

    def exit_idle(self, now):
        self.idle = False
        self._connect(now, kick=True)
        self._report(now)

    def enter_idle(self):
        self._down.clear()
        self._wanted = []
        self._last_down = None
        super().enter_idle()

    def timer(self, now):
        self._connect(now)
        self._report(now)

    def next_timer(self):
        # a pick wants a connection: as soon as possible
        return self._now if self._wanted else math.inf

    def shutdown(self):
        self._wanted = []

    # ----- picks

    def pick(self, info):
        ring = self._ring
        n = len(ring)
        if not n:
            return None
        header = self.config.request_hash_header
        key = None
        if header is not None and info is not None and info.metadata:
            values = [v for k, v in info.metadata if k == header]
            if values:
                key = ",".join(values) if len(values) > 1 else values[0]
        if not key:
            return self._pick_random()
        i = bisect.bisect_left(self._hashes, xxh64(key))
        if i == n:
            i = 0
        down = self._down
        for k in range(n):
            sub = ring[(i + k) % n]
            state = sub.state
            if state == READY:
                return sub.sub_id
            if sub in down:
                continue
            if state == IDLE:
                self._wanted.append(sub)
            return None     # IDLE (now wanted) or CONNECTING: the call waits for it
        return None

    def _pick_random(self):
        """A call without a key: the first READY subchannel from a random
        place on the ring (A76); with none READY, one connection is wanted."""
        ring = self._ring
        n = len(ring)
        i = bisect.bisect_left(self._hashes, self._random_hash())
        first_idle = None
        for k in range(n):
            sub = ring[(i + k) % n]
            if sub.state == READY:
                return sub.sub_id
            if first_idle is None and sub.state == IDLE and sub not in self._down:
                first_idle = sub
        if first_idle is not None and not self._wanted and not any(
                s.state == CONNECTING for s in self.subchannels):
            self._wanted.append(first_idle)
        return None

    def is_ready(self):
        return any(s.state == READY for s in self.subchannels)

    def _random_hash(self):
        # the channel's randomness (injectable), spread over the 64-bit ring
        return int(self.helper.random() * 18446744073709551616.0)

    # ----- internals

    def _use(self, now, addresses, report=True):
        merged = {}             # address -> [latest address, weight]; repeats add weight (A42)
        for address in addresses:
            entry = merged.get(address)
            if entry is None:
                merged[address] = [address, _weight(address)]
            else:
                entry[0] = address
                entry[1] += _weight(address)
        unique = [entry[0] for entry in merged.values()]
        endpoints = tuple((endpoint_key(a), w) for a, w in merged.values())
        if endpoints == self._endpoints and self._same_addresses(unique):
            return
        old = self.subchannels
        self._replace_subchannels(unique)
        self._members = set(self.subchannels)
        self._down &= self._members
        if self._last_down not in self._members:
            self._last_down = None
        if endpoints != self._endpoints or any(a is not b for a, b in zip(old, self.subchannels)):
            self._endpoints = endpoints
            if self.subchannels:
                self._hashes, self._ring = build_ring(
                    [(key, w, sub) for (key, w), sub in zip(endpoints, self.subchannels)],
                    self.config.min_ring_size, self.config.max_ring_size)
            else:
                self._hashes, self._ring = [], []
        if report:
            self._connect(now)
            self._report(now)

    _members = frozenset()

    def _connect(self, now, kick=False):
        """Start the connections picks asked for; while nothing is READY,
        keep one attempt going after a failure (A42), or, with ``kick``
        (leaving IDLE), when nothing is connecting at all."""
        self._now = now
        if self.idle:
            self._wanted = []
            return
        wanted, self._wanted = self._wanted, []
        for sub in wanted:
            if sub.state == IDLE and sub in self._members:
                self.helper.connect(sub, now)
        subs = self.subchannels
        if not subs or any(s.state in (READY, CONNECTING) for s in subs):
            return
        if not (kick or self._down):
            return
        # the next never-failed IDLE subchannel on the ring after the latest failure
        ring = self._ring
        start = 0
        if self._last_down is not None:
            start = ring.index(self._last_down)
        elif kick:
            start = bisect.bisect_left(self._hashes, self._random_hash())
        n = len(ring)
        for k in range(n):
            sub = ring[(start + k) % n]
            if sub.state == IDLE and sub not in self._down:
                self.helper.connect(sub, now)
                return
        if kick:    # every one has failed: retry one whose backoff is over
            for sub in subs:
                if sub.state == IDLE:
                    self.helper.connect(sub, now)
                    return

    def _report(self, now=None):
        ready = connecting = idle = 0
        down = self._down
        for sub in self.subchannels:
            if sub.state == READY:
                ready += 1
            elif sub in down:
                pass
            elif sub.state == CONNECTING:
                connecting += 1
            else:
                idle += 1
        failed = len(down)
        if ready:
            state = READY
        elif failed >= 2:
            state = TRANSIENT_FAILURE
        elif connecting or (failed == 1 and len(self.subchannels) > 1):
            state = CONNECTING
        elif idle:
            state = IDLE
        else:
            state = TRANSIENT_FAILURE
        if state == TRANSIENT_FAILURE:
            if not self._sticky_failure and now is not None:
                self._sticky_failure = True
                self.helper.request_reresolution(now)
            errors = [sub.error for sub in self.subchannels if sub in down and sub.error]
            self.helper.update_state(TRANSIENT_FAILURE, "failed to connect to all addresses tried: %s" % (
                "; ".join(errors) or "no addresses"))
        else:
            self._sticky_failure = False
            self.helper.update_state(state, None)


@register_policy
class RingHashExperimental(RingHash):
    """The name gRPC registers the policy under, for service configs written for it."""
    name = "ring_hash_experimental"
