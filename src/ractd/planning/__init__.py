"""Planning: a trained teacher or student as a Planner (act / plan), and its evaluation policy adapter."""

from .accelerated import AcceleratedOneStep
from .planner import Planner, load_planner
from .policy import PlannerPolicy, tracking_action
from .samplers import SAMPLERS, chain_sigmas, parse_sampler

__all__ = ["SAMPLERS", "AcceleratedOneStep", "Planner", "PlannerPolicy", "chain_sigmas", "load_planner",
           "parse_sampler", "tracking_action"]
