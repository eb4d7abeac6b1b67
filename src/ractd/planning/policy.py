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
