"""DDPM: the cosine schedule, the training loss and two samplers (docs/conditioning.md §4).

- The ε-prediction baseline of the Table 3.3 comparison (Diffusion Policy's scheduler): cosine
  ("squaredcos_cap_v2") betas, T training steps, DDIM sampling (η = 0) with any number of steps.
- Conditioned planning: x0 or ε prediction, per-entry loss weights (`action_loss_weights`), and the ancestral
  sampler `sample_ddpm` through all T steps, with optional inpainting of known entries. Guidance is a wrapper
  around the network (`guidance.guided`), so every sampler here runs guided or not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .inpaint import INPAINT_MODES, KnownEntries, impose_known, impose_known_noised
from .noise import Generators, gaussian_noise

PREDICTIONS = ("epsilon", "x0")


@dataclass(frozen=True)
class DDPMConfig:
    num_train_steps: int = 100
    beta_max: float = 0.999
    clip_sample: bool = True


def cosine_betas(cfg: DDPMConfig) -> torch.Tensor:
    """β_t = min(1 − f((t+1)/T)/f(t/T), β_max), t = 0..T−1, float64 (Nichol & Dhariwal 2021, Eq. 17)."""
    def f(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    T = cfg.num_train_steps
    return torch.tensor([min(1 - f((i + 1) / T) / f(i / T), cfg.beta_max) for i in range(T)], dtype=torch.float64)


def cosine_alpha_bars(cfg: DDPMConfig) -> torch.Tensor:
    """ᾱ_t = Π_{i≤t}(1 − β_i) of the cosine schedule (Nichol & Dhariwal 2021, Eq. 17), float32."""
    return torch.cumprod(1 - cosine_betas(cfg), 0).float()


def posterior_coefficients(cfg: DDPMConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c0_t, ct_t, β̃_t), float64, with q(x_{t−1} | x_t, x0) = N(c0_t·x0 + ct_t·x_t, β̃_t) and ᾱ_{−1} = 1:
    c0 = √ᾱ_{t−1}·β_t/(1 − ᾱ_t), ct = √α_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t), β̃_t = β_t(1 − ᾱ_{t−1})/(1 − ᾱ_t)
    (Ho et al. 2020, Eq. 6–7)."""
    betas = cosine_betas(cfg)
    alpha_bar = torch.cumprod(1 - betas, 0)
    prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    c0 = prev.sqrt() * betas / (1 - alpha_bar)
    ct = (1 - betas).sqrt() * (1 - prev) / (1 - alpha_bar)
    return c0, ct, betas * (1 - prev) / (1 - alpha_bar)


def action_loss_weights(horizon: int, transition_dim: int, action_dim: int, action_weight: float) -> torch.Tensor:
    """(H, C) loss weights for plans laid out as [actions, states] per step: 1 everywhere but the first step's
    action channels, which get `action_weight`."""
    if not 0 <= action_dim <= transition_dim or horizon < 1:
        raise ValueError(f"action_loss_weights: need horizon >= 1 and 0 <= action_dim <= transition_dim, got "
                         f"{horizon}, {action_dim}, {transition_dim}")
    weights = torch.ones(horizon, transition_dim)
    weights[0, :action_dim] = action_weight
    return weights


def check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def x0_from_output(out: torch.Tensor, x_t: torch.Tensor, alpha_bar_t: torch.Tensor, prediction: str) -> torch.Tensor:
    """x̂0: the output itself (x0 prediction) or (x_t − √(1 − ᾱ_t)·ε̂)/√ᾱ_t (ε prediction, Ho et al. 2020, Eq. 4)."""
    if prediction == "x0":
        return out
    return (x_t - (1 - alpha_bar_t).sqrt() * out) / alpha_bar_t.sqrt()


def ddpm_loss(
    net: Callable,
    x0: torch.Tensor,
    cond: torch.Tensor | None,
    cfg: DDPMConfig,
    generator=None,
    *,
    prediction: str = "epsilon",
    weights: torch.Tensor | None = None,
    known_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """mean(w ⊙ (target − net(x_t, t, c))²), x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε, t uniform on 0..T−1 (Ho et al. 2020, Eq. 14).

    target = ε (`prediction="epsilon"`) or x0 (`"x0"`); w = `weights` (broadcast to x0, e.g. `action_loss_weights`)
    or 1. `known_mask` (bool, broadcast to x0): clean inpainting during training — those entries of x_t are the clean
    x0 and the network's output there is replaced by the target, so they add no error.
    """
    check_prediction(prediction)
    if weights is not None:
        try:
            fits = torch.broadcast_shapes(weights.shape, x0.shape) == x0.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"loss weights of shape {tuple(weights.shape)} do not broadcast to {tuple(x0.shape)}")
    alpha_bar = cosine_alpha_bars(cfg).to(x0.device)
    t = torch.randint(0, cfg.num_train_steps, (x0.shape[0],), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    a = alpha_bar[t].reshape(-1, *([1] * (x0.dim() - 1)))
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    target = eps if prediction == "epsilon" else x0
    if weights is None and known_mask is None:
        return torch.nn.functional.mse_loss(net(x_t, t.float(), cond=cond), target)
    if known_mask is not None:
        x_t = torch.where(known_mask, x0, x_t)
    out = net(x_t, t.float(), cond=cond)
    if known_mask is not None:
        out = torch.where(known_mask, target, out)
    sq = (out - target) ** 2
    if weights is None:
        return sq.mean()
    return (sq * weights.to(sq)).mean()


def ddpm_step(x_t: torch.Tensor, x0_hat: torch.Tensor, t: int, coefficients: tuple[torch.Tensor, ...],
              noise: torch.Tensor | None) -> torch.Tensor:
    """x_{t−1} = c0_t·x̂0 + ct_t·x_t + √β̃_t·ξ: a draw from q(x_{t−1} | x_t, x̂0); no noise at t = 0 or with noise=None."""
    c0, ct, var = (c[t].to(x_t.dtype) for c in coefficients)
    mean = c0 * x0_hat + ct * x_t
    return mean if noise is None or t == 0 else mean + var.sqrt() * noise


@torch.no_grad()
def sample_ddpm(
    net: Callable,
    x: torch.Tensor,
    cond: torch.Tensor | None,
    cfg: DDPMConfig,
    *,
    prediction: str = "x0",
    clip_denoised: bool | None = None,
    known: KnownEntries | None = None,
    inpaint: str = "noised",
    generator: Generators = None,
) -> torch.Tensor:
    """Ancestral DDPM sampling from x = x_T ~ N(0, I) through all T steps: exactly T network evaluations.

    Each step predicts x̂0 (from x0 or ε output; clipped to [−1, 1] if `clip_denoised`, default `cfg.clip_sample`)
    and draws x_{t−1} from the posterior q(x_{t−1} | x_t, x̂0) (`ddpm_step`). With `known`, the known entries are
    imposed as `inpaint` says (`noised` or `clean`, see `inpaint.py`) and equal their values exactly in the result.
    For classifier-free guidance pass `guidance.guided(net, λ)` as `net`. `generator` may be one per batch row
    (`noise.gaussian_noise`), so that each row's sample does not depend on the rest of the batch.
    """
    check_prediction(prediction)
    if inpaint not in INPAINT_MODES:
        raise ValueError(f"inpaint must be one of {INPAINT_MODES}, got {inpaint!r}")
    if known is not None:
        known.check(x)
    clip = cfg.clip_sample if clip_denoised is None else clip_denoised
    alpha_bar = cosine_alpha_bars(cfg).to(x.device, x.dtype)
    coefficients = tuple(c.to(x.device) for c in posterior_coefficients(cfg))
    if known is not None and inpaint == "clean":
        x = impose_known(x, known)
    for t in range(cfg.num_train_steps - 1, -1, -1):
        if known is not None and inpaint == "noised":
            x = impose_known_noised(x, known, alpha_bar[t], generator)
        out = net(x, torch.full((x.shape[0],), float(t), device=x.device), cond=cond)
        x0_hat = x0_from_output(out, x, alpha_bar[t], prediction)
        if clip:
            x0_hat = x0_hat.clamp(-1, 1)
        noise = gaussian_noise(x.shape, generator, x.device, x.dtype) if t > 0 else None
        x = ddpm_step(x, x0_hat, t, coefficients, noise)
        if known is not None and inpaint == "clean":
            x = impose_known(x, known)
    return x if known is None else impose_known(x, known)


@torch.no_grad()
def sample_ddim(
    net: Callable, x: torch.Tensor, cond: torch.Tensor | None, cfg: DDPMConfig, num_steps: int = 10
) -> torch.Tensor:
    """Deterministic DDIM (Song et al. 2021, Eq. 12 with η = 0): `num_steps` network evaluations."""
    if not 1 <= num_steps <= cfg.num_train_steps:
        raise ValueError(f"num_steps must be in [1, {cfg.num_train_steps}], got {num_steps}")
    alpha_bar = cosine_alpha_bars(cfg).to(x.device)
    steps = torch.linspace(cfg.num_train_steps - 1, 0, num_steps).round().long().tolist()
    for i, t in enumerate(steps):
        a_t = alpha_bar[t]
        a_prev = alpha_bar[steps[i + 1]] if i + 1 < len(steps) else torch.tensor(1.0, device=x.device)
        eps = net(x, torch.full((x.shape[0],), float(t), device=x.device), cond=cond)
        x0_hat = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if cfg.clip_sample:
            x0_hat = x0_hat.clamp(-1, 1)
            eps = (x - a_t.sqrt() * x0_hat) / (1 - a_t).sqrt()
        x = a_prev.sqrt() * x0_hat + (1 - a_prev).sqrt() * eps
    return x
