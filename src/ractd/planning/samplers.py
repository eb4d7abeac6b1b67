"""Sampler names and their constants: `parse_sampler` ('auto', 'one_step', 'multistep:K', 'heun[:LEVELS]',
'euler[:LEVELS]', 'ddim:K'), the chaining levels of a multistep student and the ODE grid of any denoiser."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..artifact import Artifact, ArtifactError
from ..diffusion import EDMConfig, heun_nfe, karras_sigma, karras_sigmas

SAMPLERS = ("one_step", "multistep", "heun", "euler", "ddim")


def chain_sigmas(nfe: int, edm: EDMConfig) -> list[float]:
    """Intermediate noise levels for NFE-step chaining: evenly spaced Karras bins, e.g. NFE 3 → bins 27, 53."""
    if nfe < 1:
        raise ValueError(f"NFE must be >= 1, got {nfe}")
    n = edm.n_levels
    bins = np.linspace(0, n, nfe + 1)[1:-1].round()
    return [float(karras_sigma(b, edm)) for b in bins]


@dataclass
class SamplerSpec:
    name: str  # one_step | multistep | heun | euler | ddim
    steps: int  # NFE for multistep; noise levels for heun/euler; DDIM steps

    @property
    def nfe(self) -> int:
        return {"one_step": 1, "multistep": self.steps, "heun": heun_nfe(self.steps), "euler": self.steps - 1,
                "ddim": self.steps}[self.name]


def parse_sampler(text: str, art: Artifact) -> SamplerSpec:
    """'auto' | 'one_step' | 'multistep:3' | 'heun[:LEVELS]' | 'euler[:LEVELS]' | 'ddim:10' → a SamplerSpec for `art`.

    The ODE samplers (heun, euler) run on every denoiser: the EDM teacher, the CTM student (through its denoiser
    g(x, σ, σ)) and an ε-prediction DDPM teacher (through `EpsDenoiser`). one_step/multistep need a CTM student,
    ddim an ε-prediction teacher.
    """
    kind = art.denoiser.kind if art.denoiser is not None else None
    name, _, arg = text.partition(":")
    if name == "auto":
        name = {"ctm": "one_step", "edm": "heun", "eps": "ddim"}.get(kind, "one_step")
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {text!r}; expected one of {SAMPLERS} (optionally NAME:STEPS)")
    if name in ("one_step", "multistep") and kind != "ctm":
        raise ArtifactError(f"{art.path}: sampler {name!r} needs a student run, this is a {art.stage} run")
    if name == "ddim" and kind != "eps":
        raise ArtifactError(f"{art.path}: sampler 'ddim' needs an ε-prediction (ddpm) teacher, this is a "
                            f"{art.stage} run ({kind})")
    if kind is None:
        raise ArtifactError(f"{art.path}: a {art.stage} run is not a planner")
    levels = art.denoiser.edm.n_levels if kind in ("edm", "ctm") else 80
    default = {"one_step": 1, "multistep": 2, "heun": levels, "euler": levels, "ddim": 10}[name]
    minimum = {"one_step": 1, "multistep": 1, "heun": 2, "euler": 2, "ddim": 1}[name]  # ≥ 2 levels = 1 step
    try:
        steps = int(arg) if arg else default
    except ValueError:
        raise ValueError(f"sampler {text!r}: the step count must be an integer, got {arg!r}") from None
    if steps < minimum:
        raise ValueError(f"sampler {text!r}: needs a step count >= {minimum}, got {steps}")
    return SamplerSpec(name, steps)


def ode_grid(denoiser, n_levels: int) -> torch.Tensor:
    """The Karras grid of n_levels between the denoiser's σ_max and σ_min (its training grid for EDM models)."""
    if denoiser.kind in ("edm", "ctm"):
        return denoiser.sigmas(n_levels)
    return karras_sigmas(EDMConfig(sigma_min=denoiser.sigma_min, sigma_max=denoiser.sigma_max, n_levels=n_levels))
