"""CrossAttention1D: a sequence along the horizon attends to a set of condition tokens (docs/conditioning.md §2).

Queries come from the U-Net feature map x (B, C, H), keys and values from the tokens z (B, N, E). The maps are 1-D
convolutions (queries along the horizon, keys/values per token), the softmax runs over the N tokens, and the output
convolution starts at zero, so a freshly built block is the identity and adding blocks to a trained network
changes nothing until they learn. No positional information is given to the tokens: permuting them leaves the
output unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class CrossAttention1D(nn.Module):
    """out = x + W_o·softmax_N(q·kᵀ/√d)·v, q = Conv_q(GroupNorm(x)), k, v = Conv_{k,v}(zᵀ) (docs/conditioning.md §2).

    Args:
        channels: C, the feature channels of x.
        token_dim: E, the width of each condition token.
        heads: attention heads; C must be a multiple (head width d = C/heads).
        q_kernel: kernel size of the query convolution along the horizon (odd; 1 = a per-position linear map).
        prenorm: GroupNorm(n_groups, C) on x before the query map.
        n_groups: groups of that GroupNorm.
    """

    def __init__(self, channels: int, token_dim: int, heads: int = 4, q_kernel: int = 3, prenorm: bool = True,
                 n_groups: int = 8):
        super().__init__()
        if channels % heads:
            raise ValueError(f"CrossAttention1D: channels {channels} must be a multiple of heads={heads}")
        if q_kernel < 1 or q_kernel % 2 == 0:
            raise ValueError(f"CrossAttention1D: q_kernel must be odd and >= 1, got {q_kernel}")
        if token_dim < 1:
            raise ValueError(f"CrossAttention1D: token_dim must be >= 1, got {token_dim}")
        self.channels, self.token_dim, self.heads = channels, token_dim, heads
        self.norm = nn.GroupNorm(n_groups, channels) if prenorm else nn.Identity()
        self.to_q = nn.Conv1d(channels, channels, q_kernel, padding=q_kernel // 2)
        self.to_k = nn.Conv1d(token_dim, channels, 1)
        self.to_v = nn.Conv1d(token_dim, channels, 1)
        self.to_out = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H) features; tokens: (B, N, E). Returns (B, C, H)."""
        if tokens.dim() != 3 or tokens.shape[-1] != self.token_dim or tokens.shape[0] != x.shape[0]:
            raise ValueError(
                f"CrossAttention1D: expected tokens of shape ({x.shape[0]}, N, {self.token_dim}), "
                f"got {tuple(tokens.shape)}"
            )
        b, c, h = x.shape
        d = c // self.heads
        z = tokens.transpose(1, 2)  # (B, E, N)
        q = self.to_q(self.norm(x)).reshape(b, self.heads, d, h)
        k = self.to_k(z).reshape(b, self.heads, d, -1)
        v = self.to_v(z).reshape(b, self.heads, d, -1)
        weights = torch.einsum("bhdq,bhdn->bhqn", q, k).mul(1 / math.sqrt(d)).softmax(dim=-1)  # over the N tokens
        attn = torch.einsum("bhqn,bhdn->bhdq", weights, v).reshape(b, c, h)
        return x + self.to_out(attn)
