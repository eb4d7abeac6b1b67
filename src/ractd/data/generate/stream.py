"""The learner's trajectory stream: recorded during PPO training, stored as hdf5, cut into medium-replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

from ractd.io import atomic_path

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


class TrajectoryStream:
    """Every transition a learner collects, in collection order, tagged with its episode and global index.

    Rows go into preallocated column chunks (no per-row Python objects: millions of steps fit in memory).
    """

    CHUNK = 65_536
    DTYPES = {
        "terminals": bool,
        "timeouts": bool,
        "infos/qpos": np.float64,
        "infos/qvel": np.float64,
        "episode_id": np.int64,
        "collected_at": np.int64,
    }

    def __init__(self) -> None:
        self.chunks: dict[str, list[np.ndarray]] = {}
        self.count = 0
        self.episodes = 0

    def new_episode(self) -> int:
        self.episodes += 1
        return self.episodes - 1

    def add(self, episode: int, transition: dict[str, Any]) -> None:
        row = dict(transition, episode_id=episode, collected_at=self.count)
        i = self.count % self.CHUNK
        for k, v in row.items():
            v = np.asarray(v)
            if i == 0:
                dtype = self.DTYPES.get(k, np.float32)
                self.chunks.setdefault(k, []).append(np.zeros((self.CHUNK, *v.shape), dtype))
            self.chunks[k][-1][i] = v
        self.count += 1

    def arrays(self) -> dict[str, np.ndarray]:
        """Rows grouped into contiguous episodes (ordered by episode start), steps in order within each."""
        out = {k: np.concatenate(v)[: self.count] for k, v in self.chunks.items()}
        order = np.argsort(out["episode_id"], kind="stable")
        return {k: v[order] for k, v in out.items()}


class RecordTransitions(gym.Wrapper):
    """Records raw (unnormalized) transitions of the env the learner steps into a shared stream."""

    def __init__(self, env: gym.Env, stream: TrajectoryStream) -> None:
        super().__init__(env)
        self.stream = stream
        self.episode = -1
        self.obs: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self.obs, info = self.env.reset(**kwargs)
        self.episode = self.stream.new_episode()
        return self.obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        data = self.env.unwrapped.data
        qpos, qvel = data.qpos.copy(), data.qvel.copy()
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        self.stream.add(
            self.episode,
            {
                "observations": self.obs,
                "actions": action,
                "rewards": reward,
                "terminals": terminated,
                "timeouts": truncated,
                "next_observations": next_obs,
                "infos/qpos": qpos,
                "infos/qvel": qvel,
            },
        )
        self.obs = next_obs
        return next_obs, reward, terminated, truncated, info


def replay_until(stream: dict[str, np.ndarray], step: int) -> dict[str, np.ndarray]:
    """Every transition collected before global step `step`, episodes contiguous (D4RL medium-replay).

    An episode still running at `step` keeps its collected prefix, closed with a timeout flag.
    """
    keep = stream["collected_at"] < step
    out = {k: v[keep] for k, v in stream.items()}
    episode = out["episode_id"]
    closes = np.ones(len(episode), bool)
    closes[:-1] = episode[1:] != episode[:-1]
    out["timeouts"] = out["timeouts"] | (closes & ~out["terminals"])
    return {k: out[k] for k in TRANSITION_KEYS}


def write_stream(path: Path, stream: dict[str, np.ndarray]) -> None:
    """Store the learner's trajectory stream as hdf5 (atomically)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for k, v in stream.items():
            f.create_dataset(k, data=v, compression="gzip", compression_opts=1)


def read_stream(path: Path) -> dict[str, np.ndarray]:
    """Read a stream written by `write_stream`; errors name the file and the missing key."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found (the behaviour-policy training stream)")
    with h5py.File(path, "r") as f:
        missing = [k for k in (*TRANSITION_KEYS, "episode_id", "collected_at") if k not in f]
        if missing:
            raise KeyError(f"{path}: missing datasets {missing}")
        return {k: f[k][()] for k in (*TRANSITION_KEYS, "episode_id", "collected_at")}
