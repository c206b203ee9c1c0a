"""least_request: of a few READY subchannels drawn at random, the least busy.

gRFC A48 (Envoy's "least request" with equal weights): each pick draws
``choiceCount`` READY subchannels at random (with repeats) and takes the
one with the fewest calls outstanding; the count goes up at the pick and
down when the call ends (the pick's ``done``).  Two choices already steer
new calls away from a backend whose calls are slow, at the cost of two
random numbers per call.

Addresses with a "weight" attribute (not all equal) are drawn in proportion
to their weights and compared by outstanding calls per unit of weight
(the first drawn wins a tie, so an idle channel spreads calls by weight), a
simple form of Envoy's weighted least request.  Connection handling and the policy's state are round_robin's: a
connection to every address, kept up.
"""

import bisect
import itertools

from grpcpy._channel.lb.base import READY, register_policy
from grpcpy._channel.lb.round_robin import RoundRobin

__all__ = ["LeastRequest", "LeastRequestConfig"]

_DEFAULT_CHOICES = 2
_MAX_CHOICES = 10


class LeastRequestConfig:
    __slots__ = ("choice_count",)

    def __init__(self, choice_count=_DEFAULT_CHOICES):
        self.choice_count = choice_count

    def __eq__(self, other):
        return isinstance(other, LeastRequestConfig) and other.choice_count == self.choice_count

    def __repr__(self):
        return "LeastRequestConfig(choice_count=%d)" % self.choice_count

    @classmethod
    def parse(cls, raw):
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ValueError("least_request config should be an object")
        count = raw.get("choiceCount")
        if count is None:
            return cls()
        if isinstance(count, bool) or not isinstance(count, int):
            raise ValueError("least_request choiceCount should be an integer")
        if count < 2:
            raise ValueError("least_request choiceCount %d is less than 2" % count)
        return cls(min(count, _MAX_CHOICES))     # larger counts are capped, as in gRPC


def _weight(address):
    attributes = getattr(address, "attributes", None)
    weight = attributes.get("weight") if attributes else None
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        return 1
    return weight


@register_policy
class LeastRequest(RoundRobin):
    """least_request (see the module docstring)."""
    name = "least_request"

    def __init__(self, helper, config=None):
        super().__init__(helper, config)
        self.config = config if isinstance(config, LeastRequestConfig) else LeastRequestConfig.parse(config)
        self._outstanding = {}      # Subchannel -> [calls outstanding] (a cell the calls' done share)

    @classmethod
    def parse_config(cls, raw):
        return LeastRequestConfig.parse(raw)

    def update_config(self, now, config):
        self.config = config if isinstance(config, LeastRequestConfig) else LeastRequestConfig.parse(config)

    def update_addresses(self, now, addresses):
        super().update_addresses(now, addresses)
        self._sync()

    def take_over(self, now, subchannels, active):
        super().take_over(now, subchannels, active)
        self._sync()

    def _sync(self):
        # a subchannel that leaves takes its counter along (late ``done``s
        # count down a cell nobody reads); one that comes back starts at 0
        counts = self._outstanding
        self._outstanding = {sub: counts.get(sub) or [0] for sub in self.subchannels}

    def outstanding(self, sub):
        """Calls picked for ``sub`` that have not ended."""
        cell = self._outstanding.get(sub)
        return cell[0] if cell else 0

    def pick(self, info):
        ready = [s for s in self.subchannels if s.state == READY]
        if not ready:
            return None
        counts = self._outstanding
        rand = self.helper.random
        weights = [_weight(s.address) for s in ready]
        if min(weights) == max(weights):
            n = len(ready)
            best = best_count = None
            for _ in range(self.config.choice_count):
                sub = ready[int(rand() * n)]
                count = counts[sub][0]
                if best is None or count < best_count:
                    best, best_count = sub, count
        else:
            cumulative = list(itertools.accumulate(weights))
            total = cumulative[-1]
            best = best_load = None
            for _ in range(self.config.choice_count):
                i = bisect.bisect_right(cumulative, rand() * total)
                sub = ready[i]
                load = counts[sub][0] / weights[i]
                if best is None or load < best_load:
                    best, best_load = sub, load
        cell = counts[best]
        cell[0] += 1

        def done(now, code, trailing, cell=cell):
            cell[0] -= 1

        return best.sub_id, done
