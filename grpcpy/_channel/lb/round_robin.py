"""round_robin: a connection to every address, picks rotate over the READY ones."""

from grpcpy._channel.lb.base import IDLE, READY, TRANSIENT_FAILURE, LoadBalancingPolicy, register_policy


@register_policy
class RoundRobin(LoadBalancingPolicy):
    """round_robin: a connection to every address, picks rotate over the READY ones.

    It never goes IDLE: a subchannel that becomes IDLE (connection lost, or
    end of backoff) is reconnected at once.  READY if any subchannel is
    READY; TRANSIENT_FAILURE once all have failed (sticky, see the base
    class); otherwise CONNECTING.
    """
    name = "round_robin"

    def __init__(self, helper):
        super().__init__(helper)
        self._next = 0

    def update_addresses(self, now, addresses):
        if [s.address for s in self.subchannels] == list(addresses):
            return
        self._replace_subchannels(addresses)
        self._connect(now)
        self._report()

    def subchannel_state_changed(self, now, sub):
        if sub not in self.subchannels:
            return
        if sub.state == READY:
            self._reset_failures()
        elif sub.state == TRANSIENT_FAILURE:
            self._note_failure(now, sub)
        elif sub.state == IDLE:
            self.helper.request_reresolution(now)
            self._connect(now)
        self._report()

    def _connect(self, now):
        if not self.idle:
            for sub in self.subchannels:
                if sub.state == IDLE:
                    self.helper.connect(sub, now)

    def is_ready(self):
        return any(s.state == READY for s in self.subchannels)

    def pick(self):
        subs = self.subchannels
        for i in range(len(subs)):
            sub = subs[(self._next + i) % len(subs)]
            if sub.state == READY:
                self._next = (self._next + i + 1) % len(subs)
                return sub.sub_id
        return None
