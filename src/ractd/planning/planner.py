"""Planner: observation history (+ goal) → plan → action(s), for every sampler (docs/algorithm.md §5, §6).

Samplers: the student's one-step jump G(x_T, T, σ_min) (NFE 1), student chaining (NFE k), the teacher's Heun
solver (2·(N−1) NFE on N levels), the DDIM baseline (NFE = steps). Normalization lives here, so `act` takes and
returns environment units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifact import Artifact, ArtifactError, load_artifact
from ..diffusion import (
    EDMConfig,
    heun_nfe,
    karras_sigma,
    karras_sigmas,
    multistep_sample,
    sample_ddim,
    sample_euler,
    sample_heun,
)
from .core import PlanCore

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


class Planner:
    """A trained teacher or student behind `plan(obs, goal)` (open loop) and `act(obs)` (closed loop).

    `plan`/`act_batch` run under `torch.inference_mode` with the sampler resolved once at construction; `sample`
    and `condition` (public, tensors in and out) run under `no_grad` and return ordinary tensors.
    """

    def __init__(self, art: Artifact, sampler: str = "auto", device: str = "cpu", seed: int = 0,
                 n_action_steps: int | None = None, inverse_dynamics: Artifact | None = None):
        self.art, self.cfg = art, art.config
        self.sampler = parse_sampler(sampler, art)
        self.device = torch.device(device)
        self.core = PlanCore(art).to(self.device).eval()
        self.denoiser = self.core.denoiser
        self.net = self.denoiser.net
        self.norm = art.normalizers
        self.generator = torch.Generator(self.device).manual_seed(seed)
        d = self.cfg.data
        self.horizon, self.n_obs_steps, self.x_key, self.cond_kind = d.horizon, d.n_obs_steps, d.x_key, d.cond
        self.x_dim = self.core.x_dim
        self.obs_dim, self.act_dim = art.obs_dim, art.act_dim
        self.n_action_steps = n_action_steps or self.cfg.eval.n_action_steps
        self.inverse_dynamics = None if inverse_dynamics is None else inverse_dynamics.net.to(self.device).eval()
        self._draw = self._resolve_sampler()
        self._on_cpu = self.device.type == "cpu"

    @property
    def nfe(self) -> int:
        return self.sampler.nfe

    def describe(self) -> str:
        return f"{self.art.stage} {self.sampler.name} (NFE {self.nfe}) from {self.art.path} ({self.art.weights})"

    # ------------------------------------------------------------------------------------------- samplers

    def _resolve_sampler(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The sampler as one function c → x̂ (B, H, Dx), its constants (noise scale, σ grid) computed once."""
        s, den = self.sampler, self.denoiser
        if s.name == "one_step":
            scale = float(den.edm.init_noise_scale)
            return partial(self._one_step, None if scale == 1.0 else scale)
        if s.name == "multistep":
            return partial(self._multistep, chain_sigmas(s.steps, den.edm))
        if s.name == "ddim":
            return self._ddim
        grid = ode_grid(den, s.steps).to(self.device)
        scale = den.edm.init_noise_scale if den.kind in ("edm", "ctm") else float(grid[0])
        solver = sample_heun if s.name == "heun" else sample_euler
        return partial(self._ode, solver, grid, scale)

    def _noise(self, cond: torch.Tensor) -> torch.Tensor:
        return torch.randn((cond.shape[0], self.horizon, self.x_dim), generator=self.generator, device=self.device)

    def _one_step(self, scale: float | None, cond: torch.Tensor) -> torch.Tensor:
        # x̂ = clamp(G_θ(s·x_T, σ_max, σ_min)), x_T ~ N(0, I), s = init_noise_scale  (§5); 1.0·x_T is x_T exactly
        x_T = self._noise(cond)
        return self.denoiser.one_step(x_T if scale is None else scale * x_T, cond).clamp_(-1, 1)

    def _multistep(self, sigmas: list[float], cond: torch.Tensor) -> torch.Tensor:
        den = self.denoiser

        def jump(x, t, k):
            return den.jump(x, t, k, cond)

        shape = (cond.shape[0], self.horizon, self.x_dim)
        return multistep_sample(jump, shape, sigmas, den.edm, self.generator, self.device)

    def _ddim(self, cond: torch.Tensor) -> torch.Tensor:
        den = self.denoiser
        return sample_ddim(den.net, self._noise(cond), cond, den.ddpm, self.sampler.steps).clamp(-1, 1)

    def _ode(self, solver: Callable, grid: torch.Tensor, scale: float, cond: torch.Tensor) -> torch.Tensor:
        # D clamped to [−1, 1] inside (§3.6)
        return solver(self.denoiser, scale * self._noise(cond), grid, extra_args={"cond": cond, "clamp": True})

    # ------------------------------------------------------------------------------------------- the calls

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a if a.dtype == np.float32 else a.astype(np.float32), device=self.device)

    def _condition(self, obs: np.ndarray, goal: np.ndarray | None) -> torch.Tensor:
        goal_t = None if goal is None else self._tensor(np.asarray(goal)).reshape(obs.shape[0], -1)
        return self.core.condition(self._tensor(obs), goal_t)

    def condition(self, obs_history: np.ndarray, goal: np.ndarray | None = None) -> torch.Tensor:
        """The conditioning vector c (docs/algorithm.md §1.6) of observations in environment units."""
        with torch.no_grad():
            return self._condition(np.asarray(obs_history), goal)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor) -> torch.Tensor:
        """Normalized plans x̂ (B, H, Dx) for conditions (B, Dc), with this planner's sampler."""
        return self._draw(cond)

    def plan(self, obs: np.ndarray, goal: np.ndarray | None = None) -> np.ndarray:
        """Unnormalized plans (B, H, Dx) — action sequences (MuJoCo) or state sequences (Maze2d)."""
        obs = np.asarray(obs)
        single = obs.ndim == 1
        if single:
            obs = obs[None]
        with torch.inference_mode():
            x = self.core.unnormalize(self._draw(self._condition(obs, goal)))
            out = (x if self._on_cpu else x.cpu()).numpy()
        return out[0] if single else out

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        """Closed loop (docs/algorithm.md §6.1): the action at index To − 1 of each sampled action sequence."""
        if self.x_key != "actions":
            raise ValueError("act() needs an action-sequence planner; a state planner uses plan() + a controller")
        return self.plan(obs)[:, self.n_obs_steps - 1]

    def act(self, obs: np.ndarray) -> np.ndarray:
        """One action for one observation (h = 1) or an observation history (To, Do)."""
        obs = np.asarray(obs)
        return self.act_batch(obs[None])[0]


def load_planner(run_dir: str | Path, sampler: str = "auto", device: str = "cpu", seed: int = 0,
                 n_action_steps: int | None = None, inverse_dynamics: str | Path | None = None,
                 weights: str = "last") -> Planner:
    """Load a trained teacher or student run folder as a Planner (see `parse_sampler` for sampler names).

    weights: "last" (model.safetensors), "ema", or "best" (the online-selection winner in best/, §6.3).
    """
    files = {"last": "model", "ema": "ema", "best": "best/model"}
    if weights not in files:
        raise ValueError(f"weights must be one of {sorted(files)}, got {weights!r}")
    art = load_artifact(run_dir, weights=files[weights])
    if art.stage not in ("teacher", "student"):
        raise ArtifactError(f"{run_dir}: a planner needs a teacher or student run, this is a {art.stage} run")
    inv = load_artifact(inverse_dynamics, expect_stage="inverse_dynamics") if inverse_dynamics else None
    return Planner(art, sampler, device, seed, n_action_steps, inv)


def tracking_action(state: np.ndarray, waypoint: np.ndarray) -> np.ndarray:
    """Diffuser's tracking controller (docs/algorithm.md §6.2): a = (w_xy − s_xy) + (w_v − s_v)."""
    return (waypoint[..., :2] - state[..., :2]) + (waypoint[..., 2:4] - state[..., 2:4])


class PlannerPolicy:
    """`ractd.evaluate.BatchPolicy` over a Planner.

    Action planners: replan every `n_action_steps` steps (closed loop, docs/algorithm.md §6.1) with an observation
    history.
    State planners (Maze2d): plan once at reset from (s_0, goal), then follow the plan with the tracking
    controller or the inverse-dynamics model (docs/algorithm.md §6.2).
    """

    def __init__(self, planner: Planner, controller: str = "tracking"):
        if controller not in ("tracking", "inverse_dynamics"):
            raise ValueError(f"controller must be 'tracking' or 'inverse_dynamics', got {controller!r}")
        if controller == "inverse_dynamics" and planner.inverse_dynamics is None:
            raise ValueError("controller='inverse_dynamics' needs a planner loaded with an inverse_dynamics run")
        self.planner, self.controller = planner, controller
        self.state: dict[int, dict[str, Any]] = {}

    def reset(self, observations: np.ndarray, infos: dict[str, Any], env_indices: np.ndarray) -> None:
        p = self.planner
        for k, i in enumerate(env_indices):
            self.state[int(i)] = {"history": [observations[k]] * p.n_obs_steps, "t": 0, "queue": []}
        if p.x_key == "observations":
            goals = np.asarray(infos["goal"]) if "goal" in infos else None
            plans = p.plan(observations, goals)
            for k, i in enumerate(env_indices):
                self.state[int(i)]["plan"] = plans[k]

    def _follow(self, obs: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        p = self.planner
        waypoints = []
        for i in env_indices:
            st = self.state[int(i)]
            plan, t = st["plan"], st["t"]
            if t < p.horizon - 1:
                w = plan[t + 1]
            else:  # hold the last waypoint with zero velocity (docs/algorithm.md §6.2)
                w = plan[-1].copy()
                w[2:] = 0.0
            waypoints.append(w)
            st["t"] = t + 1
        w = np.stack(waypoints)
        if self.controller == "tracking":
            return tracking_action(obs, w)
        n = p.norm["observations"]
        with torch.no_grad():
            s = n.normalize(torch.as_tensor(obs, dtype=torch.float32, device=p.device))
            s_next = n.normalize(torch.as_tensor(w, dtype=torch.float32, device=p.device))
            a = p.inverse_dynamics(s, s_next)
        return p.norm["actions"].unnormalize(a).cpu().numpy()

    def act(self, observations: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        p = self.planner
        if p.x_key == "observations":
            return self._follow(observations, env_indices)
        need = []
        for k, i in enumerate(env_indices):
            st = self.state[int(i)]
            st["history"] = (st["history"] + [observations[k]])[-p.n_obs_steps:]
            if not st["queue"]:
                need.append(k)
        if need:  # one batched network call for every env whose action queue is empty
            hist = np.stack([np.stack(self.state[int(env_indices[k])]["history"]) for k in need])
            plans = p.plan(hist)
            first = p.n_obs_steps - 1
            for row, k in enumerate(need):
                self.state[int(env_indices[k])]["queue"] = list(plans[row, first: first + p.n_action_steps])
        return np.stack([self.state[int(i)]["queue"].pop(0) for i in env_indices])
