"""The planner's tensor path as one module: observations (+ goal) → c → denoiser → plan, in environment units.

`PlanCore` owns the normalization constants as buffers and the trained denoiser, and is what both the
`Planner` (every sampler) and the ONNX export (`forward`, the one-step plan) call, so the two cannot drift apart.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.normalizer import MinMaxNormalizer
from ..data.windows import condition_vector

GOAL_DIM = 2  # Maze2d goal (x, y), zero-padded to a goal state [g_x, g_y, 0, 0] (docs/algorithm.md §6.2)


class Normalize(nn.Module):
    """A `MinMaxNormalizer` as module buffers: norm(x) = x·scale + offset, x = (y − offset)/scale (§1.5).

    Buffers, not the normalizer's own tensor cache: tracing must see real constants, and a dynamo export must
    not leave fake tensors behind in a cache shared with the loaded artifact.
    """

    def __init__(self, normalizer: MinMaxNormalizer):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(normalizer.scale, dtype=torch.float32))
        self.register_buffer("offset", torch.as_tensor(normalizer.offset, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.offset) / self.scale


class PlanCore(nn.Module):
    """Conditioning, the one-step jump and unnormalization of a trained artifact (teacher or student).

    `forward(observations, noise[, goal])` is the one-step plan G_θ(init_noise_scale·ε, σ_max, σ_min; c), clamped
    to [−1, 1] and unnormalized (docs/algorithm.md §5): a pure function of its inputs, so it traces to ONNX.
    """

    def __init__(self, art, goal_dim: int = GOAL_DIM):
        super().__init__()
        d = art.config.data
        self.denoiser = art.denoiser
        self.obs_norm = Normalize(art.normalizers["observations"])
        self.x_norm = Normalize(art.normalizers[d.x_key])
        self.cond_kind, self.x_key, self.n_obs_steps, self.horizon = d.cond, d.x_key, d.n_obs_steps, d.horizon
        self.obs_dim = art.obs_dim
        self.x_dim = art.act_dim if d.x_key == "actions" else art.obs_dim
        self.goal_dim = goal_dim
        if self.cond_kind == "first_last" and not 0 < goal_dim <= art.obs_dim:
            raise ValueError(f"goal_dim must be in 1..obs_dim={art.obs_dim}, got {goal_dim}")

    def condition(self, observations: torch.Tensor, goal: torch.Tensor | None = None) -> torch.Tensor:
        """c (docs/algorithm.md §1.6): norm(s_{n−To+1..n}) flattened ("history", observations (B, To, Do)), or
        (norm(s_n), norm([g, 0…])) ("first_last", observations (B, Do) or (B, To, Do), goal (B, G))."""
        if self.cond_kind == "history":
            if observations.dim() == 2:
                observations = observations[:, None]
            if observations.shape[1] != self.n_obs_steps:
                raise ValueError(f"expected {self.n_obs_steps} observations per row, got {observations.shape[1]}")
            return condition_vector(self.obs_norm.forward, observations)
        if goal is None:
            raise ValueError("this planner is goal-conditioned (data.cond='first_last'): pass goal=(x, y)")
        last = observations[:, -1] if observations.dim() == 3 else observations
        goal_state = torch.cat([goal, torch.zeros_like(last[:, goal.shape[1]:])], dim=-1)
        return condition_vector(self.obs_norm.forward, torch.stack([last, goal_state], dim=1))

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return self.x_norm.inverse(x)

    def forward(self, observations: torch.Tensor, noise: torch.Tensor, goal: torch.Tensor | None = None
                ) -> torch.Tensor:
        """One-step plan in environment units from standard normal `noise` (B, H, Dx)."""
        cond = self.condition(observations, goal)
        x = self.denoiser.one_step(self.denoiser.edm.init_noise_scale * noise, cond)
        return self.unnormalize(x.clamp(-1, 1))
