"""Time embeddings shared by the teacher and the student (docs/algorithm.md §3.1)."""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalPosEmb(nn.Module):
    """[sin(τ f_k), cos(τ f_k)] with f_k = exp(−k ln(10000)/(half − 1)), k = 0..half−1 (docs/algorithm.md §3.1)."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2 or dim < 4:
            raise ValueError(f"SinusoidalPosEmb: dim must be even and >= 4, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, tau: torch.Tensor) -> torch.Tensor:
        args = tau.float()[:, None] * self.freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class TimeEmbedding(nn.Module):
    """SinusoidalPosEmb(d) → Linear(d, 4d) → Mish → Linear(4d, d) (docs/algorithm.md §3.1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(SinusoidalPosEmb(dim), nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, dim))

    def forward(self, tau: torch.Tensor) -> torch.Tensor:
        return self.net(tau)
