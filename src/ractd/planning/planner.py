"""Planner: observation history (+ goal) → plan → action(s), for every sampler (docs/algorithm.md §5, §6).

Samplers: the student's one-step jump G(x_T, T, σ_min) (NFE 1), student chaining (NFE k), the teacher's Heun
solver (2·(N−1) NFE on N levels), the DDIM baseline (NFE = steps). Normalization lives here, so `act` takes and
returns environment units.

Noise. A direct `plan(obs)` / `act_batch(obs)` call draws from the planner's one generator (seeded with `seed`):
reproducible, but a row's noise depends on the rows before it and on earlier calls. Evaluation instead gives each
episode its own generator (`episode_generator`, seeded from the planner's seed and the episode's reset seed) and
passes one per row (`plan(obs, generators=...)`), so an episode's plans do not depend on which other episodes run
beside it (docs/algorithm.md §6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..artifact import Artifact, ArtifactError, load_artifact
from ..devices import check_device
from ..diffusion import gaussian_noise, multistep_sample, sample_ddim, sample_euler, sample_heun
from .core import PlanCore
from .samplers import SAMPLERS, SamplerSpec, chain_sigmas, ode_grid, parse_sampler

__all__ = ["SAMPLERS", "Planner", "SamplerSpec", "chain_sigmas", "episode_generator", "load_planner", "ode_grid",
           "parse_sampler"]


Noise = Callable[[int], torch.Tensor]  # batch size B → standard normal noise (B, H, Dx)


def episode_generator(seed: int, episode_seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The noise generator of one episode: seeded from the planner's seed and the episode's reset seed (episode i of
    an evaluation is reset with `--seed` + i, docs/algorithm.md §6), mixed by numpy's SeedSequence."""
    state = np.random.SeedSequence([int(seed), int(episode_seed)]).generate_state(1, np.uint64)[0]
    return torch.Generator(device).manual_seed(int(state))


def check_finite_weights(art: Artifact) -> None:
    """Refuse (ArtifactError, naming the file) a run whose network or normalizer holds NaN or inf values."""
    normalizers = [(f"{key}.{part}", torch.as_tensor(value))
                   for key in art.normalizers for part, value in art.normalizers[key].state_dict().items()]
    files = [(art.path / f"{art.weights}.safetensors", art.net.state_dict().items(),
              "did the training diverge?); evaluate other weights (--weights) or retrain"),
             (art.path / "normalizer.safetensors", normalizers, "a non-finite value in the dataset?); retrain")]
    for path, tensors, remedy in files:
        for name, t in tensors:
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ArtifactError(f"{path}: tensor {name!r} holds NaN or inf values ({remedy}")


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
        self.seed = seed
        self.generator = torch.Generator(self.device).manual_seed(seed)
        d = self.cfg.data
        self.horizon, self.n_obs_steps, self.x_key, self.cond_kind = d.horizon, d.n_obs_steps, d.x_key, d.cond
        self.x_dim = self.core.x_dim
        self.obs_dim, self.act_dim = art.obs_dim, art.act_dim
        self.n_action_steps = self._checked_n_action_steps(n_action_steps)
        self.inverse_dynamics = None if inverse_dynamics is None else inverse_dynamics.net.to(self.device).eval()
        self._draw = self._resolve_sampler()
        self._on_cpu = self.device.type == "cpu"

    def _checked_n_action_steps(self, given: int | None) -> int:
        """Actions executed per plan: 1 up to the plan's actions from index To − 1 on (docs/algorithm.md §6.1)."""
        if self.x_key != "actions":
            if given is not None:
                raise ValueError(f"{self.art.path}: --n-action-steps applies to action-sequence planners (MuJoCo); "
                                 "this state planner (Maze2d) plans once per episode")
            return self.cfg.eval.n_action_steps
        n, source = (given, "--n-action-steps") if given is not None else (self.cfg.eval.n_action_steps,
                                                                          "eval.n_action_steps")
        most = self.horizon - self.n_obs_steps + 1
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= most:
            raise ValueError(f"{source} must be between 1 and {most}, the actions of a plan from the first executed "
                             f"one on (horizon {self.horizon}, To = {self.n_obs_steps}), got {n!r}")
        return int(n)

    @property
    def nfe(self) -> int:
        return self.sampler.nfe

    def describe(self) -> str:
        return f"{self.art.stage} {self.sampler.name} (NFE {self.nfe}) from {self.art.path} ({self.art.weights})"

    # ------------------------------------------------------------------------------------------- samplers

    def _resolve_sampler(self) -> Callable[[torch.Tensor, Noise], torch.Tensor]:
        """The sampler as one function (c, noise) → x̂ (B, H, Dx), its constants (noise scale, σ grid) computed once.

        Every random draw goes through `noise`, in a fixed order: x_T, then one draw per chaining level."""
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

    def _shared_noise(self, batch: int) -> torch.Tensor:
        """Noise for the whole batch from the planner's one generator (direct calls)."""
        return torch.randn((batch, self.horizon, self.x_dim), generator=self.generator, device=self.device)

    def _noise_per_row(self, generators: Sequence[torch.Generator], batch: int) -> Noise:
        """Noise whose row b comes from generators[b] alone (evaluation: one generator per episode)."""
        if len(generators) != batch:
            raise ValueError(f"generators: expected one per row ({batch}), got {len(generators)}")
        shape = (batch, self.horizon, self.x_dim)
        return lambda n: gaussian_noise(shape, generators, self.device)

    def _one_step(self, scale: float | None, cond: torch.Tensor, noise: Noise) -> torch.Tensor:
        # x̂ = clamp(G_θ(s·x_T, σ_max, σ_min)), x_T ~ N(0, I), s = init_noise_scale  (§5); 1.0·x_T is x_T exactly
        x_T = noise(cond.shape[0])
        return self.denoiser.one_step(x_T if scale is None else scale * x_T, cond).clamp_(-1, 1)

    def _multistep(self, sigmas: list[float], cond: torch.Tensor, noise: Noise) -> torch.Tensor:
        # CTM chaining (§5): x̂ = clamp(G_θ(s·x_T, σ_max, σ_min)), then for each τ: x̂ ← clamp(G_θ(x̂ + τε, τ, σ_min))
        den, n = self.denoiser, cond.shape[0]

        def jump(x, t, k):
            return den.jump(x, t, k, cond)

        return multistep_sample(jump, (n, self.horizon, self.x_dim), sigmas, den.edm, device=self.device,
                                noise_sampler=lambda: noise(n))

    def _ddim(self, cond: torch.Tensor, noise: Noise) -> torch.Tensor:
        den = self.denoiser
        return sample_ddim(den.net, noise(cond.shape[0]), cond, den.ddpm, self.sampler.steps).clamp(-1, 1)

    def _ode(self, solver: Callable, grid: torch.Tensor, scale: float, cond: torch.Tensor, noise: Noise
             ) -> torch.Tensor:
        # D clamped to [−1, 1] inside (§3.6)
        return solver(self.denoiser, scale * noise(cond.shape[0]), grid, extra_args={"cond": cond, "clamp": True})

    def _noise(self, generators: Sequence[torch.Generator] | None, batch: int) -> Noise:
        return self._shared_noise if generators is None else self._noise_per_row(generators, batch)

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
    def sample(self, cond: torch.Tensor, generators: Sequence[torch.Generator] | None = None) -> torch.Tensor:
        """Normalized plans x̂ (B, H, Dx) for conditions (B, Dc), with this planner's sampler (noise as in `plan`)."""
        return self._draw(cond, self._noise(generators, cond.shape[0]))

    def plan(self, obs: np.ndarray, goal: np.ndarray | None = None,
             generators: Sequence[torch.Generator] | None = None) -> np.ndarray:
        """Unnormalized plans (B, H, Dx) — action sequences (MuJoCo) or state sequences (Maze2d).

        Without `generators` the noise comes from the planner's one generator; with one generator per row, row b's
        noise comes from generators[b] alone, so its plan does not depend on the other rows.
        """
        obs = np.asarray(obs)
        single = obs.ndim == 1
        if single:
            obs = obs[None]
        noise = self._noise(generators, obs.shape[0])
        with torch.inference_mode():
            x = self.core.unnormalize(self._draw(self._condition(obs, goal), noise))
            out = (x if self._on_cpu else x.cpu()).numpy()
        return out[0] if single else out

    def act_batch(self, obs: np.ndarray, generators: Sequence[torch.Generator] | None = None) -> np.ndarray:
        """Closed loop (docs/algorithm.md §6.1): the action at index To − 1 of each sampled action sequence."""
        if self.x_key != "actions":
            raise ValueError("act() needs an action-sequence planner; a state planner uses plan() + a controller")
        return self.plan(obs, generators=generators)[:, self.n_obs_steps - 1]

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
    check_device(device)
    art = load_artifact(run_dir, weights=files[weights])
    if art.stage not in ("teacher", "student"):
        raise ArtifactError(f"{run_dir}: a planner needs a teacher or student run, this is a {art.stage} run")
    check_finite_weights(art)
    inv = load_artifact(inverse_dynamics, expect_stage="inverse_dynamics") if inverse_dynamics else None
    if inv is not None:
        check_finite_weights(inv)
    return Planner(art, sampler, device, seed, n_action_steps, inv)
