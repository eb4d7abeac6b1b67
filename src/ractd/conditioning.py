"""Condition tokens of a plan-diffusion model, from the config: the functions that training windows and the
planner both call, so a model always sees its tokens built the same way (docs/ooc-maze2d.md, docs/conditioning.md).

Waypoints (Maze2d): the tokens of a plan are its three quarter-point waypoint states, normalized to [−1, 1] like
every state, each scalar embedded by `conditioning.embed` (fourier: γ(p) = (p, sin(2⁰πp), cos(2⁰πp), …), 21 numbers
per scalar by default, so a 4-dimensional state is one 84-wide token). cross_attention reads the (B, 3, E) token
matrix; concat takes it flattened to (B, 3·E); none takes no condition, (B, 0).

Composition (the roundabout): the condition is the kinds (B, 5) of the first observation's rows, integers that the
network embeds itself (`ractd.nn.KindConditionedNet`); its null condition is every kind NULL_KIND (−1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .envs.roundabout_traffic import COMPOSITION_CLASSES, OBS_ROWS
from .nn import NULL_KIND, FourierEmbedding

if TYPE_CHECKING:
    from .config import ConditioningConfig

N_WAYPOINTS = 3  # the quarter points ⌊H/4⌋, ⌊H/2⌋, ⌊3H/4⌋ of a window


def embed_waypoints(waypoints: torch.Tensor, cfg: ConditioningConfig) -> torch.Tensor:
    """(B, K, D) normalized waypoint states → (B, K, D·per_scalar) tokens (`cfg.embed`)."""
    if cfg.embed == "identity":
        return waypoints
    return FourierEmbedding(cfg.n_freqs, cfg.include_input).to(waypoints.device)(waypoints)


def condition_tokens(waypoints: torch.Tensor, cfg: ConditioningConfig) -> torch.Tensor:
    """What the network takes as `cond` for (B, 3, D) normalized waypoints: (B, 3, E) tokens (cross_attention),
    (B, 3·E) (concat), or an empty (B, 0) (none)."""
    if waypoints.dim() != 3 or waypoints.shape[1] != N_WAYPOINTS:
        raise ValueError(f"waypoints must be (B, {N_WAYPOINTS}, state dim), got shape {tuple(waypoints.shape)}")
    if cfg.kind == "none":
        return waypoints.new_zeros(waypoints.shape[0], 0)
    tokens = embed_waypoints(waypoints.float(), cfg)
    return tokens if cfg.kind == "cross_attention" else tokens.flatten(1)


def n_condition_tokens(cfg: ConditioningConfig) -> int:
    """Tokens per condition: 3 waypoints, or one kind per roundabout observation row."""
    return N_WAYPOINTS if cfg.tokens == "waypoints" else OBS_ROWS


N_KINDS = len(COMPOSITION_CLASSES)  # null, ego, car, bicycle


def kind_condition(kinds: torch.Tensor, cfg: ConditioningConfig) -> torch.Tensor:
    """What a composition-conditioned network takes as `cond` for (B, 5) kinds: the kinds as int64, or an empty
    (B, 0) float tensor for an unconditioned one (kind none)."""
    if kinds.dim() != 2 or kinds.shape[1] != OBS_ROWS or kinds.dtype.is_floating_point:
        raise ValueError(f"kinds must be integers of shape (B, {OBS_ROWS}), got {kinds.dtype} {tuple(kinds.shape)}")
    if cfg.kind == "none":
        return torch.zeros(kinds.shape[0], 0)
    return kinds.long()


def null_condition_for(cond: torch.Tensor) -> torch.Tensor | None:
    """The null condition of one sample for classifier-free guidance: every kind NULL_KIND for integer kinds,
    None (zeros) for embedded tokens."""
    if cond.dtype.is_floating_point:
        return None
    return torch.full(cond.shape[1:], NULL_KIND, dtype=cond.dtype, device=cond.device)

