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
DEVICE_TYPES = ("cpu", "cuda", "mps")

Noise = Callable[[int], torch.Tensor]  # batch size B → standard normal noise (B, H, Dx)


def episode_generator(seed: int, episode_seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The noise generator of one episode: seeded from the planner's seed and the episode's reset seed (episode i of
    an evaluation is reset with `--seed` + i, docs/algorithm.md §6), mixed by numpy's SeedSequence."""
    state = np.random.SeedSequence([int(seed), int(episode_seed)]).generate_state(1, np.uint64)[0]
    return torch.Generator(device).manual_seed(int(state))


def check_device(device: str | torch.device) -> torch.device:
    """The torch device named by `device`, refused (ValueError) when it is not one or is not available here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {device}: not a device; expected cpu, cuda, cuda:N or mps") from None
    if dev.type not in DEVICE_TYPES:
        raise ValueError(f"--device {device}: not supported; expected cpu, cuda, cuda:N or mps")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__}); "
                         "use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    return dev


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
        shape = (self.horizon, self.x_dim)

        def noise(n: int) -> torch.Tensor:
            return torch.stack([torch.randn(shape, generator=g, device=self.device) for g in generators])

        return noise

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


def tracking_action(state: np.ndarray, waypoint: np.ndarray) -> np.ndarray:
    """Diffuser's tracking controller (docs/algorithm.md §6.2): a = (w_xy − s_xy) + (w_v − s_v)."""
    return (waypoint[..., :2] - state[..., :2]) + (waypoint[..., 2:4] - state[..., 2:4])


class PlannerPolicy:
    """`ractd.evaluate.BatchPolicy` over a Planner.

    Action planners: replan every `n_action_steps` steps (closed loop, docs/algorithm.md §6.1) with an observation
    history.
    State planners (Maze2d): plan once at reset from (s_0, goal), then follow the plan with the tracking
    controller or the inverse-dynamics model (docs/algorithm.md §6.2).

    Noise: every episode draws from its own generator, `episode_generator(planner.seed, its reset seed)`, made at
    its reset from `infos["episode_seed"]` (which `ractd.evaluate.evaluate` passes), so an episode's plans depend
    on the run, the sampler, the seeds and the episode's index, never on the episodes beside it in the batch. A
    reset without episode seeds (a hand-written loop) uses the planner's one generator.
    A plan that is not finite stops the evaluation (ValueError) instead of scoring NaN returns.
    """

    def __init__(self, planner: Planner, controller: str = "tracking"):
        if controller not in ("tracking", "inverse_dynamics"):
            raise ValueError(f"controller must be 'tracking' or 'inverse_dynamics', got {controller!r}")
        if controller != "tracking" and planner.x_key != "observations":
            raise ValueError(f"{planner.art.path}: --controller {controller} applies to state planners (Maze2d); "
                             "this run plans actions")
        if controller == "inverse_dynamics" and planner.inverse_dynamics is None:
            raise ValueError("controller='inverse_dynamics' needs a planner loaded with an inverse_dynamics run")
        self.planner, self.controller = planner, controller
        self.state: dict[int, dict[str, Any]] = {}

    def check_env(self, env: Any) -> None:
        """Refuse an env whose observation or action size differs from the run's (`evaluate` calls this first)."""
        p = self.planner
        obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
        if obs_shape != (p.obs_dim,) or act_shape != (p.act_dim,):
            env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__

            def size(shape: tuple[int, ...] | None) -> Any:
                return shape[0] if shape is not None and len(shape) == 1 else shape

            raise ArtifactError(f"{p.art.path}: the run was trained with obs_dim={p.obs_dim}, act_dim={p.act_dim}, "
                                f"but the env {env_id} (task {p.cfg.task}) has obs_dim={size(obs_shape)}, "
                                f"act_dim={size(act_shape)}")

    def reset(self, observations: np.ndarray, infos: dict[str, Any], env_indices: np.ndarray) -> None:
        p = self.planner
        seeds = infos.get("episode_seed")
        for k, i in enumerate(env_indices):
            seed = None if seeds is None else int(seeds[k])
            self.state[int(i)] = {"history": [observations[k]] * p.n_obs_steps, "t": 0, "queue": [],
                                  "episode_seed": seed,
                                  "generator": None if seed is None else episode_generator(p.seed, seed, p.device)}
        if p.x_key == "observations":
            goals = np.asarray(infos["goal"]) if "goal" in infos else None
            plans = self._plan(observations, goals, env_indices)
            for k, i in enumerate(env_indices):
                self.state[int(i)]["plan"] = plans[k]

    def _plan(self, obs: np.ndarray, goal: np.ndarray | None, env_indices: np.ndarray) -> np.ndarray:
        """One batched plan for the episodes in `env_indices`, each row's noise from its episode's generator."""
        p = self.planner
        states = [self.state[int(i)] for i in env_indices]
        generators = [st["generator"] for st in states]
        if all(g is None for g in generators):
            plans = p.plan(obs, goal)
        elif any(g is None for g in generators):
            raise ValueError("PlannerPolicy: some episodes of this batch were reset with infos['episode_seed'] and "
                             "some without; give it to every reset (ractd.evaluate does) or to none")
        else:
            plans = p.plan(obs, goal, generators=generators)
        finite = np.isfinite(plans.reshape(len(plans), -1)).all(axis=1)
        if not finite.all():
            k = int(np.flatnonzero(~finite)[0])
            seed = states[k]["episode_seed"]
            episode = f"env slot {int(env_indices[k])}" if seed is None else f"the episode reset with seed {seed}"
            cause = ("its observation is not finite either" if not np.isfinite(obs[k]).all()
                     else "from a finite observation")
            raise ValueError(f"{p.art.path}: the {p.sampler.name} plan for {episode} holds NaN or inf values "
                             f"({cause}); refusing to score it")
        return plans

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
            plans = self._plan(hist, None, np.asarray(env_indices)[need])
            first = p.n_obs_steps - 1
            for row, k in enumerate(need):
                self.state[int(env_indices[k])]["queue"] = list(plans[row, first: first + p.n_action_steps])
        return np.stack([self.state[int(i)]["queue"].pop(0) for i in env_indices])
