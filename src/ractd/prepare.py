"""From a `RunConfig` to training data: load the dataset, returns-to-go, normalizers, the windows each stage sees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import RunConfig
from .data import (
    NormalizerSet,
    OfflineDataset,
    WindowDataset,
    WindowSpec,
    drop_last_step_per_episode,
    load_dataset,
    resegment_at_goal_departures,
    returns_to_go,
    split_episodes,
)


@dataclass
class PreparedData:
    dataset: OfflineDataset
    rtg: np.ndarray
    normalizers: NormalizerSet
    obs_dim: int
    act_dim: int


def maze_goal_xy(task_name: str) -> np.ndarray:
    """The fixed evaluation goal of a Maze2d task in the D4RL frame (docs/algorithm.md §1.1)."""
    from .envs import make_env

    env = make_env(task_name)
    try:
        return np.asarray(env.unwrapped.goal, dtype=np.float64)[:2]
    finally:
        env.close()


def prepare_data(cfg: RunConfig) -> PreparedData:
    """Load, (Maze2d) re-segment, compute returns-to-go, fit the min–max normalizers (docs/algorithm.md §1, §2.1)."""
    d = cfg.data
    ds = load_dataset(d.dataset)
    if d.max_dataset_steps is not None:
        keep = np.flatnonzero(ds.episode_ends <= d.max_dataset_steps)
        if keep.size == 0:
            raise ValueError(f"data.max_dataset_steps={d.max_dataset_steps} keeps no complete episode of {d.dataset}")
        ds = ds.select_episodes(keep)
    if d.goal_resegment:
        arrays = resegment_at_goal_departures(ds.to_arrays(), maze_goal_xy(cfg.task))
        ds = OfflineDataset.from_arrays(arrays, metadata=ds.metadata, source=d.dataset)
    rtg = returns_to_go(ds.rewards, ds.episode_ends, d.discount, d.termination_penalty, ds.terminals)
    if d.goal_resegment:  # the reference drops each maze episode's last step after the reward conversion
        ds = drop_last_step_per_episode(ds.with_extras(returns_to_go=rtg))
        rtg = ds.extras["returns_to_go"]
    norms = NormalizerSet.fit({"observations": ds.observations, "actions": ds.actions, "returns": rtg})
    return PreparedData(ds, np.asarray(rtg, dtype=np.float32), norms, ds.obs_dim, ds.act_dim)


class EpochSubset:
    """A BatchSource showing a fixed random subset of `n` items of `source` (cpu presets on large datasets)."""

    def __init__(self, source: Any, n: int, seed: int = 0):
        self.source = source
        self.index = np.random.default_rng(seed).permutation(len(source))[: min(n, len(source))]

    def __len__(self) -> int:
        return len(self.index)

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self.source.get_batch(self.index[np.asarray(indices)])


def stage_windows(cfg: RunConfig, prep: PreparedData, stage: str) -> tuple[Any, Any | None]:
    """(train, validation) BatchSources of the stage: what x is, what conditions it, which episodes."""
    d = cfg.data
    if stage == "reward" and cfg.reward.input == "action_obs":
        spec = WindowSpec(horizon=1, n_obs_steps=1, x_key="actions", cond="history")
    elif stage == "inverse_dynamics":
        spec = WindowSpec(horizon=2, n_obs_steps=2, x_key="actions", cond="history")
    else:
        spec = WindowSpec(horizon=d.horizon, n_obs_steps=d.n_obs_steps, x_key=d.x_key, cond=d.cond)
    val_ratio = cfg.reward.val_ratio if stage == "reward" else 0.0
    n_ep = prep.dataset.num_episodes
    if val_ratio > 0 and n_ep > 1:
        train_ep, val_ep = split_episodes(n_ep, val_ratio, seed=42)
    else:
        train_ep, val_ep = np.arange(n_ep), None
    train = WindowDataset(prep.dataset, spec, prep.normalizers, episodes=train_ep, rtg=prep.rtg)
    val = None if val_ep is None else WindowDataset(prep.dataset, spec, prep.normalizers, val_ep, rtg=prep.rtg)
    if len(train) == 0:
        raise ValueError(f"{d.dataset}: no training window of horizon {spec.horizon} (episodes too short?)")
    if d.windows_per_epoch:
        train = EpochSubset(train, d.windows_per_epoch, seed=cfg.seed)
        val = None if val is None else EpochSubset(val, max(1, d.windows_per_epoch // 10), seed=cfg.seed)
    return train, val
