"""Preconditioned denoisers as modules: a raw network plus the constants that make it a denoiser D(x; σ).

In the style of NVlabs EDM's `EDMPrecond` and k-diffusion's `Denoiser`/`external.py`: the module owns its network
and its noise constants, so every caller (the losses, the teacher's ODE solve during distillation, the planner,
export, the benchmark) calls one object, and every sampler runs on every model through one interface:

    denoiser(x, sigma, cond=None, clamp=False) -> D(x; σ, c)        (B, H, C), σ per sample (B,) or a scalar

- `EDMDenoiser`: the teacher, D = c_skip·x + c_out·F(c_in·x; c_noise(σ), c)  (docs/algorithm.md §3.2; EDM Eq. 7).
- `CTMDenoiser`: the student; `jump(x, t, s)` is G(x, t, s) (docs/algorithm.md §4.2) and its denoiser is g(x, σ, σ).
- `EpsDenoiser`: an ε-prediction DDPM network seen as D(x; σ) = x − σ·ε(x/√(1+σ²), t(σ)) in the variance-exploding
  frame x_VE = x_VP/√ᾱ (k-diffusion's `DiscreteEpsDDPMDenoiser`), so Heun/Euler run on it too.

The raw network stays a plain submodule (`.net`): its state dict is what artifacts and checkpoints store.
"""

from __future__ import annotations

import torch
from torch import nn

from .ctm import ctm_g, ctm_jump
from .ddpm import DDPMConfig, cosine_alpha_bars
from .edm import EDMConfig, edm_denoise, karras_sigmas, preconditioning


class EDMDenoiser(nn.Module):
    """The EDM teacher D_φ(x; σ, c): network F_φ and the EDM constants (scaling, σ_min/σ_max, σ_data, c_noise)."""

    kind = "edm"

    def __init__(self, net: nn.Module, edm: EDMConfig):
        super().__init__()
        self.net, self.edm = net, edm

    @property
    def sigma_min(self) -> float:
        return self.edm.sigma_min

    @property
    def sigma_max(self) -> float:
        return self.edm.sigma_max

    def sigmas(self, n_levels: int | None = None) -> torch.Tensor:
        """The Karras grid σ_max > … > σ_min of this model (n_levels: the training grid's by default)."""
        from dataclasses import replace

        return karras_sigmas(self.edm if n_levels is None else replace(self.edm, n_levels=n_levels))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None,
                clamp: bool = False) -> torch.Tensor:
        # D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ), c)  (docs/algorithm.md §3.2)
        return edm_denoise(self.net, x, torch.as_tensor(sigma, dtype=x.dtype, device=x.device), cond, self.edm,
                           clamp)


class CTMDenoiser(EDMDenoiser):
    """The CTM student: g_θ(x, t, s) with two time inputs, the jump G_θ(x, t, s), and its denoiser g_θ(x, σ, σ).

    Built with the teacher's EDM constants (the student distils the teacher's ODE, so both must share them).
    """

    kind = "ctm"

    def __init__(self, net: nn.Module, edm: EDMConfig):
        super().__init__(net, edm)
        self._one_step: dict[tuple, tuple[torch.Tensor, ...]] = {}

    def g(self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        # g_θ(x, t, s) = c_skip(t)·x + c_out(t)·F_θ(c_in(t)·x, c_noise(t), c_noise(s), c)  (docs/algorithm.md §4.2)
        return ctm_g(self.net, x, t, s, cond, self.edm)

    def jump(self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, cond: torch.Tensor | None = None
             ) -> torch.Tensor:
        # G_θ(x, t, s) = (s/t)·x + (1 − s/t)·g_θ(x, t, s)  (docs/algorithm.md §4.2)
        return ctm_jump(self.net, x, t, s, cond, self.edm)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None,
                clamp: bool = False) -> torch.Tensor:
        """The student as a denoiser, g_θ(x, σ, σ): any ODE sampler runs on it."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        sigma = sigma.expand(x.shape[0]) if sigma.dim() == 0 else sigma
        out = self.g(x, sigma, sigma, cond)
        return out.clamp(-1, 1) if clamp else out

    def one_step(self, x_T: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """G_θ(x_T, σ_max, σ_min): the planner's and export's hot path, bitwise equal to `jump` (tested).

        t = σ_max and s = σ_min are the same for every row, so s/t, c_skip, c_out, c_in and both c_noise are
        computed once per device (same float32 arithmetic, same operation order as `jump`), not per call.
        """
        constants = self._one_step.get((x_T.device, x_T.dtype))
        if constants is None:
            constants = self._one_step_constants(x_T)
        c_skip, c_out, c_in, ratio, rest, c_noise_t, c_noise_s = constants
        n = x_T.shape[0]
        if n != 1:  # c_noise are (1,): per row only by broadcasting
            c_noise_t, c_noise_s = c_noise_t.expand(n), c_noise_s.expand(n)
        g = c_skip * x_T + c_out * self.net(c_in * x_T, c_noise_t, c_noise_s, cond=cond)
        return ratio * x_T + rest * g  # (s/t)·x + (1 − s/t)·g  (§4.2)

    def _one_step_constants(self, x_T: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # ordinary tensors even when first called under inference_mode: a later call with autograd may use them
        with torch.inference_mode(False):
            t = torch.full((1,), self.edm.sigma_max, dtype=x_T.dtype, device=x_T.device)
            s = torch.full((1,), self.edm.sigma_min, dtype=x_T.dtype, device=x_T.device)
            c_skip, c_out, c_in, c_noise_t = preconditioning(t, self.edm)
            c_noise_s = self.edm.c_noise_scale * torch.log(s + 1e-44)
            ratio = s / t
            shape = (1, *([1] * (x_T.dim() - 1)))
            constants = tuple(v.reshape(shape) for v in (c_skip, c_out, c_in, ratio, 1 - ratio)) + (c_noise_t,
                                                                                                      c_noise_s)
        self._one_step[(x_T.device, x_T.dtype)] = constants
        return constants

    def _apply(self, fn, recurse=True):  # a device/dtype move drops the cached constants
        self._one_step = {}
        return super()._apply(fn, recurse)


class EpsDenoiser(nn.Module):
    """An ε-prediction DDPM network ε_θ(x_t, t, c) as a denoiser in the σ frame (Ho et al. 2020; k-diffusion).

    With ᾱ_t the cumulative schedule, σ_t = √((1 − ᾱ_t)/ᾱ_t) and x_VE = x_VP/√ᾱ_t = x_VP·√(1 + σ²), the model's
    x0 estimate is D(x; σ) = x − σ·ε_θ(x/√(1 + σ²), t(σ), c), where t(σ) interpolates the training steps in log σ.
    """

    kind = "eps"

    def __init__(self, net: nn.Module, ddpm: DDPMConfig):
        super().__init__()
        self.net, self.ddpm = net, ddpm
        alpha_bar = cosine_alpha_bars(ddpm).double()
        self.register_buffer("log_sigmas", (((1 - alpha_bar) / alpha_bar).sqrt()).log().float(), persistent=False)

    @property
    def sigma_min(self) -> float:
        return float(self.log_sigmas[0].exp())

    @property
    def sigma_max(self) -> float:
        return float(self.log_sigmas[-1].exp())

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional training step t with σ_t = σ, linear in log σ between the discrete steps."""
        log_s = self.log_sigmas.to(sigma.device)
        ls = sigma.log().clamp(log_s[0], log_s[-1])
        hi = torch.searchsorted(log_s, ls).clamp(1, len(log_s) - 1)
        lo = hi - 1
        w = (ls - log_s[lo]) / (log_s[hi] - log_s[lo])
        return lo.to(sigma.dtype) + w

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.log_sigmas.to(t.device)[t.long()].exp()

    def sigmas(self, steps: list[int]) -> torch.Tensor:
        """σ at the given training steps, followed by 0 (the grid of a DDIM-like schedule)."""
        s = self.t_to_sigma(torch.tensor(steps))
        return torch.cat([s, s.new_zeros(1)])

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None,
                clamp: bool = False) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        sigma = sigma.expand(x.shape[0]) if sigma.dim() == 0 else sigma
        s = sigma.reshape(-1, *([1] * (x.dim() - 1)))
        eps = self.net(x / (1 + s**2).sqrt(), self.sigma_to_t(sigma), cond=cond)
        out = x - s * eps
        return out.clamp(-1, 1) if clamp else out


Denoiser = EDMDenoiser | CTMDenoiser | EpsDenoiser
