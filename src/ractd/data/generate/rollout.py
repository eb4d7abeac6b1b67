"""Batched rollouts of a behaviour policy: transitions in D4RL layout, or the returns of whole episodes."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from ractd.data.generate.policies import Policy
from ractd.progress import progress_bar

# Keys of one transition table, in D4RL's hdf5 naming.
TRANSITION_KEYS = (
    "observations",
    "actions",
    "rewards",
    "terminals",
    "timeouts",
    "next_observations",
    "infos/qpos",
    "infos/qvel",
)


def _split_budget(steps: int, n_envs: int) -> np.ndarray:
    """Per-env step budgets that sum to `steps` (the first `steps % n` envs take one more)."""
    n = max(1, min(n_envs, steps))
    return np.array([steps // n + (i < steps % n) for i in range(n)], dtype=np.int64)


def rollout_transitions(
    env_id: str,
    policy: Policy,
    steps: int,
    seed: int | Sequence[int],
    n_envs: int = 8,
    progress: bool = True,
    description: str = "rollouts",
) -> dict[str, np.ndarray]:
    """Exactly `steps` transitions of `policy` in D4RL layout, one policy call per vector step.

    Each of the `n_envs` environments is an independent sequential stream with its own budget; the
    streams are concatenated env by env, so every episode is contiguous. terminals = the env terminated,
    timeouts = the env truncated (TimeLimit) or the stream hit its budget mid-episode (never unflagged).
    infos/qpos and infos/qvel are the simulator state at the time of `observations`.
    Deterministic given (seed, n_envs): env i is reset with a seed drawn from SeedSequence(seed) and the
    action noise comes from a generator spawned from the same sequence.
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    budgets = _split_budget(steps, n_envs)
    n = len(budgets)
    seq = np.random.SeedSequence(seed)
    env_seeds = [int(s) for s in seq.generate_state(n)]
    rng = np.random.default_rng(seq.spawn(1)[0])

    envs = SyncVectorEnv([lambda: gym.make(env_id) for _ in range(n)], autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        sims = [e.unwrapped.data for e in envs.envs]
        obs, _ = envs.reset(seed=env_seeds)
        cap = int(budgets.max())
        buf = {
            "observations": np.zeros((n, cap, obs.shape[1]), np.float32),
            "actions": np.zeros((n, cap, envs.single_action_space.shape[0]), np.float32),
            "rewards": np.zeros((n, cap), np.float32),
            "terminals": np.zeros((n, cap), bool),
            "timeouts": np.zeros((n, cap), bool),
            "next_observations": np.zeros((n, cap, obs.shape[1]), np.float32),
            "infos/qpos": np.zeros((n, cap, sims[0].qpos.shape[0]), np.float64),
            "infos/qvel": np.zeros((n, cap, sims[0].qvel.shape[0]), np.float64),
        }
        filled = np.zeros(n, np.int64)
        with progress_bar(description, steps, progress) as bar:
            while (active := filled < budgets).any():
                qpos = np.stack([d.qpos.copy() for d in sims])
                qvel = np.stack([d.qvel.copy() for d in sims])
                actions = policy.act(obs, rng)
                next_obs, rewards, terminated, truncated, info = envs.step(actions)
                true_next = next_obs.copy()
                for i in np.flatnonzero(terminated | truncated):
                    true_next[i] = info["final_obs"][i]
                rows, cols = np.flatnonzero(active), filled[active]
                row = {
                    "observations": obs,
                    "actions": actions,
                    "rewards": rewards,
                    "terminals": terminated,
                    "timeouts": truncated,
                    "next_observations": true_next,
                    "infos/qpos": qpos,
                    "infos/qvel": qvel,
                }
                for key, value in row.items():
                    buf[key][rows, cols] = value[rows]
                filled[active] += 1
                bar.advance(len(rows))
                obs = next_obs
    finally:
        envs.close()
    # A stream that stops mid-episode closes it with a timeout flag.
    for i in range(n):
        last = budgets[i] - 1
        if not buf["terminals"][i, last]:
            buf["timeouts"][i, last] = True
    return {k: np.concatenate([v[i, : budgets[i]] for i in range(n)]) for k, v in buf.items()}


def evaluate_returns(
    env_id: str, policy: Policy, episodes: int, seed: int | Sequence[int], horizon: int | None = None
) -> np.ndarray:
    """Returns of `episodes` episodes, one per env, all run in parallel until each has ended (or, with
    `horizon`, the return of each episode's first `horizon` steps)."""
    seq = np.random.SeedSequence(seed)
    env_seeds = [int(s) for s in seq.generate_state(episodes)]
    rng = np.random.default_rng(seq.spawn(1)[0])
    envs = SyncVectorEnv([lambda: gym.make(env_id) for _ in range(episodes)])
    try:
        obs, _ = envs.reset(seed=env_seeds)
        returns = np.zeros(episodes)
        done = np.zeros(episodes, bool)
        t = 0
        while not done.all() and (horizon is None or t < horizon):
            obs, rewards, terminated, truncated, _ = envs.step(policy.act(obs, rng))
            returns += np.where(done, 0.0, rewards)
            done |= terminated | truncated
            t += 1
    finally:
        envs.close()
    return returns
