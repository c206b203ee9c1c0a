"""pick_first: one connection, to the first address that works.

The address list (gRFC A61, A62): shuffled first when the policy's config
says ``shuffleAddressList`` (spreads the clients of one DNS name over its
servers), then the IPv6 and IPv4 addresses interleaved, starting with the
family of the first address (RFC 8305 section 4), so that one family that
does not work delays the connection by one attempt delay, not by all of its
addresses' connect timeouts.

Connecting (gRFC A61, "Happy Eyeballs"): the first pass through the list
starts one attempt, and the next one when the current attempt fails or has
not finished within the connection attempt delay (250 ms), keeping the
earlier attempts going; the first to connect wins and the others are
closed.  Once every address has failed in the pass the policy is in
TRANSIENT_FAILURE (sticky, gRFC A62: it stays there until a connection
succeeds), asks for re-resolution, and from then on reconnects each address
whenever its backoff ends, in no order, asking for re-resolution again each
time every address has failed once more.  Losing the chosen connection
takes the policy to IDLE; the next ``exit_idle`` starts a new pass.
"""

import math

from grpcpy._channel.lb.base import CONNECTING, IDLE, READY, TRANSIENT_FAILURE, LoadBalancingPolicy, register_policy

__all__ = ["PickFirst", "interleave_families", "shuffled"]

_INF = math.inf


def interleave_families(addresses):
    """The addresses with their families alternating, in the order of their
    first appearance, each family's addresses keeping their order."""
    groups = {}
    for address in addresses:
        groups.setdefault(address.family, []).append(address)
    if len(groups) < 2:
        return list(addresses)
    out = []
    columns = [iter(g) for g in groups.values()]
    while columns:
        for column in list(columns):
            address = next(column, None)
            if address is None:
                columns.remove(column)
            else:
                out.append(address)
    return out


def shuffled(items, random):
    """A uniformly shuffled copy, ``random()`` in [0, 1) (Fisher-Yates)."""
    items = list(items)
    for i in range(len(items) - 1, 0, -1):
        j = min(int(random() * (i + 1)), i)
        items[i], items[j] = items[j], items[i]
    return items


@register_policy
class PickFirst(LoadBalancingPolicy):
    """pick_first (see the module docstring)."""
    name = "pick_first"
    health_checks = False       # gRFC A17
    # RFC 8305's recommended Connection Attempt Delay, as gRFC A61 takes it
    connection_attempt_delay = 0.25

    @classmethod
    def parse_config(cls, raw):
        shuffle = raw.get("shuffleAddressList", False)
        if not isinstance(shuffle, bool):
            raise ValueError("shuffleAddressList: a boolean, not %r" % (shuffle,))
        return {"shuffleAddressList": shuffle}

    def __init__(self, helper, config=None):
        super().__init__(helper, config)
        self.selected = None
        self._shuffle = bool(config and config.get("shuffleAddressList"))
        self._reset_pass()

    def _reset_pass(self):
        self._pass_next = None      # index of the pass's next attempt; None: no pass begun
        self._pass_done = False     # every address failed in the pass
        self._pass_failed = set()   # ids of the subchannels that failed in the pass
        self._attempt_at = _INF     # when the pass starts its next attempt

    def update_config(self, now, config):
        self.config = config
        self._shuffle = bool(config and config.get("shuffleAddressList"))

    def update_addresses(self, now, addresses):
        addresses = list(addresses)
        if self._shuffle:
            addresses = shuffled(addresses, self.helper.random)
        addresses = interleave_families(addresses)
        if self._same_addresses(addresses):
            return
        self._replace_subchannels(addresses)
        if self.selected is not None and self.selected not in self.subchannels:
            self.selected = None
        if self.selected is None:
            # a new pass over the new list; TRANSIENT_FAILURE stays until a connection (A62)
            self._failed.clear()
            self._reset_pass()
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
                self._reset_pass()
                self.helper.request_reresolution(now)
        elif sub.state == READY:
            if self.selected is None and not self.idle:
                self.selected = sub
                self._reset_failures()
                self._reset_pass()
                self._error = None
                for other in self.subchannels:
                    if other is not sub:
                        self.helper.disconnect(other)
            else:  # not wanted
                self.helper.disconnect(sub)
        elif self.idle or self.selected is not None:
            pass
        elif sub.state == TRANSIENT_FAILURE:
            self._error = sub.error
            if self._pass_done:
                self._note_failure(now, sub)
            elif self._pass_next is not None:
                self._pass_failed.add(id(sub))
                if len(self._pass_failed) >= len(self.subchannels):
                    self._end_pass(now)
                elif sub is self.subchannels[self._pass_next - 1]:
                    self._start_next(now)   # the latest attempt failed: the next one now
        elif sub.state == IDLE and self._pass_done:
            self.helper.connect(sub, now)     # its backoff ended
        self._report()

    def next_timer(self):
        return self._attempt_at

    def timer(self, now):
        if self._attempt_at <= now:
            self._attempt_at = _INF
            if not self.idle and self.selected is None and self._pass_next is not None and not self._pass_done:
                self._start_next(now)
                self._report()

    def enter_idle(self):
        self.selected = None
        self._reset_pass()
        super().enter_idle()

    def _connect(self, now):
        if self.idle or self.selected is not None:
            return
        if self._pass_next is None:
            self._pass_next = 0
            self._start_next(now)
        elif self._pass_done:
            for sub in self.subchannels:
                if sub.state == IDLE:
                    self.helper.connect(sub, now)

    def _start_next(self, now):
        """The pass's next attempt, and the timer for the one after it."""
        subs = self.subchannels
        self._attempt_at = _INF
        while self._pass_next < len(subs):
            sub = subs[self._pass_next]
            self._pass_next += 1
            if sub.state == IDLE:
                self.helper.connect(sub, now)
            elif sub.state != CONNECTING:
                # in backoff from a recent failure: as good as tried
                self._pass_failed.add(id(sub))
                if len(self._pass_failed) >= len(subs):
                    self._end_pass(now)
                    return
                continue
            if self._pass_next < len(subs):
                self._attempt_at = now + self.connection_attempt_delay
            return

    def _end_pass(self, now):
        """Every address failed once: TRANSIENT_FAILURE, re-resolution, and
        from now on each address reconnects as its backoff ends."""
        self._pass_done = True
        self._attempt_at = _INF
        self._sticky_failure = True
        self._failed.clear()
        self.helper.request_reresolution(now)
        for sub in self.subchannels:
            if sub.state == IDLE:
                self.helper.connect(sub, now)

    def is_ready(self):
        return self.selected is not None

    def pick(self, info):
        return self.selected.sub_id if self.selected is not None else None
