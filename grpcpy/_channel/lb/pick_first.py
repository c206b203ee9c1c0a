"""pick_first: one connection, to the first address that works."""

from grpcpy._channel.lb.base import CONNECTING, IDLE, READY, TRANSIENT_FAILURE, LoadBalancingPolicy, register_policy


@register_policy
class PickFirst(LoadBalancingPolicy):
    """pick_first: one connection, to the first address that works.

    Addresses are tried in order, one connect at a time.  When every address
    has failed since the last success the policy reports TRANSIENT_FAILURE
    (sticky, see the base class) while it keeps retrying each address as its
    backoff expires, until one connects.  Losing the READY connection takes
    the policy to IDLE; it reconnects on the next ``exit_idle``.
    """
    name = "pick_first"

    def __init__(self, helper):
        super().__init__(helper)
        self.selected = None

    def update_addresses(self, now, addresses):
        if [s.address for s in self.subchannels] == list(addresses):
            return
        self._replace_subchannels(addresses)
        if self.selected is not None and self.selected not in self.subchannels:
            self.selected = None
        if self.selected is None:
            self._reset_failures()
            self._connect(now)
        else:
            for sub in self.subchannels:
                if sub is not self.selected:
                    self.helper.disconnect(sub)
        self._report()

    def subchannel_state_changed(self, now, sub):
        if sub not in self.subchannels:
            return
        if sub is self.selected:
            if sub.state != READY:  # connection lost: go IDLE, reconnect when asked
                self.selected = None
                self.idle = True
                self._reset_failures()
                self.helper.request_reresolution(now)
        elif sub.state == READY:
            if self.selected is None and not self.idle:
                self.selected = sub
                self._reset_failures()
                self._error = None
                for other in self.subchannels:
                    if other is not sub:
                        self.helper.disconnect(other)
            else:  # not wanted (cannot happen with one attempt at a time)
                self.helper.disconnect(sub)
        elif sub.state == TRANSIENT_FAILURE:
            self._note_failure(now, sub)
            self._connect(now)
        elif sub.state == IDLE:
            self._connect(now)
        self._report()

    def enter_idle(self):
        self.selected = None
        super().enter_idle()

    def _connect(self, now):
        if self.idle or self.selected is not None:
            return
        if any(s.state == CONNECTING for s in self.subchannels):
            return
        for sub in self.subchannels:
            if sub.state == IDLE:
                self.helper.connect(sub, now)
                return

    def is_ready(self):
        return self.selected is not None

    def pick(self):
        return self.selected.sub_id if self.selected is not None else None
