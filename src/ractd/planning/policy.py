"""The evaluation adapter: a Planner as a `ractd.evaluate.BatchPolicy` — closed-loop replanning for action
planners, plan-once-then-follow (tracking controller or inverse dynamics) for Maze2d state planners."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..artifact import ArtifactError
from .planner import Planner, episode_generator


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
        # per env slot, grown to the highest slot seen: observation history (slot, To, Do), action queue
        # (slot, n_action_steps, Da) read from `_queue_next` on, plan (slot, H, Dx) and steps followed (Maze2d)
        self._history: np.ndarray | None = None
        self._queue: np.ndarray | None = None
        self._queue_next = np.zeros(0, dtype=np.int64)
        self._plans: np.ndarray | None = None
        self._t = np.zeros(0, dtype=np.int64)
        self._seeds: dict[int, int | None] = {}
        self._generators: dict[int, torch.Generator | None] = {}

    @property
    def state(self) -> dict[int, dict[str, Any]]:
        """Per started env slot: its episode seed, steps taken, and (state planners) its plan; a snapshot."""
        return {i: {"episode_seed": seed, "t": int(self._t[i]),
                    **({} if self._plans is None else {"plan": self._plans[i].copy()})}
                for i, seed in self._seeds.items()}

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
        idx = np.asarray(env_indices, dtype=np.int64)
        if idx.size == 0:
            return
        observations = np.asarray(observations)
        self._grow(int(idx.max()) + 1, observations)
        seeds = infos.get("episode_seed")
        for k, i in enumerate(idx.tolist()):
            seed = None if seeds is None else int(seeds[k])
            self._seeds[i] = seed
            self._generators[i] = None if seed is None else episode_generator(p.seed, seed, p.device)
        self._history[idx] = observations[:, None]  # the first observation repeated To times
        self._queue_next[idx] = p.n_action_steps  # empty queue
        self._t[idx] = 0
        if p.x_key == "observations":
            goals = np.asarray(infos["goal"]) if "goal" in infos else None
            plans = self._plan(observations, goals, idx)
            if self._plans is None:
                self._plans = np.zeros((len(self._t), *plans.shape[1:]), dtype=plans.dtype)
            self._plans[idx] = plans

    def _grow(self, n_slots: int, observations: np.ndarray) -> None:
        """Make room for env slots [0, n_slots) in the per-slot arrays."""
        p = self.planner
        if self._history is None:
            self._history = np.zeros((0, p.n_obs_steps, *observations.shape[1:]), dtype=observations.dtype)
        have = len(self._t)
        if n_slots <= have:
            return

        def grown(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.concatenate([a, np.zeros((n_slots - have, *a.shape[1:]), a.dtype)])

        self._history, self._queue, self._plans = grown(self._history), grown(self._queue), grown(self._plans)
        self._queue_next, self._t = grown(self._queue_next), grown(self._t)

    def _plan(self, obs: np.ndarray, goal: np.ndarray | None, env_indices: np.ndarray) -> np.ndarray:
        """One batched plan for the episodes in `env_indices`, each row's noise from its episode's generator."""
        p = self.planner
        generators = [self._generators[int(i)] for i in env_indices]
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
            seed = self._seeds[int(env_indices[k])]
            episode = f"env slot {int(env_indices[k])}" if seed is None else f"the episode reset with seed {seed}"
            cause = ("its observation is not finite either" if not np.isfinite(obs[k]).all()
                     else "from a finite observation")
            raise ValueError(f"{p.art.path}: the {p.sampler.name} plan for {episode} holds NaN or inf values "
                             f"({cause}); refusing to score it")
        return plans

    def _follow(self, obs: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        p = self.planner
        idx = np.asarray(env_indices, dtype=np.int64)
        t = self._t[idx]
        w = self._plans[idx, np.minimum(t + 1, p.horizon - 1)]  # the next waypoint, plan[t + 1]
        w[t >= p.horizon - 1, 2:] = 0.0  # past the plan: its last waypoint, zero velocity (docs/algorithm.md §6.2)
        self._t[idx] = t + 1
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
        idx = np.asarray(env_indices, dtype=np.int64)
        hist = self._history[idx]
        hist[:, :-1], hist[:, -1] = hist[:, 1:].copy(), observations  # drop the oldest, append the newest
        self._history[idx] = hist
        need = np.flatnonzero(self._queue_next[idx] >= p.n_action_steps)
        if need.size:  # one batched network call for every env whose action queue is empty
            plans = self._plan(hist[need], None, idx[need])
            first = p.n_obs_steps - 1
            if self._queue is None:
                self._queue = np.zeros((len(self._t), p.n_action_steps, *plans.shape[2:]), dtype=plans.dtype)
            self._queue[idx[need]] = plans[:, first: first + p.n_action_steps]
            self._queue_next[idx[need]] = 0
        actions = self._queue[idx, self._queue_next[idx]]
        self._queue_next[idx] += 1
        self._t[idx] += 1
        return actions
