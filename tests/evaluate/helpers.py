"""Test doubles for the evaluator: a batch-invariant torch MLP policy that records what it was asked,
and a tiny env whose episode lengths and rewards are known by hand."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch


class RecordingMLPPolicy:
    """Deterministic torch MLP (tanh) whose action for a row does not depend on the other rows.

    A matmul's rounding depends on the batch size (~1e-7 in float32), and Hopper amplifies such
    differences, so this network is written with elementwise products and sums, which are
    batch-invariant. It records, per episode in the order episodes were started, the observations
    it acted on and the actions it returned."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 32, gain: float = 1.0, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        f64 = torch.float64
        self.w1 = torch.randn(obs_dim, hidden, generator=g, dtype=f64) * gain / math.sqrt(obs_dim)
        self.b1 = torch.randn(hidden, generator=g, dtype=f64) * 0.1
        self.w2 = torch.randn(hidden, act_dim, generator=g, dtype=f64) * gain / math.sqrt(hidden)
        self.episode_of_env: dict[int, int] = {}
        self.observations: list[list[np.ndarray]] = []
        self.actions: list[list[np.ndarray]] = []
        self.reset_infos: list[dict[str, Any]] = []
        self.act_batch_sizes: list[int] = []

    def reset(self, observations: np.ndarray, infos: dict[str, Any], env_indices: np.ndarray) -> None:
        assert len(observations) == len(env_indices)
        self.reset_infos.append({k: np.asarray(v).copy() for k, v in infos.items()})
        for env in env_indices:
            self.episode_of_env[int(env)] = len(self.observations)
            self.observations.append([])
            self.actions.append([])

    @torch.inference_mode()
    def act(self, observations: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(observations, dtype=torch.float64)
        h = torch.tanh((x[:, :, None] * self.w1).sum(1) + self.b1)
        a = torch.tanh((h[:, :, None] * self.w2).sum(1)).numpy()
        self.act_batch_sizes.append(len(env_indices))
        for row, env in enumerate(env_indices):
            episode = self.episode_of_env[int(env)]
            self.observations[episode].append(observations[row].copy())
            self.actions[episode].append(a[row].copy())
        return a


def countdown_rewards(length: int) -> list[float]:
    """Rewards of a CountdownEnv episode under a zero action: r_t = ((7t) mod 5) − 2, t = 1..length
    (0, 2, −1, 1, −2, 0, 2, ...): not monotone, so the running-max metric differs from the return."""
    return [float((7 * t) % 5 - 2) for t in range(1, length + 1)]


class CountdownEnv(gym.Env):
    """Episode of seed s terminates after exactly 3 + s mod 7 steps; obs = [t, length]; reward =
    countdown_rewards plus the action; reset info carries a 'goal' = [length, −length]."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float64)
        self.t = 0
        self.length = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        assert seed is not None, "the evaluator must seed every episode"
        self.t, self.length = 0, 3 + seed % 7
        return self._obs(), {"goal": np.array([self.length, -self.length], dtype=np.float64)}

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.length], dtype=np.float64)

    def step(self, action):
        assert self.t < self.length, "stepped a finished episode"
        self.t += 1
        reward = (7 * self.t) % 5 - 2 + float(np.asarray(action)[0])
        return self._obs(), reward, self.t == self.length, False, {}


class ZeroPolicy:
    """Acts 0 and counts, per env index, how many act calls it got since that env's last reset."""

    description = "zero action"

    def __init__(self) -> None:
        self.calls: dict[int, list[int]] = {}

    def reset(self, observations: np.ndarray, infos: dict[str, Any], env_indices: np.ndarray) -> None:
        np.testing.assert_array_equal(infos["goal"][:, 0], observations[:, 1])  # infos row-aligned
        for env in env_indices:
            self.calls.setdefault(int(env), []).append(0)

    def act(self, observations: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        for obs, env in zip(observations, env_indices, strict=True):
            assert obs[0] == self.calls[int(env)][-1], "observation routed to the wrong env"
            self.calls[int(env)][-1] += 1
        return np.zeros((len(env_indices), 1))
