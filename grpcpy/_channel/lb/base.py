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
    "Subchannel", "LoadBalancingPolicy", "PickInfo", "register_policy", "policy_for", "policy_named",
    "choose_policy", "POLICIES",
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
# the bounds of a TRANSIENT_FAILURE message (addresses listed, characters)
_MAX_LISTED = 8
_MAX_TEXT = 1000


class Subchannel:
    """The plane's record of one address: its state and its own backoff.

    States: IDLE (no connection, none being made), CONNECTING (a 'connect'
    action is outstanding, ``sub_id`` names it), READY (``sub_id`` names the
    live connection), TRANSIENT_FAILURE (the last attempt failed; the
    subchannel goes back to IDLE by itself at ``retry_at``).  Policies read
    these fields and ask the plane (their helper) to change them.
    """
    __slots__ = ("address", "state", "sub_id", "backoff", "deadline", "retry_at", "error", "channelz",
                 "connected", "health", "health_backoff", "health_retry_at")

    def __init__(self, address, backoff):
        self.address = address
        self.state = IDLE
        self.sub_id = None
        self.backoff = backoff
        self.deadline = _INF     # connect deadline while CONNECTING
        self.retry_at = _INF     # end of the backoff while TRANSIENT_FAILURE
        self.error = None
        self.channelz = None     # its grpcpy._channelz.Node, from its first connection
        # client-side health checking (plane.py): the connection is up, its
        # Watch stream, and when a failed Watch is tried again
        self.connected = False
        self.health = None
        self.health_backoff = None
        self.health_retry_at = _INF

    def __repr__(self):
        return "<Subchannel %s %s id=%s>" % (self.address, STATE_NAMES[self.state], self.sub_id)


class PickInfo:
    """What a policy's ``pick`` learns about the call it places: ``method``
    ('/pkg.Service/Method') and ``metadata`` (the call's (key, value)
    pairs, or None).  Made only for policies whose ``uses_pick_info`` is
    true, so the everyday picks allocate nothing."""
    __slots__ = ("_call",)

    def __init__(self, call):
        self._call = call

    @property
    def method(self):
        if self._call is None:
            return None
        method = self._call._method
        return method.decode("ascii") if isinstance(method, bytes) else method

    @property
    def metadata(self):
        return None if self._call is None else self._call._metadata


class LoadBalancingPolicy:
    """What a policy implements.  ``helper`` is the plane, which offers:

    - ``helper.subchannel(address)`` -> the Subchannel for an address (shared;
      its ``address`` is the latest Address given for it, attributes included),
    - ``helper.connect(sub, now)``: start connecting an IDLE subchannel,
    - ``helper.disconnect(sub)``: drop its connection or attempt, back to IDLE
      with a fresh backoff,
    - ``helper.release(sub)``: the policy no longer uses it,
    - ``helper.update_state(state, error)``: the policy's aggregate state,
    - ``helper.request_reresolution(now)``,
    - ``helper.open_stream(sub, method, request, on_message, on_end)``: a
      server-streaming call on a READY subchannel's connection (load
      reports, health watches); ``on_message(now, data)`` and
      ``on_end(now, code, details)`` run on the plane's thread; the handle
      returned has ``cancel()``.  The stream ends when its connection does,
    - ``helper.random()``: the channel's randomness (injectable in tests).

    The plane calls ``subchannel_state_changed`` for changes it makes itself
    (connect results, timeouts, end of backoff, connection loss), not for the
    ones the policy asked for.  A subclass sets ``name`` and implements
    ``update_addresses``, ``subchannel_state_changed``, ``_connect``,
    ``pick`` and ``is_ready``; leaving IDLE, the failure bookkeeping and the
    state report are here.

    ``pick(info)`` returns None (no connection now: the call waits or fails
    by the driver's rules), the ``sub_id`` of a READY subchannel, or
    ``(sub_id, done)``: ``done(now, code, trailing)`` is then called once
    when the attempt ends, with its status code (an int) and trailing
    metadata, on the plane's thread (in the sync facade shortly after the
    end), or with ``code`` None when the pick was not used after all.
    ``info`` is a :class:`PickInfo` when the class sets ``uses_pick_info``,
    else None.

    A policy's configuration is its entry in the service config's
    loadBalancingConfig: ``parse_config(raw)`` turns the JSON object into
    what the policy keeps (ValueError for a bad one: the service config is
    rejected), the policy is made with it and told of a new one by
    ``update_config``.  ``next_timer()``/``timer(now)``: a policy with timers
    of its own (weights, ejection intervals, attempt delays).
    """
    name = None
    uses_pick_info = False
    # whether the subchannels of this policy are health-checked when the
    # service config has healthCheckConfig (gRFC A17: not under pick_first)
    health_checks = True

    def __init__(self, helper, config=None):
        self.helper = helper
        self.config = config
        self.subchannels = []
        self.idle = True
        self._failed = set()        # ids of subchannels failed since the last success
        self._sticky_failure = False
        self._error = None

    @classmethod
    def parse_config(cls, raw):
        """The policy's config from its loadBalancingConfig entry (a dict);
        raise ValueError naming what is wrong."""
        return raw

    def update_config(self, now, config):
        """A new service config names this policy again, with ``config``."""
        self.config = config

    def update_addresses(self, now, addresses):
        raise NotImplementedError

    def next_timer(self):
        """When the policy wants ``timer(now)`` (the plane's clock)."""
        return _INF

    def timer(self, now):
        pass

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

    def pick(self, info):
        raise NotImplementedError

    def is_ready(self):
        raise NotImplementedError

    def shutdown(self):
        pass

    def take_over(self, now, subchannels, active):
        """Become the channel's policy in place of another (a service config
        named a different one) that used ``subchannels``: the same
        subchannels, so their connections, and the calls on them, live on.
        ``active``: the other policy was not IDLE, so this one connects."""
        self._replace_subchannels([sub.address for sub in subchannels])
        if active:
            self.idle = False
            for sub in self.subchannels:
                if sub.state == READY:
                    self.subchannel_state_changed(now, sub)
            self._connect(now)
        self._report()

    # ----- shared by the policies

    def _connect_all(self, now):
        """A ``_connect`` for policies that use every subchannel: start
        connecting each IDLE one (nothing while the policy is idle)."""
        if not self.idle:
            for sub in self.subchannels:
                if sub.state == IDLE:
                    self.helper.connect(sub, now)

    def _same_addresses(self, addresses):
        """Whether ``addresses`` are the ones in use, in order; if so, their
        attributes as now given are taken (the same subchannels)."""
        subs = self.subchannels
        if len(subs) != len(addresses) or any(s.address != a for s, a in zip(subs, addresses)):
            return False
        for sub, address in zip(subs, addresses):
            sub.address = address
        return True

    def _replace_subchannels(self, addresses):
        """Use the subchannels of ``addresses``, releasing the ones no longer listed."""
        new = [self.helper.subchannel(a) for a in addresses]
        for sub, address in zip(new, addresses):
            sub.address = address       # the same address, its attributes as now given
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
        """``sub`` is in TRANSIENT_FAILURE: once all have failed, the policy
        is, and asks for re-resolution (again each time all have failed
        once more: the names may have moved)."""
        self._error = sub.error
        self._failed.add(id(sub))
        if len(self._failed) >= len(self.subchannels):
            self._failed.clear()
            self._sticky_failure = True
            self.helper.request_reresolution(now)

    def _report(self):
        if self.is_ready():
            self.helper.update_state(READY, None)
        elif self.idle:
            self.helper.update_state(IDLE, None)
        elif self._sticky_failure:
            self.helper.update_state(TRANSIENT_FAILURE, self._failure_text())
        else:
            self.helper.update_state(CONNECTING, None)

    def _failure_text(self):
        """What calls failing in TRANSIENT_FAILURE read: every address with
        its last error, in the policy's order (one "last error" hides the
        address that is down for another reason), bounded: a resolver may
        give hundreds."""
        parts = [sub.error for sub in self.subchannels if sub.error]
        if not parts:
            parts = [self._error or "no address could be reached"]
        text = "; ".join(parts[:_MAX_LISTED])
        if len(text) > _MAX_TEXT:
            text = text[:_MAX_TEXT - 3] + "..."
        if len(parts) > _MAX_LISTED:
            text += "; and %d more" % (len(parts) - _MAX_LISTED)
        return "failed to connect to all addresses: " + text


POLICIES = {}


def register_policy(cls):
    """Make a LoadBalancingPolicy subclass available under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, LoadBalancingPolicy)) or not cls.name:
        raise TypeError("a load-balancing policy is a LoadBalancingPolicy subclass with a name")
    POLICIES[cls.name] = cls
    return cls


def choose_policy(entries):
    """(class, config) of the first registered policy in a
    loadBalancingConfig list of ``{name: raw}`` objects, its config parsed
    by the class; ValueError when none is registered or its config is bad."""
    names = []
    for entry in entries:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError("oneOf violation")
        (name, raw), = entry.items()
        names.append(name)
        cls = POLICIES.get(name)
        if cls is not None:
            if raw is None:
                raw = {}
            if not isinstance(raw, dict):
                raise ValueError("%s: config should be an object" % name)
            try:
                return cls, cls.parse_config(raw)
            except ValueError as exc:
                raise ValueError("%s: %s" % (name, exc)) from None
    raise ValueError("No known policies in list: %s" % " ".join(names))


def policy_for(options):
    """The policy class a channel with these ChannelOptions uses.  Raises
    ValueError for a service config that names no registered policy (the
    service config's validation rejects one before that)."""
    return policy_named(options.lb_config_names, options.lb_policy_name)


def policy_named(names, name):
    """The policy class of a service config's policy ``names`` (first choice
    first), else of grpc.lb_policy_name ``name``, else pick_first."""
    if names:
        for choice in names:
            if choice in POLICIES:
                return POLICIES[choice]
        raise ValueError("errors validating service config: [field:loadBalancingConfig error:"
                         "No known policies in list: %s]" % " ".join(names))
    if name is None:
        return POLICIES["pick_first"]
    if name not in POLICIES:
        _LOGGER.error("LB policy %r passed through channel options does not exist; using pick_first "
                      "(known: %s)", name, ", ".join(sorted(POLICIES)))
        return POLICIES["pick_first"]
    return POLICIES[name]
