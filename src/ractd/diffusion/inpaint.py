"""Inpainting: entries of a plan that are known (the observed start state, a goal) are imposed while sampling
(docs/conditioning.md §5).

Two ways, one knob (`INPAINT_MODES`):
- `noised`: before every denoising step the known entries are replaced by a fresh forward-noised copy of their value,
  √ᾱ_t·v + √(1 − ᾱ_t)·ξ, so they sit at the same noise level as the rest of x_t; the clean value is set at the end.
- `clean`: the known entries are replaced by their clean value after every step (and in the initial noise); training
  then puts the clean values into x_t and the network output as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .noise import Generators, gaussian_noise

INPAINT_MODES = ("noised", "clean")


@dataclass(frozen=True)
class KnownEntries:
    """Where (`mask`, bool) and what (`values`) the known entries of a plan x (B, H, C) are; both broadcast to x."""

    mask: torch.Tensor
    values: torch.Tensor

    def __post_init__(self):
        if self.mask.dtype != torch.bool:
            raise ValueError(f"KnownEntries: mask must be a bool tensor, got {self.mask.dtype}")

    def check(self, x: torch.Tensor) -> None:
        """Raise a clear error unless mask and values broadcast to x's shape."""
        for name, t in (("mask", self.mask), ("values", self.values)):
            try:
                shape = torch.broadcast_shapes(t.shape, x.shape)
            except RuntimeError:
                shape = None
            if shape != x.shape:
                raise ValueError(f"KnownEntries: {name} of shape {tuple(t.shape)} does not broadcast to the plan's "
                                 f"shape {tuple(x.shape)}")


def known_states(horizon: int, action_dim: int, start: torch.Tensor, goal: torch.Tensor | None = None
                 ) -> KnownEntries:
    """The start state at step 0 (and the goal state at step H − 1) of plans laid out as [actions, states] per step.

    start, goal: (B, S). Returns masks and values of shape (B, H, action_dim + S); action channels are never known.
    """
    if start.dim() != 2 or (goal is not None and goal.shape != start.shape):
        got = None if goal is None else tuple(goal.shape)
        raise ValueError(f"known_states: start must be (B, S) and goal the same shape, got {tuple(start.shape)}, {got}")
    if horizon < (1 if goal is None else 2):
        what = "a start" if goal is None else "a start and a goal"
        raise ValueError(f"known_states: horizon {horizon} is too short for {what}")
    b, s = start.shape
    values = start.new_zeros(b, horizon, action_dim + s)
    mask = torch.zeros(b, horizon, action_dim + s, dtype=torch.bool, device=start.device)
    values[:, 0, action_dim:] = start
    mask[:, 0, action_dim:] = True
    if goal is not None:
        values[:, -1, action_dim:] = goal
        mask[:, -1, action_dim:] = True
    return KnownEntries(mask, values)


def impose_known(x: torch.Tensor, known: KnownEntries) -> torch.Tensor:
    """x with the known entries replaced by their clean values."""
    return torch.where(known.mask, known.values.to(x.dtype), x)


def impose_known_noised(x: torch.Tensor, known: KnownEntries, alpha_bar_t: torch.Tensor,
                        generator: Generators = None) -> torch.Tensor:
    """x with the known entries replaced by √ᾱ_t·v + √(1 − ᾱ_t)·ξ, ξ ~ N(0, I): their forward-noised value at step t."""
    xi = gaussian_noise(x.shape, generator, x.device, x.dtype)
    noised = alpha_bar_t.sqrt() * known.values.to(x.dtype) + (1 - alpha_bar_t).sqrt() * xi
    return torch.where(known.mask, noised, x)
