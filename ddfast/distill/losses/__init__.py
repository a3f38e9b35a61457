"""Distillation losses: trajectory (TM), gradient (GM) and distribution (DM) matching."""
from ddfast.distill.losses.dm import DistributionMatching
from ddfast.distill.losses.gm import GradientMatching, get_loops, match_distance
from ddfast.distill.losses.tm import TrajectoryMatching

__all__ = ["DistributionMatching", "GradientMatching", "TrajectoryMatching", "get_loops", "match_distance"]
