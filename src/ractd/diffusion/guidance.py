"""Classifier-free guidance around any network net(x, t, cond=c) (docs/conditioning.md §3–4).

Training drops the condition of each sample with probability p (`drop_condition`), so one network learns the
conditional and the unconditional prediction. Sampling evaluates both in one batched call of size 2B and combines
them (`cfg_combine`); `guided` wraps a network so that every sampler runs guided without knowing it.

The null condition is a tensor of the condition's per-sample shape: zeros by default, or any (learnable) tensor the
caller owns.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

GUIDANCE_FORMS = ("ho", "interp")


def cfg_combine(out_cond: torch.Tensor, out_null: torch.Tensor, scale: float, form: str = "ho") -> torch.Tensor:
    """`ho`: (1 + λ)·out_cond − λ·out_null with λ = scale; `interp`: out_null + w·(out_cond − out_null) with w = scale.

    Both are affine with weights summing to 1, so `interp` with w = 1 + λ is `ho` with λ, and combining x̂0 or ε
    predictions is the same thing.
    """
    if form == "ho":
        return (1 + scale) * out_cond - scale * out_null
    if form == "interp":
        return out_null + scale * (out_cond - out_null)
    raise ValueError(f"guidance form must be one of {GUIDANCE_FORMS}, got {form!r}")


def null_condition(cond: torch.Tensor, null: torch.Tensor | None = None) -> torch.Tensor:
    """The null condition for every sample of `cond` (B, ...): zeros, or `null` (shape cond.shape[1:]) repeated."""
    if null is None:
        return torch.zeros_like(cond)
    if tuple(null.shape) != tuple(cond.shape[1:]):
        raise ValueError(f"null condition of shape {tuple(null.shape)} does not match one sample's condition "
                         f"{tuple(cond.shape[1:])}")
    return null.to(cond.dtype).expand_as(cond)


def condition_dropout_mask(batch: int, p: float, generator: torch.Generator | None = None,
                           device: torch.device | str | None = None) -> torch.Tensor:
    """(B,) bool, each entry True with probability p: the samples whose condition is dropped."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"condition dropout probability must be in [0, 1], got {p}")
    return torch.rand(batch, generator=generator, device=device) < p


def drop_condition(cond: torch.Tensor, p: float, generator: torch.Generator | None = None,
                   null: torch.Tensor | None = None) -> torch.Tensor:
    """`cond` (B, ...) with each sample's condition replaced by the null condition with probability p."""
    drop = condition_dropout_mask(cond.shape[0], p, generator, cond.device)
    return torch.where(drop.reshape(-1, *([1] * (cond.dim() - 1))), null_condition(cond, null), cond)


def guided(net: Callable, scale: float, null: torch.Tensor | None = None, form: str = "ho") -> Callable:
    """net(x, t, cond=c) → the guided network: conditional and null in ONE call of batch 2B, then `cfg_combine`."""
    if form not in GUIDANCE_FORMS:
        raise ValueError(f"guidance form must be one of {GUIDANCE_FORMS}, got {form!r}")

    def guided_net(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            raise ValueError("classifier-free guidance needs a condition, got cond=None")
        n = x.shape[0]
        t2 = t if t.dim() == 0 else torch.cat([t, t])
        out = net(torch.cat([x, x]), t2, cond=torch.cat([cond, null_condition(cond, null)]))
        return cfg_combine(out[:n], out[n:], scale, form)

    return guided_net
