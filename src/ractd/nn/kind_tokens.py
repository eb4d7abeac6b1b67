"""A network conditioned on categorical kinds (docs/conditioning.md §1): F(x, t, kinds) with the kinds (B, N)
embedded by a learnable table the network owns, so the table trains with it and is saved with its weights.

Kind −1 is the null token: its embedding is zeros, and a condition whose every kind is −1 is the null condition of
classifier-free guidance (`NULL_KIND`, docs/conditioning.md §3). The embedded tokens feed the wrapped U-Net as its
cross-attention tokens (B, N, E) or, flattened to (B, N·E), as its global condition (the concat ablation).
"""

from __future__ import annotations

import torch
from torch import nn

from .embeddings import TokenEmbedding
from .unet import ConditionalUnet1D

NULL_KIND = -1  # the null token: a zero embedding


class KindConditionedNet(nn.Module):
    """`unet` (a `ConditionalUnet1D` with token_dim = `dim`, or global_cond_dim = `n_tokens`·`dim`) reading the
    learnable embeddings of `n_kinds` kinds; `mode` = cross_attention | concat."""

    def __init__(self, unet: ConditionalUnet1D, n_kinds: int, dim: int, n_tokens: int, mode: str):
        super().__init__()
        if mode not in ("cross_attention", "concat"):
            raise ValueError(f"KindConditionedNet: mode must be cross_attention or concat, got {mode!r}")
        expected = (dim, 0) if mode == "cross_attention" else (0, n_tokens * dim)
        if (unet.token_dim, unet.global_cond_dim) != expected:
            raise ValueError(f"KindConditionedNet ({mode}, {n_tokens} tokens of width {dim}): the U-Net takes "
                             f"token_dim={unet.token_dim}, global_cond_dim={unet.global_cond_dim}; expected "
                             f"token_dim={expected[0]}, global_cond_dim={expected[1]}")
        self.unet, self.mode, self.n_tokens = unet, mode, n_tokens
        self.embed = TokenEmbedding(n_kinds, dim)

    def tokens(self, kinds: torch.Tensor) -> torch.Tensor:
        """(B, N) kinds in [−1, n_kinds) → (B, N, E) tokens, zeros where the kind is NULL_KIND."""
        if kinds.dim() != 2 or kinds.shape[1] != self.n_tokens:
            raise ValueError(f"expected kinds of shape (B, {self.n_tokens}), got {tuple(kinds.shape)}")
        known = kinds != NULL_KIND
        return self.embed(torch.where(known, kinds, torch.zeros_like(kinds))) * known[..., None]

    def forward(self, x: torch.Tensor, tau_t: torch.Tensor, tau_s: torch.Tensor | None = None,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            raise ValueError("KindConditionedNet needs the kinds as cond, (B, N) integers")
        z = self.tokens(cond)
        return self.unet(x, tau_t, tau_s, cond=z if self.mode == "cross_attention" else z.flatten(1))
