"""EDM noise levels, preconditioning and training loss (docs/algorithm.md §3.2–§3.4).

Names follow Karras et al. (2022): D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

Scaling = Literal["boundary", "edm"]
HuberVariant = Literal["elementwise_squared", "l2"]


@dataclass(frozen=True)
class EDMConfig:
    """Every constant of the EDM teacher (docs/algorithm.md §3, §10). Defaults are the reference code's."""

    sigma_min: float = 0.02
    sigma_max: float = 80.0
    rho: float = 7.0
    n_levels: int = 80
    sigma_data: float = 0.5
    scaling: Scaling = "boundary"  # "boundary": D(x, σ_min) = x (consistency-model form); "edm": standard EDM
    c_noise_scale: float = 250.0  # c_noise = 250·ln σ (EDM's 0.25 ln σ ×1000, docs/algorithm.md §3.2)
    p_mean: float = -1.2
    p_std: float = 1.2
    huber_variant: HuberVariant = "elementwise_squared"
    huber_c: float | None = None  # None: 0.00054·sqrt(numel per sample) (iCT)
    # x_T ~ N(0, init_noise_scale²·I) when sampling from σ_max: 1.0 as the released code (low-variance start),
    # σ_max as standard EDM (docs/algorithm.md §8 item 6). Used by every sampler of this model and its student.
    init_noise_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if self.n_levels < 2:
            raise ValueError(f"n_levels must be >= 2, got {self.n_levels}")
        if self.scaling not in ("boundary", "edm"):
            raise ValueError(f"scaling must be 'boundary' or 'edm', got {self.scaling!r}")
        if not self.init_noise_scale > 0:
            raise ValueError(f"init_noise_scale must be > 0, got {self.init_noise_scale}")
        if self.huber_variant not in ("elementwise_squared", "l2"):
            raise ValueError(f"huber_variant must be 'elementwise_squared' or 'l2', got {self.huber_variant!r}")


def karras_sigma(index: torch.Tensor | float, cfg: EDMConfig = EDMConfig()) -> torch.Tensor:
    """σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, clamped to [σ_min, σ_max] (docs/algorithm.md §3.4).

    Index 0 is σ_max (noisiest), N−1 is σ_min; index N (used by the CTM sampler) clamps to σ_min.
    """
    i = torch.as_tensor(index, dtype=torch.float64)
    lo, hi = cfg.sigma_min ** (1 / cfg.rho), cfg.sigma_max ** (1 / cfg.rho)
    sigma = (hi + i / (cfg.n_levels - 1) * (lo - hi)) ** cfg.rho
    return sigma.clamp(cfg.sigma_min, cfg.sigma_max).float()


def karras_sigmas(cfg: EDMConfig = EDMConfig()) -> torch.Tensor:
    """The N-point grid σ_0 = σ_max > … > σ_{N−1} = σ_min (docs/algorithm.md §3.4)."""
    return karras_sigma(torch.arange(cfg.n_levels), cfg)


def preconditioning(sigma: torch.Tensor, cfg: EDMConfig) -> tuple[torch.Tensor, ...]:
    """(c_skip, c_out, c_in, c_noise) at σ (docs/algorithm.md §3.2; EDM Table 1 for scaling='edm')."""
    sd = cfg.sigma_data
    if cfg.scaling == "boundary":
        c_skip = sd**2 / ((sigma - cfg.sigma_min) ** 2 + sd**2)
        c_out = (sigma - cfg.sigma_min) * sd / (sigma**2 + sd**2).sqrt()
    else:
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
    c_in = 1 / (sigma**2 + sd**2).sqrt()
    c_noise = cfg.c_noise_scale * torch.log(sigma + 1e-44)
    return c_skip, c_out, c_in, c_noise


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample (B,) → (B, 1, …, 1) to broadcast against x."""
    return v.reshape(-1, *([1] * (x.dim() - 1)))


def edm_denoise(
    net: Callable, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None, cfg: EDMConfig, clamp: bool = False
) -> torch.Tensor:
    """D_φ(x, σ) = c_skip·x + c_out·F_φ(c_in·x, c_noise, c) (docs/algorithm.md §3.2); optional clamp to [−1, 1]
    (inference)."""
    sigma = sigma.expand(x.shape[0]) if sigma.dim() == 0 else sigma
    c_skip, c_out, c_in, c_noise = preconditioning(sigma, cfg)
    out = _bcast(c_skip, x) * x + _bcast(c_out, x) * net(_bcast(c_in, x) * x, c_noise, cond=cond)
    return out.clamp(-1, 1) if clamp else out


def karras_loss_weight(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """λ(σ) = (σ² + σ_data²)/(σ·σ_data)² (EDM's weighting, docs/algorithm.md §3.3)."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def lognormal_sigmas(n: int, cfg: EDMConfig, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """ln σ ~ N(P_mean, P_std²), not clipped (docs/algorithm.md §3.3)."""
    z = torch.randn(n, generator=generator, device=device)
    return (cfg.p_mean + cfg.p_std * z).exp()


def huber_c(numel_per_sample: int) -> float:
    """c = 0.00054·sqrt(numel of one sample) (iCT's choice, docs/algorithm.md §3.3): hopper (16×3) → 0.00374."""
    return 0.00054 * math.sqrt(numel_per_sample)


def pseudo_huber(
    pred: torch.Tensor,
    target: torch.Tensor,
    c: float | None = None,
    variant: HuberVariant = "elementwise_squared",
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean pseudo-Huber distance, optionally weighted per sample (docs/algorithm.md §3.3, §8 item 7).

    elementwise_squared (reference code): sqrt((e²)² + c²) − c per element, e = pred − target.
    l2 (iCT): sqrt(‖e‖² + c²) − c per sample.
    """
    if c is None:
        c = huber_c(pred[0].numel())
    err = pred - target
    if variant == "elementwise_squared":
        loss = ((err**2) ** 2 + c**2).sqrt() - c
    elif variant == "l2":
        loss = (err.flatten(1).pow(2).sum(1) + c**2).sqrt() - c
    else:
        raise ValueError(f"unknown pseudo-Huber variant {variant!r}")
    if weight is not None:
        loss = loss * (_bcast(weight, loss) if loss.dim() > 1 else weight)
    return loss.mean()


def edm_loss(
    denoiser: Callable,
    x0: torch.Tensor,
    cond: torch.Tensor | None,
    generator: torch.Generator | None = None,
    return_denoised: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Teacher loss: E_σ,ε[λ(σ)·PH(D_φ(x0 + σε, σ), x0)], ln σ ~ N(P_mean, P_std²) (docs/algorithm.md §3.3).

    `denoiser(x, σ, cond)` is D_φ with its constants in `denoiser.edm` (an `EDMDenoiser`). With return_denoised,
    also the prediction D_φ(x0 + σε, σ) (the reward-aware teacher scores it).
    """
    cfg = denoiser.edm
    sigma = lognormal_sigmas(x0.shape[0], cfg, generator, x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    denoised = denoiser(x0 + _bcast(sigma, x0) * eps, sigma, cond)
    weight = karras_loss_weight(sigma, cfg.sigma_data)
    loss = pseudo_huber(denoised, x0, cfg.huber_c, cfg.huber_variant, weight)
    return (loss, denoised) if return_denoised else loss
