"""Connection backoff, per gRPC's connection-backoff spec
(doc/connection-backoff.md). Sans-IO: time comes in as ``now``."""

import random as _random_module

from grpcpy._options import ChannelOptions

__all__ = ["Backoff"]


class Backoff:
    """Exponential connection backoff per gRPC's connection-backoff spec.

    ``start(now)`` begins an attempt and returns its connect deadline,
    ``max(current_deadline, now + min_connect_timeout)``.  ``failed(now)``
    ends it and returns when the next attempt may start (``current_deadline``,
    or ``now`` if that has passed).  The next ``start`` then grows the backoff:
    ``current_backoff = min(current_backoff * multiplier, maximum)`` and
    ``current_deadline = now + current_backoff`` plus a uniform jitter in
    ``[-jitter, +jitter] * current_backoff``.  ``reset()`` (after a success)
    starts over at ``initial``.
    """

    def __init__(self, initial=1.0, multiplier=1.6, jitter=0.2, maximum=120.0,
                 min_connect_timeout=20.0, random=_random_module.random):
        if initial <= 0 or maximum <= 0 or multiplier < 1 or not 0 <= jitter <= 1 \
                or min_connect_timeout < 0:
            raise ValueError("bad backoff parameters")
        self.initial = float(initial)
        self.multiplier = float(multiplier)
        self.jitter = float(jitter)
        self.maximum = float(maximum)
        self.min_connect_timeout = float(min_connect_timeout)
        self._random = random
        self.reset()

    @classmethod
    def from_options(cls, options, random=_random_module.random):
        """Parameters from the channel options (see grpcpy._options.ChannelOptions):
        grpc.initial_reconnect_backoff_ms, grpc.max_reconnect_backoff_ms,
        grpc.min_reconnect_backoff_ms (the minimum connect timeout) and
        grpc.testing.fixed_reconnect_backoff_ms (no growth, no jitter)."""
        options = ChannelOptions.of(options)
        fixed = options.fixed_reconnect_backoff
        if fixed is not None:
            return cls(fixed, 1.0, 0.0, fixed, fixed, random)
        return cls(initial=options.initial_reconnect_backoff, maximum=options.max_reconnect_backoff,
                   min_connect_timeout=options.min_reconnect_backoff, random=random)

    def reset(self):
        self.current_backoff = None
        self.current_deadline = None
        self._grow = False

    def start(self, now):
        if self.current_backoff is None:
            self.current_backoff = self.initial
            self.current_deadline = now + self.initial
        elif self._grow:
            self.current_backoff = min(self.current_backoff * self.multiplier, self.maximum)
            spread = self.jitter * self.current_backoff
            self.current_deadline = (now + self.current_backoff
                                     + (2.0 * self._random() - 1.0) * spread)
        self._grow = False
        return max(self.current_deadline, now + self.min_connect_timeout)

    def failed(self, now):
        self._grow = True
        if self.current_deadline is None:
            return now
        return max(self.current_deadline, now)
