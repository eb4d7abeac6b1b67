"""DDPM/DDIM baseline with ε-prediction (Diffusion Policy's scheduler; for the Table 3.3 comparison).

Cosine ("squaredcos_cap_v2") betas, T training steps; DDIM sampling (η = 0) with any number of steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DDPMConfig:
    num_train_steps: int = 100
    beta_max: float = 0.999
    clip_sample: bool = True


def cosine_alpha_bars(cfg: DDPMConfig) -> torch.Tensor:
    """ᾱ_t of the cosine schedule (Nichol & Dhariwal 2021, Eq. 17) via betas capped at beta_max."""
    def f(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    T = cfg.num_train_steps
    betas = torch.tensor([min(1 - f((i + 1) / T) / f(i / T), cfg.beta_max) for i in range(T)], dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).float()


def ddpm_loss(
    net: Callable, x0: torch.Tensor, cond: torch.Tensor | None, cfg: DDPMConfig, generator=None
) -> torch.Tensor:
    """E_t,ε ‖ε − ε_θ(√ᾱ_t x0 + √(1−ᾱ_t) ε, t)‖² (Ho et al. 2020, Eq. 14)."""
    alpha_bar = cosine_alpha_bars(cfg).to(x0.device)
    t = torch.randint(0, cfg.num_train_steps, (x0.shape[0],), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    a = alpha_bar[t].reshape(-1, *([1] * (x0.dim() - 1)))
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    return torch.nn.functional.mse_loss(net(x_t, t.float(), cond=cond), eps)


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
