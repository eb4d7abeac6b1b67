"""From a `RunConfig` to training data: load the dataset, returns-to-go, normalizers, the windows each stage sees."""

from __future__ import annotations

import warnings
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
from .data.windows import index_dtype


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
    if d.join_episodes:
        ds = joined_episodes(ds, d.dataset)
    if d.goal_resegment:
        arrays = resegment_at_goal_departures(ds.to_arrays(), maze_goal_xy(cfg.task))
        ds = OfflineDataset.from_arrays(arrays, metadata=ds.metadata, source=d.dataset)
    rtg = returns_to_go(ds.rewards, ds.episode_ends, d.discount, d.termination_penalty, ds.terminals)
    if d.goal_resegment:  # the reference drops each maze episode's last step after the reward conversion
        ds = drop_last_step_per_episode(ds.with_extras(returns_to_go=rtg))
        rtg = ds.extras["returns_to_go"]
    norms = NormalizerSet.fit({"observations": ds.observations, "actions": ds.actions, "returns": rtg})
    return PreparedData(ds, np.asarray(rtg, dtype=np.float32), norms, ds.obs_dim, ds.act_dim)


def joined_episodes(ds: OfflineDataset, source: str) -> OfflineDataset:
    """The dataset as one episode (`data.join_episodes`): the steps in their order, only the last step closing it.
    Refused when an episode ends in a terminal (a reset follows it: the steps are not one run)."""
    if ds.terminals.any():
        raise ValueError(f"{source}: data.join_episodes treats the dataset as one continuous run, but "
                         f"{int(ds.terminals.sum())} episodes end in a terminal state")
    arrays = dict(ds.to_arrays())
    arrays["timeouts"] = np.zeros(ds.num_steps, dtype=bool)
    arrays["timeouts"][-1] = True
    return OfflineDataset.from_arrays(arrays, metadata=ds.metadata, source=source)


def check_dataset_fits_task(cfg: RunConfig, prep: PreparedData) -> None:
    """Refuse a dataset whose observation or action size is not the task environment's (a planner trained on it
    could never act in that environment). A task the registry does not know (a user's preset) is not checked."""
    from .envs import get_task

    try:
        task = get_task(cfg.task)
    except KeyError:
        return
    if (prep.obs_dim, prep.act_dim) != (task.obs_dim, task.act_dim):
        raise ValueError(
            f"dataset {cfg.data.dataset}: observations of size {prep.obs_dim} and actions of size {prep.act_dim}, "
            f"but task {cfg.task}{'' if task.env_id == cfg.task else f' ({task.env_id})'} has an observation space "
            f"of size {task.obs_dim} and an action "
            f"space of size {task.act_dim}; pass this task's dataset with --dataset, or this dataset's task with "
            "--task"
        )


def warn_dropped_episodes(cfg: RunConfig, prep: PreparedData, spec: WindowSpec, episodes: np.ndarray,
                          n_windows: int) -> None:
    """One warning when half or more of the training episodes are shorter than the window and so give no
    training window (docs/algorithm.md §1.4): the model then learns from a few long episodes only. A few short
    episodes (a random policy's falls) are normal and not reported."""
    lengths = prep.dataset.episode_lengths[episodes]
    short = int(np.sum(lengths < spec.horizon))
    if not lengths.size or 2 * short < lengths.size:
        return
    levels = len(cfg.teacher.unet.down_dims)
    multiple = 2 ** (levels - 1)
    median = int(np.median(lengths))
    suggestion = max(multiple, median // multiple * multiple, -(-cfg.data.n_obs_steps // multiple) * multiple)
    dropped_steps = int(lengths[lengths < spec.horizon].sum())
    hint = (f"set a shorter data.horizon, e.g. --set data.horizon={suggestion} (a multiple of {multiple} no longer "
            "than the median episode)" if suggestion < spec.horizon else "use a dataset with longer episodes")
    warnings.warn(
        f"{cfg.data.dataset}: {short} of {lengths.size} training episodes ({dropped_steps} steps) are shorter than "
        f"the horizon of {spec.horizon} steps and give no training window; training uses {n_windows} windows "
        f"from the other {lengths.size - short} episodes; {hint}", UserWarning, stacklevel=3)


class EpochSubset:
    """A BatchSource showing a fixed random subset of `n` items of `source` (cpu presets on large datasets)."""

    def __init__(self, source: Any, n: int, seed: int = 0):
        self.source = source
        # a copy of the first n, not a view that would keep the whole permutation alive
        self.index = np.random.default_rng(seed).permutation(len(source))[: min(n, len(source))].astype(
            index_dtype(len(source)))

    def __len__(self) -> int:
        return len(self.index)

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self.source.get_batch(self.index[np.asarray(indices)])


def stage_windows(cfg: RunConfig, prep: PreparedData, stage: str) -> tuple[Any, Any | None]:
    """(train, validation) BatchSources of the stage: what x is, what conditions it, which episodes."""
    d = cfg.data
    if stage == "teacher" and d.x_key == "actions_observations":  # conditioned plans (docs/ooc-maze2d.md)
        plans: Any = PlanWindows(cfg, prep)
        if d.windows_per_epoch:
            plans = EpochSubset(plans, d.windows_per_epoch, seed=cfg.seed)
        return plans, None
    uses_data_horizon = False
    if stage == "reward" and cfg.reward.input == "action_obs":
        spec = WindowSpec(horizon=1, n_obs_steps=1, x_key="actions", cond="history")
    elif stage == "inverse_dynamics":
        spec = WindowSpec(horizon=2, n_obs_steps=2, x_key="actions", cond="history")
    else:
        spec = WindowSpec(horizon=d.horizon, n_obs_steps=d.n_obs_steps, x_key=d.x_key, cond=d.cond)
        uses_data_horizon = True
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
    if uses_data_horizon:  # the reward model (actions) and inverse dynamics use fixed short windows
        warn_dropped_episodes(cfg, prep, spec, train_ep, len(train))
    if d.windows_per_epoch:
        train = EpochSubset(train, d.windows_per_epoch, seed=cfg.seed)
        val = None if val is None else EpochSubset(val, max(1, d.windows_per_epoch // 10), seed=cfg.seed)
    return train, val


class PlanWindows:
    """Training windows of a plan-diffusion model (docs/ooc-maze2d.md), a BatchSource.

    x (B, H, Da + Do) = [norm(actions), norm(states)] per step; cond = the condition tokens of the window's three
    quarter-point states (`ractd.conditioning.condition_tokens`), or with composition tokens the kinds of its first
    observation's road users (`kind_condition`); obs (B, 1, Do) = the first normalized state. With
    `ooc.split = region_pairs` only the windows whose (start region, goal region) pair is not held out are kept
    (`ractd.data.ooc_maze2d.training_split`); `split` holds the counts per pair.
    """

    def __init__(self, cfg: RunConfig, prep: PreparedData):
        from .data.ooc_maze2d import training_split, waypoint_offsets

        self.cfg, self.prep = cfg, prep
        spec = WindowSpec(horizon=cfg.data.horizon, n_obs_steps=1, x_key="actions", cond="history",
                          pad_after=cfg.data.plan_pad_after)
        self.windows = WindowDataset(prep.dataset, spec, prep.normalizers)
        self.offsets = waypoint_offsets(cfg.data.horizon)
        self.split = None
        if cfg.ooc.split == "region_pairs":
            self.split = training_split(prep.dataset, cfg.ooc.maze, cfg.data.horizon,
                                        held_out=[tuple(p) for p in cfg.ooc.holdout])
            self.index = self.split.indices.astype(index_dtype(len(self.windows)))
        else:
            self.index = np.arange(len(self.windows), dtype=index_dtype(len(self.windows)))
        if self.index.size == 0:
            raise ValueError(f"{cfg.data.dataset}: no training window of horizon {cfg.data.horizon}")

    def __len__(self) -> int:
        return int(self.index.size)

    def get_batch(self, indices: np.ndarray) -> dict[str, Any]:
        import torch

        from .conditioning import condition_tokens, kind_condition

        steps = self.windows.steps(self.index[np.asarray(indices)])
        ds, norms = self.prep.dataset, self.prep.normalizers
        states = norms["observations"].normalize(ds.observations[steps]).astype(np.float32)
        actions = norms["actions"].normalize(ds.actions[steps]).astype(np.float32)
        if self.cfg.conditioning.tokens == "composition":  # the kinds of the window's first observation
            from .envs.roundabout_traffic import composition_tokens

            kinds = torch.from_numpy(composition_tokens(ds.observations[steps[:, 0]]))
            cond = kind_condition(kinds, self.cfg.conditioning)
        else:
            waypoints = torch.from_numpy(np.ascontiguousarray(states[:, self.offsets]))
            cond = condition_tokens(waypoints, self.cfg.conditioning)
        return {"x": np.concatenate([actions, states], axis=-1), "obs": states[:, :1], "cond": cond}
