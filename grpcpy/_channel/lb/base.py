"""Load balancing: the connectivity states, the plane's record of a
subchannel, the policy base class and the registry of policies by name.

A policy decides which addresses to connect to and which connection a call
uses; the plane (its ``helper``) does the bookkeeping and turns its requests
into actions.  The base class holds what every policy shares: the subchannel
list, the IDLE flag, and sticky TRANSIENT_FAILURE (gRFC A62, as grpcio): once
every subchannel has failed since the last success the policy reports
TRANSIENT_FAILURE, asks for re-resolution, and stays there while it keeps
retrying, until a subchannel is READY.  Calls without wait_for_ready then
fail fast instead of waiting through each retry.

The policy of a channel: the first name in its service config's
loadBalancingConfig that is registered, else grpc.lb_policy_name, else
pick_first.  An unknown grpc.lb_policy_name falls back to pick_first with a
logged error, as grpcio does.
"""

import logging
import math

__all__ = [
    "IDLE", "CONNECTING", "READY", "TRANSIENT_FAILURE", "SHUTDOWN", "STATE_NAMES",
    "Subchannel", "LoadBalancingPolicy", "register_policy", "policy_for", "POLICIES",
]

_LOGGER = logging.getLogger("grpcpy.channel")

# Connectivity states, in the order of grpcpy's ChannelConnectivity enum.
IDLE = 0
CONNECTING = 1
READY = 2
TRANSIENT_FAILURE = 3
SHUTDOWN = 4
STATE_NAMES = ("IDLE", "CONNECTING", "READY", "TRANSIENT_FAILURE", "SHUTDOWN")

_INF = math.inf


class Subchannel:
    """The plane's record of one address: its state and its own backoff.

    States: IDLE (no connection, none being made), CONNECTING (a 'connect'
    action is outstanding, ``sub_id`` names it), READY (``sub_id`` names the
    live connection), TRANSIENT_FAILURE (the last attempt failed; the
    subchannel goes back to IDLE by itself at ``retry_at``).  Policies read
    these fields and ask the plane (their helper) to change them.
    """
    __slots__ = ("address", "state", "sub_id", "backoff", "deadline", "retry_at", "error")

    def __init__(self, address, backoff):
        self.address = address
        self.state = IDLE
        self.sub_id = None
        self.backoff = backoff
        self.deadline = _INF     # connect deadline while CONNECTING
        self.retry_at = _INF     # end of the backoff while TRANSIENT_FAILURE
        self.error = None

    def __repr__(self):
        return "<Subchannel %s %s id=%s>" % (self.address, STATE_NAMES[self.state], self.sub_id)


class LoadBalancingPolicy:
    """What a policy implements.  ``helper`` is the plane, which offers:

    - ``helper.subchannel(address)`` -> the Subchannel for an address (shared),
    - ``helper.connect(sub, now)``: start connecting an IDLE subchannel,
    - ``helper.disconnect(sub)``: drop its connection or attempt, back to IDLE
      with a fresh backoff,
    - ``helper.release(sub)``: the policy no longer uses it,
    - ``helper.update_state(state, error)``: the policy's aggregate state,
    - ``helper.request_reresolution(now)``.

    The plane calls ``subchannel_state_changed`` for changes it makes itself
    (connect results, timeouts, end of backoff, connection loss), not for the
    ones the policy asked for.  A subclass sets ``name`` and implements
    ``update_addresses``, ``subchannel_state_changed``, ``_connect``,
    ``pick`` (a ``sub_id`` or None) and ``is_ready``; leaving IDLE, the
    failure bookkeeping and the state report are here.
    """
    name = None

    def __init__(self, helper):
        self.helper = helper
        self.subchannels = []
        self.idle = True
        self._failed = set()        # ids of subchannels failed since the last success
        self._sticky_failure = False
        self._error = None

    def update_addresses(self, now, addresses):
        raise NotImplementedError

    def subchannel_state_changed(self, now, sub):
        raise NotImplementedError

    def exit_idle(self, now):
        """Start connecting (a call or try_to_connect wants a connection)."""
        if self.idle:
            self.idle = False
            self._connect(now)
            self._report()

    def enter_idle(self):
        """The channel is unused: disconnect everything and stay IDLE until
        ``exit_idle``."""
        self.idle = True
        for sub in self.subchannels:
            self.helper.disconnect(sub)
        self._reset_failures()
        self._error = None
        self._report()

    def _connect(self, now):
        """Connect what the policy wants connected (nothing while idle)."""
        raise NotImplementedError

    def pick(self):
        raise NotImplementedError

    def is_ready(self):
        raise NotImplementedError

    def shutdown(self):
        pass

    # ----- shared by the policies

    def _replace_subchannels(self, addresses):
        """Use the subchannels of ``addresses``, releasing the ones no longer listed."""
        new = [self.helper.subchannel(a) for a in addresses]
        keep = set(map(id, new))
        for sub in self.subchannels:
            if id(sub) not in keep:
                self.helper.release(sub)
        self.subchannels = new
        self._failed &= keep

    def _reset_failures(self):
        self._failed.clear()
        self._sticky_failure = False

    def _note_failure(self, now, sub):
        """``sub`` is in TRANSIENT_FAILURE: once all have failed, the policy is."""
        self._error = sub.error
        self._failed.add(id(sub))
        if not self._sticky_failure and len(self._failed) >= len(self.subchannels):
            self._sticky_failure = True
            self.helper.request_reresolution(now)

    def _report(self):
        if self.is_ready():
            self.helper.update_state(READY, None)
        elif self.idle:
            self.helper.update_state(IDLE, None)
        elif self._sticky_failure:
            self.helper.update_state(
                TRANSIENT_FAILURE, "failed to connect to all addresses; last error: %s" % self._error)
        else:
            self.helper.update_state(CONNECTING, None)


POLICIES = {}


def register_policy(cls):
    """Make a LoadBalancingPolicy subclass available under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, LoadBalancingPolicy)) or not cls.name:
        raise TypeError("a load-balancing policy is a LoadBalancingPolicy subclass with a name")
    POLICIES[cls.name] = cls
    return cls


def policy_for(options):
    """The policy class a channel with these ChannelOptions uses.  Raises
    ValueError for a service config that names no registered policy (grpcio
    then fails every call of the channel)."""
    names = options.lb_config_names
    if names:
        for name in names:
            if name in POLICIES:
                return POLICIES[name]
        raise ValueError("errors validating service config: [field:loadBalancingConfig error:"
                         "No known policies in list: %s]" % " ".join(names))
    name = options.lb_policy_name
    if name is None:
        return POLICIES["pick_first"]
    if name not in POLICIES:
        _LOGGER.error("LB policy %r passed through channel options does not exist; using pick_first "
                      "(known: %s)", name, ", ".join(sorted(POLICIES)))
        return POLICIES["pick_first"]
    return POLICIES[name]
