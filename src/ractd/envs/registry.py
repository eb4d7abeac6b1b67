"""Task registry: a task name -> environment factory, episode length, reference scores, dataset name.

The paper's tasks are `hopper|walker2d|halfcheetah-<level>` (level: random, medium, medium-replay,
expert, medium-expert) and `maze2d-umaze|medium|large`; D4RL's versioned ids (`hopper-medium-v2`,
`maze2d-umaze-v1`) are accepted as aliases. Any other registered gymnasium id (e.g. `Pendulum-v1`)
is a generic task with the gym spec's episode length and no reference scores.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from ractd.data.returns import normalized_score as _normalized_score
from ractd.envs import locomotion, maze2d

TaskKind = Literal["locomotion", "maze2d"]


@dataclass(frozen=True)
class TaskSpec:
    """Everything the pipeline needs to know about a task, independent of any model."""

    name: str
    kind: TaskKind
    env_id: str  # gymnasium id passed to gym.make
    max_episode_steps: int
    obs_dim: int
    act_dim: int
    ref_min_score: float | None = None  # return of a random policy (D4RL reference)
    ref_max_score: float | None = None  # return of an expert (D4RL reference)
    dataset: str | None = None  # dataset name: `ractd data generate <dataset>`
    maze: str | None = None  # umaze | medium | large (maze2d only)
    goal_cell: tuple[int, int] | None = None  # fixed evaluation goal cell (maze2d only)
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def has_reference_scores(self) -> bool:
        return self.ref_min_score is not None and self.ref_max_score is not None


MAZE_GYM_ID = "ractd/maze2d-{maze}-v1"


def _register_maze_envs() -> None:
    """Register `ractd/maze2d-<maze>-v1` with gymnasium (D4RL episode lengths), once per process."""
    for maze in maze2d.MAZES:
        env_id = MAZE_GYM_ID.format(maze=maze)
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="ractd.envs.maze2d:Maze2dEnv",
                kwargs={"maze": maze},
                max_episode_steps=maze2d.MAX_EPISODE_STEPS[maze],
            )


def _paper_tasks() -> dict[str, TaskSpec]:
    tasks: dict[str, TaskSpec] = {}
    for robot in locomotion.ROBOTS:
        for level in locomotion.DATASET_LEVELS:
            name = f"{robot}-{level}"
            tasks[name] = TaskSpec(
                name=name,
                kind="locomotion",
                env_id=locomotion.GYM_IDS[robot],
                max_episode_steps=locomotion.MAX_EPISODE_STEPS,
                obs_dim=locomotion.OBS_DIM[robot],
                act_dim=locomotion.ACT_DIM[robot],
                ref_min_score=locomotion.REF_MIN_SCORE[robot],
                ref_max_score=locomotion.REF_MAX_SCORE[robot],
                dataset=name,
            )
    for maze_name in maze2d.MAZES:
        name = f"maze2d-{maze_name}"
        tasks[name] = TaskSpec(
            name=name,
            kind="maze2d",
            env_id=MAZE_GYM_ID.format(maze=maze_name),
            max_episode_steps=maze2d.MAX_EPISODE_STEPS[maze_name],
            obs_dim=4,
            act_dim=2,
            ref_min_score=maze2d.REF_MIN_SCORE[maze_name],
            ref_max_score=maze2d.REF_MAX_SCORE[maze_name],
            dataset=name,
            maze=maze_name,
            goal_cell=maze2d.parse_maze(maze_name).goal_cell,
        )
    return tasks


_register_maze_envs()
TASKS: dict[str, TaskSpec] = _paper_tasks()
_D4RL_VERSION = re.compile(r"-v\d+$")


def task_names() -> list[str]:
    """The names of the built-in tasks."""
    return sorted(TASKS)


def get_task(name: str | TaskSpec) -> TaskSpec:
    """Look up a task by name (`hopper-medium`, `maze2d-umaze-v1`, ...) or a gymnasium env id."""
    if isinstance(name, TaskSpec):
        return name
    key = name.strip()
    if key.lower() in TASKS:
        return TASKS[key.lower()]
    unversioned = _D4RL_VERSION.sub("", key.lower())
    if unversioned in TASKS:
        return TASKS[unversioned]
    if key in gym.registry:
        return _generic_task(key)
    raise KeyError(
        f"unknown task {name!r}{did_you_mean(name)}: expected one of {', '.join(task_names())} "
        "(D4RL '-vN' suffixes accepted) or a registered gymnasium env id such as 'Hopper-v5'"
    )


def is_known_task(name: str) -> bool:
    """Whether `get_task(name)` finds the task, without building an environment."""
    key = name.strip()
    return key.lower() in TASKS or _D4RL_VERSION.sub("", key.lower()) in TASKS or key in gym.registry


def did_you_mean(name: str, extra: Iterable[str] = ()) -> str:
    """" (did you mean 'x'?)" with the task name or gymnasium id (or one of the `extra` names) closest to `name`,
    or "" when none is close."""
    candidates = {c.lower(): c for c in (*task_names(), *gym.registry, *extra)}
    close = difflib.get_close_matches(name.strip().lower(), list(candidates), n=1, cutoff=0.75)
    return f" (did you mean {candidates[close[0]]!r}?)" if close else ""


def _generic_episode_steps(env_id: str) -> int:
    """A plain gymnasium env's episode length: its spec's, else locomotion's 1000 steps."""
    return int(gym.spec(env_id).max_episode_steps or locomotion.MAX_EPISODE_STEPS)


@functools.cache
def _generic_task(env_id: str) -> TaskSpec:
    """A plain gymnasium env as a locomotion-style task: no reference scores, episode length from its spec.
    Built once per process (the spaces come from one throwaway environment)."""
    env = gym.make(env_id)
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    if not isinstance(obs_space, gym.spaces.Box) or not isinstance(act_space, gym.spaces.Box):
        raise ValueError(
            f"gymnasium env {env_id!r}: expected Box observation and action spaces, "
            f"got {type(obs_space).__name__} and {type(act_space).__name__}"
        )
    return TaskSpec(
        name=env_id,
        kind="locomotion",
        env_id=env_id,
        max_episode_steps=_generic_episode_steps(env_id),
        obs_dim=int(np.prod(obs_space.shape)),
        act_dim=int(np.prod(act_space.shape)),
    )


def _make_arguments(task: str | TaskSpec) -> tuple[str, dict[str, Any]]:
    """The gymnasium id and `gym.make` keyword arguments of a task's env. A plain gymnasium id needs no env
    built to know them (`get_task` builds one, once, to read its spaces), so n envs cost n constructions."""
    if isinstance(task, str):
        key = task.strip()
        if key.lower() not in TASKS and _D4RL_VERSION.sub("", key.lower()) not in TASKS and key in gym.registry:
            return key, {"max_episode_steps": _generic_episode_steps(key)}
    spec = get_task(task)
    return spec.env_id, {**spec.env_kwargs, "max_episode_steps": spec.max_episode_steps}


def make_env(task: str | TaskSpec, seed: int | None = None, **kwargs: Any) -> gym.Env:
    """Create the task's environment with its episode length (a `TimeLimit`).

    `kwargs` go to `gym.make` (e.g. `render_mode`, `max_episode_steps`). With `seed`, the env is
    reset once with that seed and its action space seeded, so later unseeded resets are reproducible.
    """
    env_id, make_kwargs = _make_arguments(task)
    env = gym.make(env_id, **{**make_kwargs, **kwargs})
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def normalized_score(task: str | TaskSpec, returns: float | np.ndarray) -> float | np.ndarray:
    """D4RL's normalized score ×100 of a task's returns (`ractd.data.returns.normalized_score` with the task's
    reference returns); a float for a scalar return."""
    spec = get_task(task)
    if not spec.has_reference_scores:
        raise ValueError(
            f"task {spec.name!r} has no reference scores (ref_min_score/ref_max_score), "
            "so its returns cannot be normalized"
        )
    score = _normalized_score(returns, spec.ref_min_score, spec.ref_max_score)
    return float(score) if score.ndim == 0 else score
