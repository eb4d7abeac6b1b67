"""Sequence windows over episodes, the models' inputs (docs/algorithm.md §1.3, §1.4, §1.6).

A window is a pair (episode, start); its steps are ``start, …, start + H − 1`` of that episode.
Windows are never materialized: a batch is gathered by fancy indexing into the flat arrays.
What x is (``x_key``) and what conditions it (``cond``) is data in a ``WindowSpec``, not a code path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ractd.data.dataset import OfflineDataset
from ractd.data.normalizer import MinMaxNormalizer

CONDITIONINGS = ("history", "first_last")


def index_dtype(largest: int) -> type[np.signedinteger]:
    """The narrowest of int32/int64 that holds every index in ``[-largest, largest]``: the window arrays of a
    dataset of fewer than 2^31 steps take half the memory of int64 ones, and index exactly the same."""
    return np.int32 if largest < np.iinfo(np.int32).max else np.int64


def window_starts(
    episode_lengths: np.ndarray, horizon: int, pad_before: int = 0, pad_after: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``horizon`` steps, as (episode_index, start) arrays (docs/algorithm.md §1.4).

    Starts run over ``−pad_before, …, L − H + pad_after`` *inclusive*: the last full window is
    included (the reference's exclusive range is a bug, docs/algorithm.md §8.19). Steps outside the episode
    are filled by repeating its first/last step. An episode shorter than H contributes windows
    only if the padding allows. Both arrays are int32 when every value fits (``index_dtype``), else int64.
    """
    lengths = np.asarray(episode_lengths, dtype=np.int64).reshape(-1)
    if horizon < 1 or pad_before < 0 or pad_after < 0:
        raise ValueError(f"need horizon >= 1 and pads >= 0, found {horizon=}, {pad_before=}, {pad_after=}")
    counts = np.maximum(lengths - horizon + pad_after + pad_before + 1, 0)
    total = int(counts.sum())
    dtype = index_dtype(max(total, int(lengths.max(initial=0)), lengths.size) + pad_before)
    episode_index = np.repeat(np.arange(lengths.size, dtype=dtype), counts)
    first = (np.cumsum(counts) - counts).astype(dtype)  # index of each episode's first window
    start = np.arange(total, dtype=dtype)
    start -= np.repeat(first, counts)
    start -= pad_before
    return episode_index, start


def split_episodes(n_episodes: int, val_ratio: float, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation episode split (docs/algorithm.md §1.3, the reference's ``get_val_mask``).

    n_val = min(max(1, round(n·val_ratio)), n − 1) episodes drawn without replacement with
    ``np.random.default_rng(seed)``; val_ratio ≤ 0 gives no validation episodes. Returns sorted
    (train_idx, val_idx) int64 arrays.
    """
    if n_episodes < 1:
        raise ValueError(f"need at least one episode to split, found {n_episodes}")
    val = np.zeros(n_episodes, dtype=bool)
    if val_ratio > 0 and n_episodes > 1:
        n_val = min(max(1, round(n_episodes * val_ratio)), n_episodes - 1)
        val[np.random.default_rng(seed=seed).choice(n_episodes, size=n_val, replace=False)] = True
    return np.flatnonzero(~val).astype(np.int64), np.flatnonzero(val).astype(np.int64)


@dataclass(frozen=True)
class WindowSpec:
    """What a model sees (docs/algorithm.md §1.6).

    Attributes:
        horizon: H, steps per window.
        n_obs_steps: To, observation history length (the first To observations of the window).
        x_key: the diffused variable: ``"actions"`` (MuJoCo), ``"observations"`` (Maze2d), or any
            per-step extra of the dataset.
        cond: ``"history"`` = the first To observations flattened (B, To·Do); ``"first_last"`` =
            the first and last observation of the window (B, 2·Do).
        pad_before, pad_after: edge-repeat padding allowed before/after an episode (0 in the reference).
    """

    horizon: int
    n_obs_steps: int = 1
    x_key: str = "actions"
    cond: str = "history"
    pad_before: int = 0
    pad_after: int = 0

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"WindowSpec.horizon must be >= 1, found {self.horizon}")
        if not 1 <= self.n_obs_steps <= self.horizon:
            raise ValueError(f"WindowSpec.n_obs_steps must be in [1, horizon={self.horizon}], "
                             f"found {self.n_obs_steps}")
        if self.cond not in CONDITIONINGS:
            raise ValueError(f"WindowSpec.cond must be one of {CONDITIONINGS}, found {self.cond!r}")
        if self.pad_before < 0 or self.pad_after < 0:
            raise ValueError(f"WindowSpec pads must be >= 0, found {self.pad_before}, {self.pad_after}")

    def cond_dim(self, obs_dim: int) -> int:
        """Width of the conditioning vector for observations of dimension ``obs_dim``."""
        return self.n_obs_steps * obs_dim if self.cond == "history" else 2 * obs_dim


def condition_vector(normalize: Callable[[Any], Any], states: Any) -> Any:
    """c = norm(conditioning states) flattened, (B, k, Do) → (B, k·Do) (docs/algorithm.md §1.6).

    The states are the To most recent observations (``cond="history"``) or the pair (s_first, s_goal)
    (``cond="first_last"``). numpy or torch, with the matching ``normalize``; training windows, the planner and
    the exported ONNX graph all build c here.
    """
    n = normalize(states)
    return n.reshape(n.shape[0], -1)


class WindowDataset:
    """Normalized windows of an ``OfflineDataset`` for training (docs/algorithm.md §1.4–§1.6).

    ``get_batch(indices)`` returns float32 arrays:
    ``x`` (B, H, Dx) = norm(x_key) over the window; ``cond`` (B, Dc) per ``spec.cond``;
    ``obs`` (B, To, Do) = the first To normalized observations; ``rtg`` (B, H) when ``rtg`` was
    given, normalized by ``normalizers["returns"]`` if present.
    """

    def __init__(
        self,
        dataset: OfflineDataset,
        spec: WindowSpec,
        normalizers: Mapping[str, MinMaxNormalizer],
        episodes: np.ndarray | None = None,
        rtg: np.ndarray | None = None,
    ) -> None:
        self.dataset = dataset
        self.spec = spec
        self.normalizers = normalizers
        self.x_source = self._per_step(spec.x_key)
        for key in (spec.x_key, "observations"):
            if key not in normalizers:
                raise KeyError(f"WindowDataset needs a normalizer for {key!r}; have {sorted(normalizers)}")
        if rtg is not None:
            rtg = np.asarray(rtg).reshape(-1)
            if rtg.shape[0] != dataset.num_steps:
                raise ValueError(f"rtg must have one value per step ({dataset.num_steps}), found {rtg.shape}")
        self.rtg = rtg
        eps = np.arange(dataset.num_episodes) if episodes is None else np.asarray(episodes, dtype=np.int64)
        self.episodes = eps
        self._lo = dataset.episode_starts  # (E,) first step of every episode
        self._hi = dataset.episode_ends - 1  # (E,) last step of every episode
        # two int32 numbers per window (int64 past 2^31 steps), nothing else: (episode, global first step)
        local_ep, start = window_starts(dataset.episode_lengths[eps], spec.horizon, spec.pad_before,
                                        spec.pad_after)
        dtype = index_dtype(dataset.num_steps + spec.pad_before + spec.pad_after)
        self._episode = eps.astype(dtype)[local_ep]  # the window's episode
        del local_ep
        first = self._lo.astype(dtype)[self._episode]
        first += start  # global index of the window's first step (may be < lo if padded)
        self._first = first

    def _per_step(self, key: str) -> np.ndarray:
        arrays = self.dataset.to_arrays()
        if key not in arrays:
            raise KeyError(f"x_key {key!r} is not a per-step array of the dataset; have {sorted(arrays)}")
        a = arrays[key]
        return a if a.ndim == 2 else a.reshape(a.shape[0], -1)

    def __len__(self) -> int:
        return int(self._first.shape[0])

    def steps(self, indices: np.ndarray) -> np.ndarray:
        """(B, H) int64 global step indices of windows ``indices``, edge-padded inside each episode."""
        indices = np.asarray(indices, dtype=np.int64)
        ep = self._episode[indices]
        steps = self._first[indices, None].astype(np.int64) + np.arange(self.spec.horizon, dtype=np.int64)
        return np.clip(steps, self._lo[ep, None], self._hi[ep, None])

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Gather and normalize the windows ``indices`` (see class docstring)."""
        spec = self.spec
        steps = self.steps(indices)
        obs_norm = self.normalizers["observations"]
        x = self.normalizers[spec.x_key].normalize(self.x_source[steps])
        history = self.dataset.observations[steps[:, : spec.n_obs_steps]]
        obs = obs_norm.normalize(history)
        # c from s_n … s_{n+To−1} (MuJoCo) or from (s_first, s_last) of the window (Maze2d)
        cond_states = history if spec.cond == "history" else self.dataset.observations[steps[:, [0, -1]]]
        cond = condition_vector(obs_norm.normalize, cond_states)
        batch = {"x": x.astype(np.float32, copy=False), "cond": cond.astype(np.float32, copy=False),
                 "obs": obs.astype(np.float32, copy=False)}
        if self.rtg is not None:
            rtg = self.rtg[steps].astype(np.float32)
            if "returns" in self.normalizers:
                rtg = self.normalizers["returns"].normalize(rtg)
            batch["rtg"] = rtg.astype(np.float32, copy=False)
        return batch

    def batches(
        self, batch_size: int, rng: np.random.Generator | None = None, shuffle: bool = True,
        drop_last: bool = False,
    ) -> Iterator[dict[str, np.ndarray]]:
        """One epoch of batches (shuffled with ``rng`` when ``shuffle``)."""
        order = np.arange(len(self))
        if shuffle:
            order = (rng or np.random.default_rng()).permutation(order)
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        for i in range(0, stop, batch_size):
            yield self.get_batch(order[i : i + batch_size])
