"""ConditionalUnet1D: the Diffusion-Policy 1-D temporal U-Net with FiLM conditioning (docs/algorithm.md §3.1, §4.1).

One class serves the teacher (one time input τ_t) and the CTM student (two time inputs τ_t, τ_s
through the *same* embedding, docs/algorithm.md §4.1). The FiLM vector is g = concat(emb(τ_t)[, emb(τ_s)], c).
With `token_dim > 0` the network instead takes condition tokens (B, N, E) and reads them through a cross-attention
block after every encoder and decoder residual block (docs/conditioning.md §2); without it, it is built and computes
exactly as before (same parameters, same creation order, same arithmetic).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .attention import CrossAttention1D
from .embeddings import TimeEmbedding


class Conv1dBlock(nn.Sequential):
    """Conv1d → GroupNorm → Mish."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int):
        super().__init__(
            nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out_channels),
            nn.Mish(),
        )


class ConditionalResidualBlock1D(nn.Module):
    """h = Conv(x); Dropout; h = scale·h + bias (FiLM of Mish(g)); h = Conv(h) + Res(x); Dropout (docs/algorithm.md
    §3.1)."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, kernel_size: int, n_groups: int, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(
            [Conv1dBlock(in_ch, out_ch, kernel_size, n_groups), Conv1dBlock(out_ch, out_ch, kernel_size, n_groups)]
        )
        self.out_channels = out_ch
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_ch))
        self.residual_conv = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.dropout_a = nn.Dropout(dropout)
        self.dropout_b = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        h = self.dropout_a(self.blocks[0](x))
        scale, bias = self.cond_encoder(g).unsqueeze(-1).chunk(2, dim=1)
        h = self.blocks[1](scale * h + bias)  # plain scale (cond_predict_scale), not 1 + scale
        return self.dropout_b(h + self.residual_conv(x))


class ConditionalUnet1D(nn.Module):
    """F(x, τ_t[, τ_s], c): (B, H, C) → (B, H, C).

    Args:
        input_dim: channels C of the diffused sequence (action or state dimension).
        global_cond_dim: size of the conditioning vector c (0 for none).
        time_embed_dim: dsed, size of each time embedding.
        down_dims: channels per level; H must be divisible by 2**(len(down_dims) - 1).
        n_time_inputs: 1 (teacher: t) or 2 (student: t and s, shared embedding).
        dropout: p for encoder/decoder residual blocks; mid_dropout: p for the two mid blocks
            (the reference code's hidden default is 0.2 even for the teacher, docs/algorithm.md §3.1).
        token_dim: E > 0 makes this a cross-attention network: `cond` is then a token matrix (B, N, E), read by a
            `CrossAttention1D` after each encoder/decoder residual block (none in the mid blocks); it excludes
            `global_cond_dim` (the concatenation variant feeds flattened tokens through `global_cond_dim`).
        xattn_heads, xattn_q_kernel, xattn_prenorm: `CrossAttention1D`'s heads, query kernel and pre-norm.
    """

    def __init__(
        self,
        input_dim: int,
        global_cond_dim: int = 0,
        time_embed_dim: int = 128,
        down_dims: Sequence[int] = (512, 1024, 2048),
        kernel_size: int = 5,
        n_groups: int = 8,
        n_time_inputs: int = 1,
        dropout: float = 0.0,
        mid_dropout: float = 0.2,
        token_dim: int = 0,
        xattn_heads: int = 4,
        xattn_q_kernel: int = 3,
        xattn_prenorm: bool = True,
    ):
        super().__init__()
        if n_time_inputs not in (1, 2):
            raise ValueError(f"n_time_inputs must be 1 or 2, got {n_time_inputs}")
        down_dims = list(down_dims)
        if not down_dims or any(d % n_groups for d in down_dims):
            raise ValueError(f"every entry of down_dims {down_dims} must be a multiple of n_groups={n_groups}")
        if token_dim < 0 or (token_dim and global_cond_dim):
            raise ValueError(
                f"token_dim={token_dim} with global_cond_dim={global_cond_dim}: a cross-attention network "
                "(token_dim > 0) takes its condition tokens in cond and no global condition vector"
            )
        self.input_dim, self.global_cond_dim = input_dim, global_cond_dim
        self.time_embed_dim, self.n_time_inputs = time_embed_dim, n_time_inputs
        self.down_dims, self.token_dim = down_dims, token_dim
        self.time_embedding = TimeEmbedding(time_embed_dim)
        cond_dim = n_time_inputs * time_embed_dim + global_cond_dim

        def block(i: int, o: int, p: float) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(i, o, cond_dim, kernel_size, n_groups, p)

        dims = [input_dim, *down_dims]
        levels = list(zip(dims[:-1], dims[1:], strict=True))
        self.down_modules = nn.ModuleList()
        for k, (d_in, d_out) in enumerate(levels):
            last = k == len(levels) - 1
            down = nn.Identity() if last else nn.Conv1d(d_out, d_out, 3, stride=2, padding=1)
            self.down_modules.append(nn.ModuleList([block(d_in, d_out, dropout), block(d_out, d_out, dropout), down]))
        mid = down_dims[-1]
        self.mid_modules = nn.ModuleList([block(mid, mid, mid_dropout), block(mid, mid, mid_dropout)])
        self.up_modules = nn.ModuleList()
        for d_in, d_out in reversed(levels[1:]):
            self.up_modules.append(
                nn.ModuleList(
                    [block(2 * d_out, d_in, dropout), block(d_in, d_in, dropout),
                     nn.ConvTranspose1d(d_in, d_in, 4, stride=2, padding=1)]
                )
            )
        self.final_conv = nn.Sequential(
            Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups), nn.Conv1d(down_dims[0], input_dim, 1)
        )
        if token_dim:  # built last: the U-Net's own weights draw the same random numbers as without attention
            def xattn(c: int) -> nn.ModuleList:
                return nn.ModuleList(
                    [CrossAttention1D(c, token_dim, xattn_heads, xattn_q_kernel, xattn_prenorm, n_groups)
                     for _ in range(2)]
                )

            self.down_xattn = nn.ModuleList([xattn(d_out) for _, d_out in levels])
            self.up_xattn = nn.ModuleList([xattn(d_in) for d_in, _ in reversed(levels[1:])])

    @property
    def horizon_multiple(self) -> int:
        """H must be a multiple of this (one halving per level but the last)."""
        return 2 ** (len(self.down_dims) - 1)

    def forward(
        self,
        x: torch.Tensor,
        tau_t: torch.Tensor,
        tau_s: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if x.shape[1] % self.horizon_multiple:
            raise ValueError(
                f"horizon {x.shape[1]} is not divisible by 2**(len(down_dims)-1) = {self.horizon_multiple}"
            )
        if (tau_s is None) != (self.n_time_inputs == 1):
            raise ValueError(f"this network takes {self.n_time_inputs} time input(s)")
        batch = x.shape[0]
        parts = [self.time_embedding(tau_t.expand(batch) if tau_t.dim() == 0 else tau_t)]
        if tau_s is not None:
            parts.append(self.time_embedding(tau_s.expand(batch) if tau_s.dim() == 0 else tau_s))
        tokens = None
        if self.token_dim:
            if cond is None or cond.dim() != 3 or cond.shape[0] != batch or cond.shape[-1] != self.token_dim:
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"expected condition tokens of shape ({batch}, N, {self.token_dim}), got {got}")
            tokens = cond
        elif self.global_cond_dim:
            if cond is None or cond.shape[-1] != self.global_cond_dim:
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"expected cond of shape (B, {self.global_cond_dim}), got {got}")
            parts.append(cond)
        g = torch.cat(parts, dim=-1)

        h = x.transpose(1, 2)  # (B, C, H)
        skips = []
        for k, (res1, res2, down) in enumerate(self.down_modules):
            if tokens is None:
                h = res2(res1(h, g), g)
            else:
                xa1, xa2 = self.down_xattn[k]
                h = xa2(res2(xa1(res1(h, g), tokens), g), tokens)
            skips.append(h)
            h = down(h)
        for res in self.mid_modules:
            h = res(h, g)
        for k, (res1, res2, up) in enumerate(self.up_modules):
            h = torch.cat([h, skips.pop()], dim=1)
            if tokens is None:
                h = up(res2(res1(h, g), g))
            else:
                xa1, xa2 = self.up_xattn[k]
                h = up(xa2(res2(xa1(res1(h, g), tokens), g), tokens))
        return self.final_conv(h).transpose(1, 2)


def insert_zero_time_columns(teacher_state: dict[str, torch.Tensor], time_embed_dim: int) -> dict[str, torch.Tensor]:
    """Warm-start map teacher → student (docs/algorithm.md §4.9).

    Every FiLM matrix W of shape [2·out, dsed + Dc] becomes [W[:, :dsed] | 0_{2·out×dsed} | W[:, dsed:]], so the
    student's new s embedding starts with no influence and G(x, t, s) = (s/t)x + (1 − s/t)·D_teacher(x, t).
    """
    out = {}
    for key, w in teacher_state.items():
        if key.endswith("cond_encoder.1.weight"):
            zeros = torch.zeros(w.shape[0], time_embed_dim, dtype=w.dtype, device=w.device)
            w = torch.cat([w[:, :time_embed_dim], zeros, w[:, time_embed_dim:]], dim=1)
        out[key] = w
    return out
