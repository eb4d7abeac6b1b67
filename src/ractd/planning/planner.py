"""Planner: observation history (+ goal) → plan → action(s), for every sampler (spec §5, §6).

Samplers: the student's one-step jump G(x_T, T, σ_min) (NFE 1), student chaining (NFE k), the teacher's Heun
solver (2·(N−1) NFE on N levels), the DDIM baseline (NFE = steps). Normalization lives here, so `act` takes and
returns environment units.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..diffusion import (
    CTMConfig,
    ctm_jump,
    edm_denoise,
    heun_nfe,
    karras_sigma,
    karras_sigmas,
    multistep_sample,
    one_step_sample,
    sample_ddim,
    sample_heun,
)
from ..pipeline import Artifact, ArtifactError, load_artifact

SAMPLERS = ("one_step", "multistep", "heun", "ddim")


def chain_sigmas(nfe: int, cfg: CTMConfig) -> list[float]:
    """Intermediate noise levels for NFE-step chaining: evenly spaced Karras bins, e.g. NFE 3 → bins 27, 53."""
    if nfe < 1:
        raise ValueError(f"NFE must be >= 1, got {nfe}")
    n = cfg.edm.n_levels
    bins = np.linspace(0, n, nfe + 1)[1:-1].round()
    return [float(karras_sigma(b, cfg.edm)) for b in bins]


@dataclass
class SamplerSpec:
    name: str  # one_step | multistep | heun | ddim
    steps: int  # NFE for multistep; noise levels for heun; DDIM steps

    @property
    def nfe(self) -> int:
        return {"one_step": 1, "multistep": self.steps, "heun": heun_nfe(self.steps), "ddim": self.steps}[self.name]


def parse_sampler(text: str, art: Artifact) -> SamplerSpec:
    """'auto' | 'one_step' | 'multistep:3' | 'heun' | 'heun:40' | 'ddim:10' → a SamplerSpec valid for `art`."""
    name, _, arg = text.partition(":")
    if name == "auto":
        name = "one_step" if art.stage == "student" else ("heun" if art.config.teacher.kind == "edm" else "ddim")
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {text!r}; expected one of {SAMPLERS} (optionally NAME:STEPS)")
    want_stage = "student" if name in ("one_step", "multistep") else "teacher"
    if art.stage != want_stage:
        raise ArtifactError(f"{art.path}: sampler {name!r} needs a {want_stage} run, this is a {art.stage} run")
    if name == "heun" and art.config.teacher.kind != "edm" or name == "ddim" and art.config.teacher.kind != "ddpm":
        raise ArtifactError(f"{art.path}: sampler {name!r} does not fit a {art.config.teacher.kind} teacher")
    default = {"one_step": 1, "multistep": 2, "heun": art.config.teacher.edm.n_levels, "ddim": 10}[name]
    minimum = {"one_step": 1, "multistep": 1, "heun": 2, "ddim": 1}[name]  # heun: ≥ 2 noise levels = 1 step
    try:
        steps = int(arg) if arg else default
    except ValueError:
        raise ValueError(f"sampler {text!r}: the step count must be an integer, got {arg!r}") from None
    if steps < minimum:
        raise ValueError(f"sampler {text!r}: needs a step count >= {minimum}, got {steps}")
    return SamplerSpec(name, steps)


class Planner:
    """A trained teacher or student behind `plan(obs, goal)` (open loop) and `act(obs)` (closed loop)."""

    def __init__(self, art: Artifact, sampler: str = "auto", device: str = "cpu", seed: int = 0,
                 n_action_steps: int | None = None, inverse_dynamics: Artifact | None = None):
        self.art, self.cfg = art, art.config
        self.sampler = parse_sampler(sampler, art)
        self.device = torch.device(device)
        self.net = art.net.to(self.device).eval()
        self.norm = art.normalizers
        self.generator = torch.Generator(self.device).manual_seed(seed)
        d = self.cfg.data
        self.horizon, self.n_obs_steps, self.x_key, self.cond_kind = d.horizon, d.n_obs_steps, d.x_key, d.cond
        self.x_dim = art.act_dim if d.x_key == "actions" else art.obs_dim
        self.obs_dim, self.act_dim = art.obs_dim, art.act_dim
        self.n_action_steps = n_action_steps or self.cfg.eval.n_action_steps
        self.ctm = self.cfg.student.ctm
        self.inverse_dynamics = None if inverse_dynamics is None else inverse_dynamics.net.to(self.device).eval()

    @property
    def nfe(self) -> int:
        return self.sampler.nfe

    def describe(self) -> str:
        return f"{self.art.stage} {self.sampler.name} (NFE {self.nfe}) from {self.art.path} ({self.art.weights})"

    # -- conditioning -------------------------------------------------------------------------------------
    def condition(self, obs_history: np.ndarray, goal: np.ndarray | None = None) -> torch.Tensor:
        """FiLM vector c (spec §1.6): norm(s_{n−To+1..n}) flattened, or (norm(s_0), norm(goal state))."""
        obs = torch.as_tensor(np.asarray(obs_history, dtype=np.float32), device=self.device)
        if obs.dim() == 2:
            obs = obs[:, None]
        nobs = self.norm["observations"].normalize(obs)
        if self.cond_kind == "history":
            if nobs.shape[1] != self.n_obs_steps:
                raise ValueError(f"expected {self.n_obs_steps} observations per row, got {nobs.shape[1]}")
            return nobs.reshape(nobs.shape[0], -1)
        if goal is None:
            raise ValueError("this planner is goal-conditioned (data.cond='first_last'): pass goal=(x, y)")
        goal = torch.as_tensor(np.asarray(goal, dtype=np.float32), device=self.device).reshape(obs.shape[0], -1)
        goal_state = torch.zeros(obs.shape[0], self.obs_dim, device=self.device)
        goal_state[:, : goal.shape[1]] = goal  # [g_x, g_y, 0, 0] (spec §6.2)
        return torch.cat([nobs[:, -1], self.norm["observations"].normalize(goal_state)], dim=-1)

    # -- sampling -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, cond: torch.Tensor) -> torch.Tensor:
        """Normalized plans x̂ (B, H, Dx) for conditions (B, Dc), with this planner's sampler."""
        shape = (cond.shape[0], self.horizon, self.x_dim)
        s, net, e, g = self.sampler, self.net, self.ctm.edm, self.generator
        if s.name in ("one_step", "multistep"):
            def jump(x, t, k):
                return ctm_jump(net, x, t, k, cond, e)

            if s.name == "one_step":
                return one_step_sample(jump, shape, self.ctm, g, self.device)
            return multistep_sample(jump, shape, chain_sigmas(s.steps, self.ctm), self.ctm, g, self.device)
        if s.name == "heun":
            te = self.cfg.teacher.edm
            x = self.ctm.init_noise_scale * torch.randn(shape, generator=g, device=self.device)
            grid = karras_sigmas(dataclasses.replace(te, n_levels=s.steps)).to(self.device)
            return sample_heun(lambda x, sig: edm_denoise(net, x, sig, cond, te, clamp=True), x, grid)
        x = torch.randn(shape, generator=g, device=self.device)
        return sample_ddim(net, x, cond, self.cfg.teacher.ddpm, s.steps).clamp(-1, 1)

    def plan(self, obs: np.ndarray, goal: np.ndarray | None = None) -> np.ndarray:
        """Unnormalized plans (B, H, Dx) — action sequences (MuJoCo) or state sequences (Maze2d)."""
        single = np.asarray(obs).ndim == 1
        obs = np.asarray(obs)[None] if single else np.asarray(obs)
        x = self.sample(self.condition(obs, None if goal is None else np.asarray(goal).reshape(len(obs), -1)))
        out = self.norm[self.x_key].unnormalize(x).cpu().numpy()
        return out[0] if single else out

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        """Closed loop (spec §6.1): the action at index To − 1 of each sampled action sequence."""
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

    weights: "last" (model.safetensors), "ema", or "best" (the online-selection winner in best/, spec §6.3).
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
    """Diffuser's tracking controller (spec §6.2): a = (w_xy − s_xy) + (w_v − s_v)."""
    return (waypoint[..., :2] - state[..., :2]) + (waypoint[..., 2:4] - state[..., 2:4])


class PlannerPolicy:
    """`ractd.evaluate.BatchPolicy` over a Planner.

    Action planners: replan every `n_action_steps` steps (closed loop, spec §6.1) with an observation history.
    State planners (Maze2d): plan once at reset from (s_0, goal), then follow the plan with the tracking
    controller or the inverse-dynamics model (spec §6.2).
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
            else:  # hold the last waypoint with zero velocity (spec §6.2)
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
