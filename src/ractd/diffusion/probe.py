"""Does a plan-diffusion network's denoised plan follow its start? (docs/ooc-maze2d.md, "Does a plan follow its
start?")

A probe of the trained network, not of the sampler. For clean plans x0 (B, H, C) in the network's normalized space
and a noise level t, x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε with the known start entry as the sampler shows it (clean for
`clean` inpainting, forward-noised for `noised`). The start state's position channels are then moved by d (in x0
units; by √ᾱ_t·d in x_t when noised, what inpainting another start does) and the change of the network's x̂0 at
steps 1..k is divided by d: 1 means the beginning of the plan follows the start fully, 0 that it ignores it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .ddpm import DDPMConfig, cosine_alpha_bars, x0_from_output
from .inpaint import INPAINT_MODES


@torch.no_grad()
def start_response(
    net: Callable,
    x0: torch.Tensor,
    cond: torch.Tensor | None,
    cfg: DDPMConfig,
    t_levels: Sequence[int],
    *,
    prediction: str,
    inpaint: str,
    act_dim: int,
    position_channels: Sequence[int] = (0, 1),
    shift: float = 0.3,
    steps: int = 5,
    seed: int = 0,
) -> dict[int, list[float]]:
    """{t: [response of x̂0 at step 1, ..., step `steps`]}, each the mean over plans and channels of
    (x̂0(start moved by `shift`) − x̂0) / `shift` over the start state's `position_channels` (indices into the state,
    which follows the `act_dim` action channels of each step). With `clean` inpainting the start (step 0) and goal
    (step H − 1) states are clean in x_t, as in training."""
    if inpaint not in INPAINT_MODES:
        raise ValueError(f"inpaint must be one of {INPAINT_MODES}, got {inpaint!r}")
    if x0.dim() != 3 or not 1 <= steps < x0.shape[1]:
        raise ValueError(f"x0 must be (B, H, C) with H > steps = {steps}, got {tuple(x0.shape)}")
    if shift == 0:
        raise ValueError("shift must be non-zero")
    ch = [act_dim + k for k in position_channels]
    alpha_bar = cosine_alpha_bars(cfg).to(x0.device, x0.dtype)
    gen = torch.Generator(device=x0.device).manual_seed(seed)
    out: dict[int, list[float]] = {}
    for t in t_levels:
        if not 0 <= t < cfg.num_train_steps:
            raise ValueError(f"noise level {t} is outside 0..{cfg.num_train_steps - 1}")
        a = alpha_bar[t]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * torch.randn(x0.shape, generator=gen, device=x0.device,
                                                           dtype=x0.dtype)
        if inpaint == "clean":
            x_t[:, 0, act_dim:], x_t[:, -1, act_dim:] = x0[:, 0, act_dim:], x0[:, -1, act_dim:]
        moved = x_t.clone()
        moved[:, 0, ch] += shift if inpaint == "clean" else a.sqrt() * shift
        t_in = torch.full((x0.shape[0],), float(t), device=x0.device)
        before = x0_from_output(net(x_t, t_in, cond=cond), x_t, a, prediction)
        after = x0_from_output(net(moved, t_in, cond=cond), moved, a, prediction)
        change = (after - before)[:, 1:steps + 1][..., ch].mean(dim=(0, 2)) / shift
        out[int(t)] = [float(v) for v in change]
    return out
