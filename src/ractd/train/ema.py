"""Exponential moving average of the trainable weights with the power-law warm-up of docs/algorithm.md §3.5.

Reproduces diffusion_policy's `EMAModel` (inv_gamma 1, min 0): the averaged copy starts equal to the
model, update k (0-based) uses decay `ema_decay(k)`, parameters that do not require grad (and
BatchNorm parameters) are copied rather than averaged. Buffers are copied as well (the reference
leaves them at their initial values; none of ractd's networks has buffers that change).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay(update_index: int, power: float = 0.75, max_decay: float = 0.9999,
              inv_gamma: float = 1.0, min_decay: float = 0.0) -> float:
    """Decay used by EMA update number `update_index` (0-based), docs/algorithm.md §3.5.

    0 for the first two updates, then 1 − (1 + k′/inv_gamma)^(−power) with k′ = update_index − 1,
    clamped to [min_decay, max_decay].
    """
    if update_index < 0:
        raise ValueError(f"update_index must be >= 0, got {update_index}")
    k = update_index - 1
    if k <= 0:
        return 0.0
    value = 1.0 - (1.0 + k / inv_gamma) ** (-power)
    return max(min_decay, min(value, max_decay))


class EMA:
    """An averaged copy of a module, updated with `update(model)` after every optimizer step."""

    def __init__(self, model: nn.Module, power: float = 0.75, max_decay: float = 0.9999) -> None:
        self.averaged: nn.Module = copy.deepcopy(model).eval().requires_grad_(False)
        self.power = power
        self.max_decay = max_decay
        self.updates = 0  # number of update() calls so far = index of the next update

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        """θ_ema ← d·θ_ema + (1 − d)·θ with d = ema_decay(updates); returns d."""
        decay = ema_decay(self.updates, self.power, self.max_decay)
        averaged, online = [], []
        for module, ema_module in zip(model.modules(), self.averaged.modules(), strict=True):
            copy_only = isinstance(module, nn.modules.batchnorm._BatchNorm)
            for p, q in zip(module.parameters(recurse=False), ema_module.parameters(recurse=False),
                            strict=True):
                if copy_only or not p.requires_grad:
                    q.copy_(p.detach())
                else:
                    averaged.append(q)
                    online.append(p.detach().to(q.dtype))
            for b, c in zip(module.buffers(recurse=False), ema_module.buffers(recurse=False), strict=True):
                c.copy_(b)
        if averaged:  # θ_ema ← d·θ_ema + (1 − d)·θ, batched over all tensors
            torch._foreach_mul_(averaged, decay)
            torch._foreach_add_(averaged, online, alpha=1.0 - decay)
        self.updates += 1
        return decay
