"""Planning: a trained teacher or student as a Planner (act / plan), and its evaluation policy adapter."""

from .planner import SAMPLERS, Planner, PlannerPolicy, chain_sigmas, load_planner, parse_sampler, tracking_action

__all__ = ["SAMPLERS", "Planner", "PlannerPolicy", "chain_sigmas", "load_planner", "parse_sampler",
           "tracking_action"]
