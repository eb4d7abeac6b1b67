"""Consistency Trajectory Model student and the RACTD losses (docs/algorithm.md §4, §5).

G_θ(x, t, s) = (s/t)·x + (1 − s/t)·g_θ(x, t, s), with g_θ the boundary-preconditioned network at the source
time t and a second time input s (docs/algorithm.md §4.2). "Time 0" is σ_min throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .edm import (
    EDMConfig,
    _bcast,
    karras_loss_weight,
    karras_sigma,
    lognormal_sigmas,
    preconditioning,
)
from .edm import pseudo_huber as _pseudo_huber
from .sampling import heun_step

RewardOn = Literal["dsm_pred", "one_step"]
RewardScale = Literal["none", "batch_mean_abs"]
DSMOn = Literal["jump_to_sigma_min", "denoiser"]


@dataclass(frozen=True)
class CTMConfig:
    """Knobs of the student objective. Defaults are the reference code's (docs/algorithm.md §4, §8, §10.3).

    Where the paper differs, the field names the choice: `reward_on` ("dsm_pred" as the code; "one_step" is the
    paper's Eq. 3.8), `target_decay` μ (0 = sg(θ)). The noise constants are not here: the student uses its
    teacher's `EDMConfig` (owned by the denoiser modules, `ractd.diffusion.denoiser`).
    """

    ode_steps_max: int = 1  # teacher Heun steps between t and u (docs/algorithm.md §4.3)
    dsm_xi_max: float = 0.7  # ctm_dsm: first half σ from ξ ~ U[0, ξ_max] on the Karras ramp (docs/algorithm.md §4.6)
    dsm_weighting: Literal["karras", "uniform"] = "karras"
    # What L_DSM regresses onto x0: the code's G_θ(x_σ, σ, σ_min) ("jump_to_sigma_min", docs/algorithm.md §4.6),
    # or CTM's denoiser g_θ(x_σ, σ, σ) ("denoiser", Kim et al. 2023 Eq. 7), which does not pull the
    # σ_max → σ_min jump toward the posterior mean.
    dsm_on: DSMOn = "jump_to_sigma_min"
    alpha: float = 1.0  # weight of L_CTM
    beta: float = 1.0  # weight of L_DSM
    reward_weight: float = 0.0  # σ_r, weight of L_reward (0 = plain CTD)
    # Which student output L_reward scores: "dsm_pred" = the tensor L_DSM regresses (the code: G(x_σ, σ, σ_min);
    # with dsm_on="denoiser" it is g(x_σ, σ, σ), which is off the one-step inference path), or "one_step" = a fresh
    # G(x_T, T, σ_min) (paper Eq. 3.8). The toy shows "denoiser" + "dsm_pred" barely moves the one-step samples.
    reward_on: RewardOn = "dsm_pred"
    # "batch_mean_abs" divides L_reward by the batch's mean |R| (no gradient), as TD3+BC normalizes its Q term, so
    # σ_r weighs the reward term against the others whatever the scale of the returns; "none" = the paper's Eq. 3.9
    reward_scale: RewardScale = "none"
    target_decay: float = 0.0  # μ in θ⁻ ← μθ⁻ + (1 − μ)θ
    clamp_teacher_in_solver: bool = False  # the reference solver does not clamp (docs/algorithm.md §4.4)

    def __post_init__(self) -> None:
        if self.ode_steps_max < 1:
            raise ValueError(f"ode_steps_max must be >= 1, got {self.ode_steps_max}")
        if not 0 < self.dsm_xi_max <= 1:
            raise ValueError(f"dsm_xi_max must be in (0, 1], got {self.dsm_xi_max}")
        if self.dsm_on not in ("jump_to_sigma_min", "denoiser"):
            raise ValueError(f"dsm_on must be 'jump_to_sigma_min' or 'denoiser', got {self.dsm_on!r}")
        if self.reward_on not in ("dsm_pred", "one_step"):
            raise ValueError(f"reward_on must be 'dsm_pred' or 'one_step', got {self.reward_on!r}")
        if self.reward_scale not in ("none", "batch_mean_abs"):
            raise ValueError(f"reward_scale must be 'none' or 'batch_mean_abs', got {self.reward_scale!r}")
        if not 0 <= self.target_decay < 1:
            raise ValueError(f"target_decay must be in [0, 1), got {self.target_decay}")
        if min(self.alpha, self.beta, self.reward_weight) < 0:
            raise ValueError("loss weights alpha, beta, reward_weight must be >= 0")


def ctm_g(
    net: Callable, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, cond: torch.Tensor | None, cfg: EDMConfig
) -> torch.Tensor:
    """g_θ(x, t, s) = c_skip(t)·x + c_out(t)·F_θ(c_in(t)·x, c_noise(t), c_noise(s), c)  (docs/algorithm.md §4.2)."""
    batch = x.shape[0]
    t = t.expand(batch) if t.dim() == 0 else t
    s = s.expand(batch) if s.dim() == 0 else s
    c_skip, c_out, c_in, c_noise_t = preconditioning(t, cfg)
    c_noise_s = cfg.c_noise_scale * torch.log(s + 1e-44)
    return _bcast(c_skip, x) * x + _bcast(c_out, x) * net(_bcast(c_in, x) * x, c_noise_t, c_noise_s, cond=cond)


def ctm_jump(
    net: Callable, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, cond: torch.Tensor | None, cfg: EDMConfig
) -> torch.Tensor:
    """G_θ(x, t, s) = (s/t)·x + (1 − s/t)·g_θ(x, t, s)  (docs/algorithm.md §4.2; CTM Eq. 3)."""
    t = t.expand(x.shape[0]) if t.dim() == 0 else t
    s = s.expand(x.shape[0]) if s.dim() == 0 else s
    ratio = _bcast(s / t, x)
    return ratio * x + (1 - ratio) * ctm_g(net, x, t, s, cond, cfg)


def sample_ctm_indices(
    batch: int, n_levels: int = 80, ode_steps_max: int = 1, generator: torch.Generator | None = None, device=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bin indices (t, s, u) of the 'ctm' sampler, vectorized (docs/algorithm.md §4.3).

    t ~ U{0..N−1}; s ~ U{t..N} (N clamps to σ_min); u ~ U{t..s}; u ← min(u, t + ode_steps_max).
    Larger index = less noise, so s ≥ u ≥ t in index means σ_s ≤ σ_u ≤ σ_t.
    """
    t = torch.randint(0, n_levels, (batch,), generator=generator, device=device)
    r_s = torch.rand(batch, generator=generator, device=device)
    s = t + (r_s * (n_levels + 1 - t)).long().clamp(max=n_levels - t)
    r_u = torch.rand(batch, generator=generator, device=device)
    u = t + (r_u * (s - t + 1)).long().clamp(max=s - t)
    return t, s, torch.minimum(u, t + ode_steps_max)


@torch.no_grad()
def teacher_solve(
    teacher: Callable, x: torch.Tensor, t_idx: torch.Tensor, u_idx: torch.Tensor, cfg: EDMConfig,
    extra_args: dict | None = None,
) -> torch.Tensor:
    """x_u from x_t by Heun steps along the Karras grid with the frozen teacher (docs/algorithm.md §4.4).

    Per-sample step counts: each Heun iteration evaluates the teacher only on the rows that still need a step, so
    rows with u = t are returned unchanged (the zero-step guard) and cost nothing. `teacher(x, sigma, **extra_args)`
    is the teacher denoiser D_φ; tensors in `extra_args` with the batch's leading size (the condition) are indexed
    with the same rows.
    """
    x, idx = x.clone(), t_idx.clone()
    while True:  # ≤ ode_steps_max iterations
        rows = torch.nonzero(idx < u_idx).squeeze(1)
        if rows.numel() == 0:
            return x
        if rows.numel() == x.shape[0]:  # every row steps: no gather/scatter
            x = heun_step(teacher, x, karras_sigma(idx, cfg).to(x), karras_sigma(idx + 1, cfg).to(x), extra_args)
            idx = idx + 1
            continue
        i = idx[rows]
        x[rows] = heun_step(teacher, x[rows], karras_sigma(i, cfg).to(x), karras_sigma(i + 1, cfg).to(x),
                            _rows_of(extra_args, rows, x.shape[0]))
        idx[rows] = i + 1


def _rows_of(extra_args: dict | None, rows: torch.Tensor, batch: int) -> dict:
    """`extra_args` restricted to `rows`: per-sample tensors (leading size = batch) indexed, everything else kept."""
    return {k: v[rows] if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == batch else v
            for k, v in (extra_args or {}).items()}


def ctm_loss(
    student: Callable,
    target: Callable,
    teacher: Callable,
    x0: torch.Tensor,
    cond: torch.Tensor | None,
    cfg: CTMConfig,
    generator: torch.Generator | None = None,
    *,
    edm: EDMConfig,
) -> torch.Tensor:
    """L_CTM = PH(G_θ⁻(G_θ(x_t, t, s), s, 0), G_θ⁻(G_θ⁻(x_u, u, s), s, 0)), unweighted (docs/algorithm.md §4.5; CTM
    Eq. 6).

    `student(x, t, s)` / `target(x, t, s)` are jumps G with the condition bound; `teacher(x, σ, cond=cond)` is D_φ
    (called without `cond` when it is None; the solver passes each Heun iteration only its active rows' condition);
    `edm` holds the constants they share (the teacher's).
    """
    e = edm
    t_idx, s_idx, u_idx = sample_ctm_indices(x0.shape[0], e.n_levels, cfg.ode_steps_max, generator, x0.device)
    t, s, u = (karras_sigma(i, e).to(x0) for i in (t_idx, s_idx, u_idx))
    x_t = x0 + _bcast(t, x0) * torch.randn(x0.shape, generator=generator, device=x0.device)
    x_u = teacher_solve(teacher, x_t, t_idx, u_idx, e, None if cond is None else {"cond": cond})
    sigma_min = torch.full_like(t, e.sigma_min)
    pred = student(x_t, t, s)
    with torch.no_grad():
        target_0 = target(target(x_u, u, s), s, sigma_min)
    pred_0 = target(pred, s, sigma_min)  # gradient flows through the (frozen) target net's input
    return _pseudo_huber(pred_0, target_0, e.huber_c, e.huber_variant)


def dsm_sigmas(batch: int, cfg: CTMConfig, generator: torch.Generator | None = None, device=None, *,
               edm: EDMConfig) -> torch.Tensor:
    """'ctm_dsm' mixture (docs/algorithm.md §4.6): ⌈B/2⌉ from the Karras ramp with ξ ~ U[0, ξ_max], ⌊B/2⌋ log-normal."""
    e = edm
    n_ramp = (batch + 1) // 2
    xi = cfg.dsm_xi_max * torch.rand(n_ramp, generator=generator, device=device)
    lo, hi = e.sigma_min ** (1 / e.rho), e.sigma_max ** (1 / e.rho)
    ramp = ((hi + xi * (lo - hi)) ** e.rho).clamp(e.sigma_min, e.sigma_max)
    return torch.cat([ramp, lognormal_sigmas(batch - n_ramp, e, generator, device)])


def dsm_loss(
    student: Callable,
    x0: torch.Tensor,
    cfg: CTMConfig,
    generator: torch.Generator | None = None,
    student_g: Callable | None = None,
    *,
    edm: EDMConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_DSM = E[λ(σ)·PH(G_θ(x0 + σε, σ, 0), x0)] (docs/algorithm.md §4.6), or on g_θ(x_σ, σ, σ) when dsm_on='denoiser'.

    `student(x, t, s)` is the jump G, `student_g(x, t, s)` the raw g. Returns (loss, prediction).
    """
    e = edm
    sigma = dsm_sigmas(x0.shape[0], cfg, generator, x0.device, edm=e).to(x0)
    x_sigma = x0 + _bcast(sigma, x0) * torch.randn(x0.shape, generator=generator, device=x0.device)
    if cfg.dsm_on == "denoiser":
        if student_g is None:
            raise ValueError("dsm_on='denoiser' needs student_g")
        pred = student_g(x_sigma, sigma, sigma)
    else:
        pred = student(x_sigma, sigma, torch.full_like(sigma, e.sigma_min))
    weight = karras_loss_weight(sigma, e.sigma_data) if cfg.dsm_weighting == "karras" else None
    return _pseudo_huber(pred, x0, e.huber_c, e.huber_variant, weight), pred


def plan_reward(
    reward_net: Callable, x_hat: torch.Tensor, obs: torch.Tensor, aggregate: str, n_obs_steps: int
) -> torch.Tensor:
    """R_ψ of a predicted plan (docs/algorithm.md §4.7): first action with the current state (MuJoCo) or Σ_h R(ŝ_h)
    (Maze2d)."""
    if aggregate == "first_action":
        k = n_obs_steps - 1
        return reward_net(torch.cat([x_hat[:, k], obs[:, k]], dim=-1))
    b, h, d = x_hat.shape
    return reward_net(x_hat.reshape(b * h, d)).reshape(b, h).sum(dim=1)


def reward_loss(reward: Callable[[torch.Tensor], torch.Tensor], x_hat: torch.Tensor, scale: RewardScale = "none"
                ) -> torch.Tensor:
    """L_reward = −E[R_ψ(x̂)] on a clean student sample (Eq. 3.8); `reward` maps (B, H, C) → (B,).

    scale="batch_mean_abs": −E[R] / sg(E|R|), the TD3+BC normalization of the policy's value term.
    """
    r = reward(x_hat)
    if scale == "batch_mean_abs":
        return -r.mean() / r.detach().abs().mean().clamp_min(1e-8)
    return -r.mean()


def one_step_sample(
    student: Callable, shape: tuple[int, ...], edm: EDMConfig, generator=None, device=None, clamp: bool = True,
    noise_sampler: Callable[[], torch.Tensor] | None = None,
) -> torch.Tensor:
    """x̂ = G_θ(x_T, T, σ_min), x_T ~ N(0, init_noise_scale²·I): one network evaluation (docs/algorithm.md §5).

    ε ~ N(0, I) of `shape` comes from `noise_sampler()` if given (k-diffusion's noise_sampler: e.g. one generator
    per row), else from `torch.randn(shape, generator=generator)`.
    """
    e = edm
    draw = noise_sampler or (lambda: torch.randn(shape, generator=generator, device=device))
    x_T = e.init_noise_scale * draw()
    t = torch.full((shape[0],), e.sigma_max, device=device)
    x = student(x_T, t, torch.full_like(t, e.sigma_min))
    return x.clamp(-1, 1) if clamp else x


def multistep_sample(
    student: Callable,
    shape: tuple[int, ...],
    chain_sigmas: list[float],
    edm: EDMConfig,
    generator=None,
    device=None,
    clamp: bool = True,
    noise_sampler: Callable[[], torch.Tensor] | None = None,
) -> torch.Tensor:
    """CTM chaining (docs/algorithm.md §5): one jump from σ_max, then for each τ: x̂ ← clamp(G_θ(x̂ + τε, τ, σ_min)).

    NFE = 1 + len(chain_sigmas); the noise draws, in order x_T then one ε per τ, as in `one_step_sample`.
    """
    draw = noise_sampler or (lambda: torch.randn(shape, generator=generator, device=device))
    x = one_step_sample(student, shape, edm, generator, device, clamp, draw)
    for tau in chain_sigmas:
        t = torch.full((shape[0],), float(tau), device=device)
        x_tau = x + tau * draw()
        x = student(x_tau, t, torch.full_like(t, edm.sigma_min))
        x = x.clamp(-1, 1) if clamp else x
    return x


@dataclass
class RACTDLosses:
    total: torch.Tensor
    ctm: torch.Tensor
    dsm: torch.Tensor
    reward: torch.Tensor


def ractd_loss(
    student: nn.Module,
    target: nn.Module,
    teacher: nn.Module,
    x0: torch.Tensor,
    cond: torch.Tensor | None,
    cfg: CTMConfig,
    reward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> RACTDLosses:
    """L = α·L_CTM + β·L_DSM + σ_r·L_reward (docs/algorithm.md §4.8; paper Eq. 3.9).

    `student` and `target` are `CTMDenoiser`s (`.jump` = G, `.g` = g), `teacher` an `EDMDenoiser` D_φ; all three
    must carry the same EDM constants (the teacher's), which is checked here. The reward term scores the DSM
    prediction (reward_on='dsm_pred', the code, docs/algorithm.md §8 item 3) or a fresh one-step sample G_θ(x_T, T, 0)
    (reward_on='one_step', paper Eq. 3.8).
    """
    e = teacher.edm
    for name, m in (("student", student), ("target", target)):
        if m.edm != e:
            raise ValueError(f"the {name}'s EDM constants differ from the teacher's ({m.edm} vs {e}); "
                             "the student must distil with the teacher's constants")

    def student_jump(x, t, s):
        return student.jump(x, t, s, cond)

    def student_g(x, t, s):
        return student.g(x, t, s, cond)

    def target_jump(x, t, s):
        return target.jump(x, t, s, cond)

    def teacher_denoise(x, sigma, cond=None):
        return teacher(x, sigma, cond, clamp=cfg.clamp_teacher_in_solver)

    zero = x0.new_zeros(())
    l_ctm = (ctm_loss(student_jump, target_jump, teacher_denoise, x0, cond, cfg, generator, edm=e)
             if cfg.alpha > 0 else zero)
    l_dsm, pred = dsm_loss(student_jump, x0, cfg, generator, student_g, edm=e)
    l_rwd = zero
    if cfg.reward_weight > 0:
        if reward is None:
            raise ValueError("reward_weight > 0 but no reward model was given")
        if cfg.reward_on == "one_step":
            pred = one_step_sample(student_jump, tuple(x0.shape), e, generator, x0.device, clamp=False)
        l_rwd = reward_loss(reward, pred, cfg.reward_scale)
    total = cfg.alpha * l_ctm + cfg.beta * l_dsm + cfg.reward_weight * l_rwd
    return RACTDLosses(total, l_ctm.detach(), l_dsm.detach(), l_rwd.detach())


@torch.no_grad()
def update_target(target: nn.Module, online: nn.Module, decay: float) -> None:
    """θ⁻ ← μ·θ⁻ + (1 − μ)·θ (docs/algorithm.md §4.8); μ = 0 copies θ (CTM's stop-gradient sg(θ))."""
    for p_t, p in zip(target.parameters(), online.parameters(), strict=True):
        p_t.lerp_(p.detach(), 1.0 - decay)
    for b_t, b in zip(target.buffers(), online.buffers(), strict=True):
        b_t.copy_(b)
