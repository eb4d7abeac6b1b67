"""Embeddings: the diffusion-time embedding shared by the teacher and the student (docs/algorithm.md §3.1), and the
condition embeddings of conditioned planning: Fourier features of continuous values, a lookup table for kinds."""

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


class FourierEmbedding(nn.Module):
    """γ(p) = (p, sin(2⁰πp), cos(2⁰πp), …, sin(2^{L−1}πp), cos(2^{L−1}πp)) per scalar (docs/conditioning.md §1).

    (..., D) → (..., D·out_per_scalar), the features of each scalar kept together: with the defaults (L = 10, input
    kept) every scalar becomes 21 numbers, so a 4-dimensional waypoint becomes one 84-wide token. Meant for
    coordinates normalized to [−1, 1]. No parameters.
    """

    def __init__(self, n_freqs: int = 10, include_input: bool = True):
        super().__init__()
        if n_freqs < 0 or (n_freqs == 0 and not include_input):
            raise ValueError(f"FourierEmbedding: need n_freqs >= 1, or n_freqs = 0 with include_input, got {n_freqs}")
        self.n_freqs, self.include_input = n_freqs, include_input
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freqs, dtype=torch.float32), persistent=False)

    @property
    def out_per_scalar(self) -> int:
        return int(self.include_input) + 2 * self.n_freqs

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        args = p[..., None] * self.freqs  # (..., D, L)
        trig = torch.stack([args.sin(), args.cos()], dim=-1).flatten(-2)  # (..., D, 2L): sin, cos interleaved
        feats = torch.cat([p[..., None], trig], dim=-1) if self.include_input else trig
        return feats.flatten(-2)


class TokenEmbedding(nn.Module):
    """A learnable lookup table: integer kinds (..., N) → tokens (..., N, dim) (docs/conditioning.md §1)."""

    def __init__(self, n_kinds: int, dim: int):
        super().__init__()
        if n_kinds < 1 or dim < 1:
            raise ValueError(f"TokenEmbedding: n_kinds and dim must be >= 1, got {n_kinds}, {dim}")
        self.n_kinds, self.dim = n_kinds, dim
        self.table = nn.Embedding(n_kinds, dim)

    def forward(self, kinds: torch.Tensor) -> torch.Tensor:
        if kinds.dtype.is_floating_point or kinds.dtype == torch.bool:
            raise ValueError(f"TokenEmbedding: kinds must be an integer tensor, got {kinds.dtype}")
        if kinds.numel() and (int(kinds.min()) < 0 or int(kinds.max()) >= self.n_kinds):
            raise ValueError(
                f"TokenEmbedding: kinds must lie in [0, {self.n_kinds}), got range "
                f"[{int(kinds.min())}, {int(kinds.max())}]"
            )
        return self.table(kinds)
