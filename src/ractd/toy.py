"""Toy distillation: the whole RACTD recipe on a two-mode dataset with a known reward (no environment needed).

Data: sequences x ∈ R^{H×2} of two equally likely modes — a ramp rising to +0.8 ("A", rewarded) or falling to
−0.8 ("B") in channel 0, with small noise. Reward R(x̂) = 1 − 2‖x̂ − μ_A‖²/‖μ_B − μ_A‖²: +1 on mode A's
template, −1 on B's, and no incentive to leave the data (it peaks on mode A). It scores the student's one-step
sample (paper Eq. 3.8, `reward_on="one_step"`).
Train an EDM teacher, then a CTM student (σ_r = 0, "CTD") and a RACTD student (σ_r > 0), both warm-started
from the teacher. One-step CTD must keep both modes; one-step RACTD must pick mode A.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .diffusion import (
    CTMConfig,
    CTMDenoiser,
    EDMConfig,
    EDMDenoiser,
    ctm_jump,
    edm_loss,
    heun_nfe,
    karras_sigmas,
    multistep_sample,
    one_step_sample,
    ractd_loss,
    sample_heun,
    update_target,
)
from .nn import ConditionalUnet1D, insert_zero_time_columns
from .progress import progress_bar


@dataclass
class ToyConfig:
    horizon: int = 4
    channels: int = 2
    noise: float = 0.05
    n_data: int = 4096
    down_dims: tuple[int, ...] = (32,)
    time_embed_dim: int = 32
    teacher_steps: int = 1500
    student_steps: int = 400
    batch_size: int = 128
    lr: float = 2e-3
    student_lr: float = 1e-3
    # Short runs need the teacher to solve further than one bin (CTM's u ~ U[t, s]) and DSM on g(x, t, t)
    # (CTM's form); the reference code's defaults (1 step, DSM on the σ_max→σ_min jump) need ~100× more steps.
    ode_steps_max: int = 12
    dsm_on: str = "denoiser"
    reward_weight: float = 0.5
    reward_on: str = "one_step"
    n_eval: int = 500
    seed: int = 0
    # σ_max start (init_noise_scale = 80): the toy measures mode *mass*, which needs full-variance noise
    # (docs/algorithm.md §8 item 6).
    edm: EDMConfig = field(default_factory=lambda: EDMConfig(init_noise_scale=80.0))


def mode_template(horizon: int, sign: float) -> torch.Tensor:
    """The noiseless sequence of a mode: a ramp 0.1 → 0.8 in channel 0 and a flat 0.3 in channel 1, times ±1."""
    ramp = torch.linspace(0.1, 0.8, horizon)
    return sign * torch.stack([ramp, torch.full((horizon,), 0.3)], dim=-1)


def two_mode_dataset(n: int, cfg: ToyConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, mode): mode templates (A = +, B = −) plus N(0, noise²) jitter; mode 1 = A."""
    mode = torch.randint(0, 2, (n,), generator=generator)
    sign = (2 * mode - 1).float()[:, None, None]
    x = sign * mode_template(cfg.horizon, 1.0)[None]
    return x + cfg.noise * torch.randn(x.shape, generator=generator), mode


def toy_reward(x: torch.Tensor) -> torch.Tensor:
    """R(x̂) = 1 − 2‖x̂ − μ_A‖²/‖μ_B − μ_A‖²: +1 on mode A's template, −1 on mode B's."""
    mu_a, mu_b = mode_template(x.shape[1], 1.0).to(x), mode_template(x.shape[1], -1.0).to(x)
    return 1 - 2 * (x - mu_a).pow(2).sum(dim=(1, 2)) / (mu_b - mu_a).pow(2).sum()


def mode_a_mass(x: torch.Tensor) -> float:
    """Fraction of samples on the rewarded mode (channel-0 mean > 0)."""
    return float((x[..., 0].mean(dim=1) > 0).float().mean())


def distance_to_data(samples: torch.Tensor, data: torch.Tensor) -> float:
    """Mean over samples of the RMS distance to the nearest dataset sequence."""
    d = torch.cdist(samples.flatten(1), data.flatten(1)) / samples[0].numel() ** 0.5
    return float(d.min(dim=1).values.mean())


def _make_net(cfg: ToyConfig, n_time_inputs: int) -> ConditionalUnet1D:
    return ConditionalUnet1D(
        cfg.channels, 0, cfg.time_embed_dim, cfg.down_dims, n_groups=8, n_time_inputs=n_time_inputs,
        dropout=0.0, mid_dropout=0.0,
    )


def train_teacher(data: torch.Tensor, cfg: ToyConfig, generator: torch.Generator,
                  on_step: Callable[[], None] | None = None) -> ConditionalUnet1D:
    """EDM teacher by Adam on edm_loss (docs/algorithm.md §3.3); `on_step` is called after every step."""
    net = _make_net(cfg, 1)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.teacher_steps)
    for _ in range(cfg.teacher_steps):
        batch = data[torch.randint(0, len(data), (cfg.batch_size,), generator=generator)]
        loss = edm_loss(EDMDenoiser(net, cfg.edm), batch, None, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if on_step is not None:
            on_step()
    return net.eval()


def warm_started_student(teacher: ConditionalUnet1D, cfg: ToyConfig) -> ConditionalUnet1D:
    """Student with the teacher's weights and zero FiLM columns for the new s input (docs/algorithm.md §4.9)."""
    student = _make_net(cfg, 2)
    student.load_state_dict(insert_zero_time_columns(teacher.state_dict(), cfg.time_embed_dim))
    return student


def train_student(
    teacher: ConditionalUnet1D, data: torch.Tensor, cfg: ToyConfig, reward_weight: float, generator: torch.Generator,
    on_step: Callable[[], None] | None = None,
) -> ConditionalUnet1D:
    """CTM student (σ_r = 0) or RACTD student (σ_r > 0): α·L_CTM + β·L_DSM + σ_r·L_reward (docs/algorithm.md §4.8);
    `on_step` is called after every step."""
    ctm_cfg = CTMConfig(reward_weight=reward_weight, ode_steps_max=cfg.ode_steps_max, dsm_on=cfg.dsm_on,
                        reward_on=cfg.reward_on)
    student = warm_started_student(teacher, cfg)
    target = copy.deepcopy(student).requires_grad_(False)
    teacher.requires_grad_(False)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.student_lr)
    for _ in range(cfg.student_steps):
        batch = data[torch.randint(0, len(data), (cfg.batch_size,), generator=generator)]
        losses = ractd_loss(CTMDenoiser(student, cfg.edm), CTMDenoiser(target, cfg.edm), EDMDenoiser(teacher, cfg.edm),
                            batch, None, ctm_cfg, toy_reward, generator)
        opt.zero_grad(set_to_none=True)
        losses.total.backward()
        opt.step()
        update_target(target, student, ctm_cfg.target_decay)
        if on_step is not None:
            on_step()
    return student.eval()


@dataclass
class ToyRow:
    sampler: str
    nfe: int
    mode_a_mass: float
    distance: float
    ms_per_sample: float


def _timed(fn) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - start) * 1000


def evaluate_toy(
    teacher: ConditionalUnet1D, students: dict[str, ConditionalUnet1D], data: torch.Tensor, cfg: ToyConfig
) -> list[ToyRow]:
    """Sample n_eval sequences from each sampler; report mode mass, distance to data and time per sample."""
    g = torch.Generator().manual_seed(cfg.seed + 1)
    shape = (cfg.n_eval, cfg.horizon, cfg.channels)
    e = cfg.edm
    rows = [ToyRow("dataset", 0, mode_a_mass(data), 0.0, 0.0)]
    with torch.no_grad():
        x_T = e.init_noise_scale * torch.randn(shape, generator=g)
        x, ms = _timed(lambda: sample_heun(EDMDenoiser(teacher, e), x_T, karras_sigmas(e), {"clamp": True}))
        rows.append(ToyRow("teacher Heun", heun_nfe(e.n_levels), mode_a_mass(x), distance_to_data(x, data),
                           ms / cfg.n_eval))
        for name, student in students.items():
            def jump(x, t, s, net=student):
                return ctm_jump(net, x, t, s, None, e)

            x, ms = _timed(lambda jump=jump: one_step_sample(jump, shape, e, g))
            rows.append(ToyRow(f"{name} one-step", 1, mode_a_mass(x), distance_to_data(x, data), ms / cfg.n_eval))
            x, ms = _timed(lambda jump=jump: multistep_sample(jump, shape, [1.0], e, g))
            rows.append(ToyRow(f"{name} two-step", 2, mode_a_mass(x), distance_to_data(x, data), ms / cfg.n_eval))
    return rows


def run_toy(cfg: ToyConfig | None = None, progress: bool = True) -> tuple[list[ToyRow], dict[str, float]]:
    """Train teacher, CTD student and RACTD student; return the evaluation rows and stage wall times (s)."""
    cfg = cfg or ToyConfig()
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    data, _ = two_mode_dataset(cfg.n_data, cfg, g)
    times: dict[str, float] = {}
    total = cfg.teacher_steps + 2 * cfg.student_steps + 1  # optimizer steps, then the evaluation
    with progress_bar("toy: teacher (EDM)", total=total, enabled=progress, transient=True) as bar:
        start = time.perf_counter()
        teacher = train_teacher(data, cfg, g, on_step=bar.advance)
        times["teacher"] = time.perf_counter() - start
        bar.update(description="toy: CTD student (σ_r = 0)")
        start = time.perf_counter()
        ctd = train_student(teacher, data, cfg, 0.0, g, on_step=bar.advance)
        times["ctd"] = time.perf_counter() - start
        bar.update(description=f"toy: RACTD student (σ_r = {cfg.reward_weight})")
        start = time.perf_counter()
        ractd = train_student(teacher, data, cfg, cfg.reward_weight, g, on_step=bar.advance)
        times["ractd"] = time.perf_counter() - start
        bar.update(description="toy: sampling")
        rows = evaluate_toy(teacher, {"CTD": ctd, "RACTD": ractd}, data, cfg)
        bar.advance()
    return rows, times
