"""Load-balancing policies; importing this registers the built-in ones."""
__all__ = ["POLICIES", "LoadBalancingPolicy", "policy_for", "register_policy", "PickFirst", "RoundRobin"]

from grpcpy._channel.lb.base import POLICIES, LoadBalancingPolicy, policy_for, register_policy  # noqa: F401
from grpcpy._channel.lb.pick_first import PickFirst  # noqa: F401
from grpcpy._channel.lb.round_robin import RoundRobin  # noqa: F401
