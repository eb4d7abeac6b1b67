"""`OfflineDataset`: episodes of an offline RL dataset as flat per-step numpy arrays (docs/algorithm.md §1.1).

The layout is D4RL's: every per-step array is the concatenation of all episodes, and
``episode_ends`` holds each episode's exclusive end index. An episode closes at a step whose
``terminals`` or ``timeouts`` flag is set; that closing step belongs to the episode (docs/algorithm.md §1.1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ractd.data.errors import dataset_error
from ractd.data.returns import episode_returns

#: Keys every dataset must provide (D4RL v2 layout).
REQUIRED_KEYS: tuple[str, ...] = ("observations", "actions", "rewards", "terminals", "timeouts")

_EXPECTED = {
    "observations": "a 2-D float array (N, obs_dim)",
    "actions": "a 2-D float array (N, act_dim)",
    "rewards": "a 1-D float array (N,)",
    "terminals": "a 1-D bool array (N,) marking steps where the episode terminated",
    "timeouts": "a 1-D bool array (N,) marking steps where the episode was truncated (D4RL v2 layout)",
}


def _is_real_numeric(a: np.ndarray) -> bool:
    return a.dtype.kind in "biuf"


def validate_arrays(arrays: Mapping[str, Any], source: str = "<arrays>") -> int:
    """Check a D4RL-layout dict of per-step arrays; return the number of steps N.

    Raises DatasetError naming ``source`` and the offending key for: a missing required key, an
    empty dataset, a non-numeric dtype, a wrong number of dimensions, a length different from N,
    NaN/inf in a float array, or a flag array whose values are not 0/1. Keys under ``metadata/``
    are not per-step data and are ignored.
    """
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        k = missing[0]
        raise dataset_error(
            source,
            f"missing (expected {_EXPECTED[k]}); present keys: {sorted(arrays)}",
            key=k,
        )
    n_steps: int | None = None
    for key in list(REQUIRED_KEYS) + sorted(k for k in arrays if k not in REQUIRED_KEYS):
        if key.startswith("metadata/"):
            continue
        a = np.asarray(arrays[key])
        if not _is_real_numeric(a):
            raise dataset_error(source, f"expected a real numeric or bool array, found dtype {a.dtype}", key)
        if a.ndim == 0:
            raise dataset_error(source, f"expected a per-step array (N, ...), found a scalar {a!r}", key)
        if key in ("observations", "actions") and a.ndim != 2:
            raise dataset_error(source, f"expected {_EXPECTED[key]}, found shape {a.shape}", key)
        if key in ("rewards", "terminals", "timeouts") and not (
            a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1)
        ):
            raise dataset_error(source, f"expected {_EXPECTED[key]}, found shape {a.shape}", key)
        if n_steps is None:
            n_steps = a.shape[0]
            if n_steps == 0:
                raise dataset_error(source, "dataset is empty (0 steps)", key)
        elif a.shape[0] != n_steps:
            raise dataset_error(
                source,
                f"expected length {n_steps} (the length of 'observations'), found shape {a.shape}",
                key,
            )
        if key in ("terminals", "timeouts") and a.dtype.kind != "b":
            bad = ~np.isin(a, (0, 1))
            if bad.any():
                i = int(np.flatnonzero(bad.ravel())[0])
                raise dataset_error(
                    source, f"expected a bool (0/1) array, found value {a.ravel()[i]!r} at step {i}", key
                )
        if a.dtype.kind == "f":
            finite = np.isfinite(a)
            if not finite.all():
                i = int(np.flatnonzero(~finite.reshape(a.shape[0], -1).all(axis=1))[0])
                raise dataset_error(
                    source, f"contains NaN/inf (first at step {i}); expected finite values", key
                )
    assert n_steps is not None
    return n_steps


def _as_flag(a: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a).reshape(-1).astype(bool, copy=False))


@dataclass(frozen=True, eq=False)
class OfflineDataset:
    """Episodes of an offline RL dataset, concatenated (numpy only).

    Attributes:
        observations: (N, Do) float32.
        actions: (N, Da) float32.
        rewards: (N,) float32, the raw per-step rewards.
        terminals: (N,) bool, the episode ended in a terminal state at this step.
        timeouts: (N,) bool, the episode was truncated at this step.
        episode_ends: (E,) int64, exclusive end index of every episode; the last equals N.
        extras: optional per-step arrays of length N (``infos/goal``, ``infos/qpos``,
            ``next_observations``, ``returns_to_go`` ...), kept through selection and slicing.
        metadata: free-form description (name, env_id, source, ...).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    episode_ends: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.observations.shape[0]
        source = str(self.metadata.get("source", "<OfflineDataset>"))
        for key, a in self._step_arrays().items():
            if a.shape[:1] != (n,):
                raise dataset_error(source, f"expected length {n}, found shape {a.shape}", key)
        ends = self.episode_ends
        if ends.ndim != 1 or ends.size == 0 or ends[-1] != n or (np.diff(ends, prepend=0) <= 0).any():
            raise dataset_error(
                source,
                f"expected strictly increasing exclusive episode ends finishing at N={n}, found {ends!r}",
                "episode_ends",
            )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
        source: str = "<arrays>",
        keep_partial: bool = False,
    ) -> OfflineDataset:
        """Validate D4RL-layout arrays and segment them into episodes (docs/algorithm.md §1.1).

        A step closes an episode if ``terminals | timeouts`` is set there, and belongs to it. A
        trailing partial episode (steps after the last flag) is dropped unless ``keep_partial``.
        Every key other than the five required ones (and ``metadata/*``) becomes an extra.
        """
        n = validate_arrays(arrays, source)
        terminals = _as_flag(arrays["terminals"])
        timeouts = _as_flag(arrays["timeouts"])
        ends = np.flatnonzero(terminals | timeouts).astype(np.int64) + 1
        if keep_partial and (ends.size == 0 or ends[-1] != n):
            ends = np.append(ends, np.int64(n))
        if ends.size == 0:
            raise dataset_error(
                source,
                f"no complete episode: none of the {n} steps has a terminal or timeout flag "
                "(pass keep_partial=True to keep the steps as one partial episode)",
                "terminals",
            )
        m = int(ends[-1])  # steps kept; the rest is a trailing partial episode (docs/algorithm.md §1.1)

        def take(a: Any, dtype: type | None) -> np.ndarray:
            a = np.asarray(a)[:m]
            return np.ascontiguousarray(a if dtype is None else a.astype(dtype, copy=False))

        extras = {
            k: take(v, None)
            for k, v in arrays.items()
            if k not in REQUIRED_KEYS and not k.startswith("metadata/")
        }
        meta = dict(metadata or {})
        meta.setdefault("source", source)
        return cls(
            observations=take(arrays["observations"], np.float32),
            actions=take(arrays["actions"], np.float32),
            rewards=take(np.asarray(arrays["rewards"]).reshape(-1), np.float32),
            terminals=terminals[:m].copy(),
            timeouts=timeouts[:m].copy(),
            episode_ends=ends,
            extras=extras,
            metadata=meta,
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The D4RL flat layout (required keys + extras); ``from_arrays`` inverts it.

        If the last episode is a kept partial one (no flag on its last step), pass
        ``keep_partial=True`` to ``from_arrays`` to get it back.
        """
        return {
            "observations": self.observations,
            "actions": self.actions,
            "rewards": self.rewards,
            "terminals": self.terminals,
            "timeouts": self.timeouts,
            **self.extras,
        }

    def _step_arrays(self) -> dict[str, np.ndarray]:
        return self.to_arrays()

    def with_extras(self, **arrays: np.ndarray) -> OfflineDataset:
        """A copy with extra per-step arrays added or replaced (e.g. ``returns_to_go=rtg``)."""
        extras = dict(self.extras)
        extras.update({k: np.asarray(v) for k, v in arrays.items()})
        return OfflineDataset(
            self.observations, self.actions, self.rewards, self.terminals, self.timeouts,
            self.episode_ends, extras, dict(self.metadata),
        )

    # ------------------------------------------------------------------ shape
    @property
    def num_steps(self) -> int:
        """Total number of steps N."""
        return int(self.observations.shape[0])

    @property
    def num_episodes(self) -> int:
        """Number of episodes E."""
        return int(self.episode_ends.shape[0])

    @property
    def obs_dim(self) -> int:
        """Observation dimension Do."""
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        """Action dimension Da."""
        return int(self.actions.shape[1])

    @property
    def episode_starts(self) -> np.ndarray:
        """(E,) int64 index of every episode's first step."""
        return np.concatenate([[0], self.episode_ends[:-1]]).astype(np.int64)

    @property
    def episode_lengths(self) -> np.ndarray:
        """(E,) int64 number of steps of every episode."""
        return np.diff(self.episode_ends, prepend=0).astype(np.int64)

    def __len__(self) -> int:
        return self.num_steps

    def __repr__(self) -> str:
        name = self.metadata.get("name", self.metadata.get("source", "?"))
        return (
            f"OfflineDataset({name!r}, episodes={self.num_episodes}, steps={self.num_steps}, "
            f"obs_dim={self.obs_dim}, act_dim={self.act_dim}, extras={sorted(self.extras)})"
        )

    # ------------------------------------------------------------------ episodes
    def episode(self, i: int) -> dict[str, np.ndarray]:
        """All per-step arrays of episode ``i`` (views into the flat arrays)."""
        if not -self.num_episodes <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range for a dataset of {self.num_episodes} episodes")
        i %= self.num_episodes
        s, e = int(self.episode_starts[i]), int(self.episode_ends[i])
        return {k: v[s:e] for k, v in self.to_arrays().items()}

    def episode_returns(self) -> np.ndarray:
        """(E,) float64 undiscounted return Σ_t r_t of every episode (`ractd.data.returns.episode_returns`)."""
        return episode_returns(self.rewards, self.episode_ends)

    def step_episode_index(self) -> np.ndarray:
        """(N,) int64: the episode every step belongs to."""
        return np.repeat(np.arange(self.num_episodes, dtype=np.int64), self.episode_lengths)

    def select_episodes(self, idx: np.ndarray | list[int]) -> OfflineDataset:
        """A new dataset made of episodes ``idx`` (integer indices in the given order, or a bool mask)."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            if idx.shape != (self.num_episodes,):
                raise ValueError(f"episode mask must have shape ({self.num_episodes},), found {idx.shape}")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("select_episodes: no episode selected (an empty dataset is not allowed)")
        if (idx < 0).any() or (idx >= self.num_episodes).any():
            raise IndexError(f"episode indices out of range [0, {self.num_episodes}): {idx}")
        steps = _episode_steps(self.episode_starts[idx], self.episode_lengths[idx])
        return self._take_steps(steps, np.cumsum(self.episode_lengths[idx]))

    def longer_than(self, n: int) -> OfflineDataset:
        """Episodes with strictly more than ``n`` steps (the reference length filter, docs/algorithm.md §1.1)."""
        return self.select_episodes(self.episode_lengths > n)

    def _take_steps(self, steps: np.ndarray, episode_ends: np.ndarray) -> OfflineDataset:
        return OfflineDataset(
            observations=self.observations[steps],
            actions=self.actions[steps],
            rewards=self.rewards[steps],
            terminals=self.terminals[steps],
            timeouts=self.timeouts[steps],
            episode_ends=episode_ends.astype(np.int64),
            extras={k: v[steps] for k, v in self.extras.items()},
            metadata=dict(self.metadata),
        )

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """sha256 hex digest over every array (name, dtype, shape, bytes); metadata excluded."""
        h = hashlib.sha256()
        arrays = {**self.to_arrays(), "episode_ends": self.episode_ends}
        for key in sorted(arrays):
            a = np.ascontiguousarray(arrays[key])
            h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
            h.update(a.tobytes())
        return h.hexdigest()


def _episode_steps(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + length)`` for every (start, length) pair, vectorized."""
    total = int(lengths.sum())
    offsets = np.repeat(starts - np.cumsum(np.concatenate([[0], lengths[:-1]])), lengths)
    return np.arange(total, dtype=np.int64) + offsets


def resegment_at_goal_departures(
    arrays: Mapping[str, Any], goal_xy: tuple[float, float] | np.ndarray, radius: float = 0.5
) -> dict[str, np.ndarray]:
    """Maze2d re-segmentation (docs/algorithm.md §1.1, Diffuser's ``maze2d_set_terminals``).

    With ``at_goal[i] = ||obs[i, :2] − goal|| < radius``, overwrite
    ``timeouts[i] = at_goal[i] and not at_goal[i+1]`` (last index False): an episode ends at the
    step where the agent is at the goal and leaves it on the next step. Returns a new dict; the
    input is not modified.
    """
    obs = np.asarray(arrays["observations"])
    goal = np.asarray(goal_xy, dtype=np.float64).reshape(-1)
    if goal.shape != (2,):
        raise ValueError(f"goal_xy must be an (x, y) pair, found shape {goal.shape}")
    at_goal = np.linalg.norm(obs[:, :2].astype(np.float64) - goal, axis=1) < radius
    timeouts = np.zeros(obs.shape[0], dtype=bool)
    timeouts[:-1] = at_goal[:-1] & ~at_goal[1:]
    out = dict(arrays)
    out["timeouts"] = timeouts
    return out


def drop_last_step_per_episode(ds: OfflineDataset) -> OfflineDataset:
    """Drop every episode's last step and set ``next_observations = obs[t+1]`` (docs/algorithm.md §1.1, Maze2d).

    The new last step of each episode is flagged as a timeout (the episode is truncated there);
    episodes of length 1 disappear. Compute returns-to-go *before* calling this (docs/algorithm.md §2.1) and
    carry them as an extra (``ds.with_extras(returns_to_go=rtg)``) so they are sliced alike.
    """
    lengths = ds.episode_lengths - 1
    keep_ep = lengths > 0
    if not keep_ep.any():
        raise ValueError("drop_last_step_per_episode: every episode has a single step; nothing would remain")
    steps = _episode_steps(ds.episode_starts[keep_ep], lengths[keep_ep])
    ends = np.cumsum(lengths[keep_ep]).astype(np.int64)
    out = ds._take_steps(steps, ends)
    timeouts = out.timeouts.copy()
    timeouts[ends - 1] = True
    extras = dict(out.extras)
    extras["next_observations"] = ds.observations[steps + 1]
    return OfflineDataset(
        out.observations, out.actions, out.rewards, out.terminals, timeouts, ends, extras, out.metadata
    )
