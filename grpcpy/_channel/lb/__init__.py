"""Load-balancing policies; importing this registers the built-in ones."""
__all__ = ["POLICIES", "LoadBalancingPolicy", "policy_for", "register_policy", "PickFirst", "RoundRobin",
           "WeightedRoundRobin", "RingHash", "LeastRequest", "OutlierDetection"]

from grpcpy._channel.lb.base import POLICIES, LoadBalancingPolicy, policy_for, register_policy  # noqa: F401
from grpcpy._channel.lb.pick_first import PickFirst  # noqa: F401
from grpcpy._channel.lb.round_robin import RoundRobin  # noqa: F401
from grpcpy._channel.lb.weighted_round_robin import WeightedRoundRobin  # noqa: F401
from grpcpy._channel.lb.ring_hash import RingHash  # noqa: F401
from grpcpy._channel.lb.least_request import LeastRequest  # noqa: F401
from grpcpy._channel.lb.outlier_detection import OutlierDetection  # noqa: F401
