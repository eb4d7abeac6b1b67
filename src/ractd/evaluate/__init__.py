"""Evaluation: seeded, vectorized rollouts, true returns, normalized scores, result JSON and plots
(docs/algorithm.md §6). Plots import matplotlib lazily, from ``ractd.evaluate.plots``."""

from ractd.evaluate.metrics import (
    episode_return,
    mean_and_standard_error,
    normalized_score,
    running_max_return,
)
from ractd.evaluate.results import (
    CheckpointEntry,
    EvalResult,
    TopKCheckpoints,
    check_result_path,
    result_file_name,
)
from ractd.evaluate.rollout import BatchPolicy, evaluate, evaluate_sequential, stack_infos
from ractd.evaluate.vector_env import EnvFactory, EpisodeSlots

__all__ = [
    "BatchPolicy",
    "CheckpointEntry",
    "EnvFactory",
    "EpisodeSlots",
    "EvalResult",
    "TopKCheckpoints",
    "check_result_path",
    "episode_return",
    "evaluate",
    "evaluate_sequential",
    "mean_and_standard_error",
    "normalized_score",
    "result_file_name",
    "running_max_return",
    "stack_infos",
]
