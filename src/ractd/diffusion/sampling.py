"""Probability-flow ODE samplers as pure functions (docs/algorithm.md §3.6), in the style of k-diffusion.

`denoiser(x, sigma, **extra_args)` maps a batch and a per-sample noise level to the denoised estimate D(x, σ); any
module of `ractd.diffusion.denoiser` (EDM teacher, CTM student, ε-prediction DDPM) is one, with
`extra_args={"cond": c, "clamp": True}`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def initial_noise(
    shape: tuple[int, ...], scale: float, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """x_T ~ N(0, scale²·I). The reference code uses scale = 1 at σ_max = 80 (docs/algorithm.md §3.6, §8 item 6); EDM
    uses σ_max."""
    return scale * torch.randn(shape, generator=generator, device=device)


def _sigma_batch(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return sigma.to(x.device, x.dtype).expand(x.shape[0])


def heun_step(denoiser: Denoiser, x: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor,
              extra_args: dict | None = None) -> torch.Tensor:
    """One 2nd-order Heun step of dx/dσ = (x − D(x, σ))/σ from σ to σ_next (EDM Alg. 1, S_churn = 0).

    σ and σ_next may be per-sample (B,); the correction is skipped where σ_next = 0 (Euler there).
    """
    extra = extra_args or {}
    s = sigma.reshape(-1, *([1] * (x.dim() - 1)))
    s_next = sigma_next.reshape(-1, *([1] * (x.dim() - 1)))
    d = (x - denoiser(x, sigma, **extra)) / s
    x_euler = x + (s_next - s) * d
    safe_next = torch.where(sigma_next > 0, sigma_next, torch.ones_like(sigma_next))
    d_next = (x_euler - denoiser(x_euler, safe_next, **extra)) / safe_next.reshape_as(s_next)
    x_heun = x + (s_next - s) * (d + d_next) / 2
    return torch.where(s_next > 0, x_heun, x_euler)


@torch.no_grad()
def sample_heun(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None
                ) -> torch.Tensor:
    """Deterministic Heun over the grid σ_0 > σ_1 > … (docs/algorithm.md §3.6): len(sigmas) − 1 steps, 2 evaluations
    each.

    With the 80-point Karras grid that is 79 steps = 158 network evaluations; the last step ends at
    σ_min = 0.02 (no final jump to 0). Clamp D inside `denoiser` if wanted (the reference does).
    """
    for i in range(len(sigmas) - 1):
        x = heun_step(denoiser, x, _sigma_batch(sigmas[i], x), _sigma_batch(sigmas[i + 1], x), extra_args)
    return x


@torch.no_grad()
def sample_euler(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None
                 ) -> torch.Tensor:
    """1st-order Euler over the grid: len(sigmas) − 1 network evaluations."""
    extra = extra_args or {}
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = (x - denoiser(x, _sigma_batch(s, x), **extra)) / s
        x = x + (s_next - s) * d
    return x


def heun_nfe(n_levels: int) -> int:
    """Network evaluations of `sample_heun` on an n-level grid ending above 0: 2·(n − 1)."""
    return 2 * (n_levels - 1)
