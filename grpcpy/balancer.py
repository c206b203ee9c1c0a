"""Load balancing, public: the policy base class, the registry and what a
picker sees.  A policy registered here is chosen like the built-in ones, by
``loadBalancingConfig`` in the service config or by grpc.lb_policy_name.

A policy is sans-IO, like the channel's own: it is told of addresses,
subchannel states and time (``now``), and asks its helper (the channel's
plane) to connect, disconnect, report its state or open a stream on a
subchannel.  ``pick(info)`` runs for every call: return the ``sub_id`` of
a READY subchannel, None to make the call wait (or fail, by the channel's
rules), or ``(sub_id, done)`` to hear how the attempt ends.  The rules and
the helper's interface are in :class:`LoadBalancingPolicy`'s docstring;
examples/custom_balancer.py is a complete policy.
"""
from grpcpy._channel.lb import POLICIES
from grpcpy._channel.lb.base import (CONNECTING, IDLE, READY, SHUTDOWN, STATE_NAMES, TRANSIENT_FAILURE,
                                     LoadBalancingPolicy, PickInfo, Subchannel, register_policy)

__all__ = ["LoadBalancingPolicy", "PickInfo", "Subchannel", "register_policy", "registered_policies",
           "IDLE", "CONNECTING", "READY", "TRANSIENT_FAILURE", "SHUTDOWN", "STATE_NAMES"]


def registered_policies():
    """The names of the policies a channel can use."""
    return sorted(POLICIES)
