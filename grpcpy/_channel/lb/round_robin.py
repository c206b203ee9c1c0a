"""round_robin: a connection to every address, picks rotate over the READY ones."""

from grpcpy._channel.lb.base import IDLE, READY, TRANSIENT_FAILURE, LoadBalancingPolicy, register_policy


@register_policy
class RoundRobin(LoadBalancingPolicy):
    """round_robin: a connection to every address, picks rotate over the READY ones.

    It never goes IDLE: a subchannel that becomes IDLE (connection lost, or
    end of backoff) is reconnected at once.  READY if any subchannel is
    READY; TRANSIENT_FAILURE once all have failed, and then sticky (see the
    base class): reconnecting subchannels do not take it back to
    CONNECTING, only a READY one ends it; otherwise CONNECTING.  A
    subchannel that loses its connection or fails to connect asks for
    re-resolution (the backend may have moved; the plane rate-limits it).
    The rotation starts at a random place, so that many clients do not all
    send their first call to the first address.
    """
    name = "round_robin"

    def __init__(self, helper, config=None):
        super().__init__(helper, config)
        self._next = int(helper.random() * 1000003)
        self._ready = []        # sub_ids of the READY subchannels, as of the last report

    def update_addresses(self, now, addresses):
        if self._same_addresses(addresses):
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
            self.helper.request_reresolution(now)
        elif sub.state == IDLE:
            self.helper.request_reresolution(now)
            self._connect(now)
        self._report()

    _connect = LoadBalancingPolicy._connect_all

    def _report(self):
        # every change of a subchannel's state ends here: the picker's list
        # is made once per change, not looked for per call
        self._ready = [s.sub_id for s in self.subchannels if s.state == READY]
        super()._report()

    def is_ready(self):
        return bool(self._ready)

    def pick(self, info):
        ready = self._ready
        if not ready:
            return None
        self._next = n = self._next + 1
        return ready[n % len(ready)]
