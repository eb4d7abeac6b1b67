"""Maze2d datasets by D4RL's recipe (`scripts/generation/generate_maze2d_datasets.py`).

One long run of the point mass: a waypoint controller drives it to a random goal cell; when it gets
there (or after the task's episode length without getting there) a new random goal is drawn and the
run continues from where the ball is. The waypoints are the cells of a shortest path (breadth-first
search over free cells; D4RL used Q-iteration on the grid, which yields shortest paths too), each
but the last jittered by -U(0, 0.2) per coordinate, tracked by a PD law clipped to [-1, 1]:

    a = clip(k_p (w - x) + k_d v, -1, 1),  k_p = 10, k_d = -1.

Recorded per step, as in D4RL's maze2d files:

* `observations` (x, y, vx, vy) in the D4RL frame, `actions`, `infos/qpos`, `infos/qvel` (float32);
* `infos/goal`: the controller's current goal, D4RL's `env._target` (goal cell + U(-0.1, 0.1); the
  controller itself steers to the cell's integer coordinates);
* `rewards`: the sparse reward of the recorded observation w.r.t. the task's *fixed* evaluation goal,
  1[||obs_xy - goal|| <= 0.5] (D4RL's `relabel_maze2d_rewards.py` labels `observations[i]`, not the
  next state);
* `terminals`: all 0 (the maze never terminates);
* `timeouts`: 1 at the last step of every goal segment (goal reached, or the segment used the task's
  episode length) and at the very last step of the file. These boundaries are the controller's
  goal switches, not evaluation episodes: training re-segments Maze2d at goal departures (docs/algorithm.md §1.1).

Differences from the D4RL script, all deliberate: at a goal switch D4RL kept recording the previous
observation for one step (its `s = ns` is skipped when `done`), we record the true state; a segment
has at most `max_episode_steps` steps (D4RL allowed one more); the waypoint search starts from the
cell the ball is in (D4RL rounded the position, which can name a neighbouring cell near walls).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ractd.envs.maze2d import GOAL_RADIUS, MAX_EPISODE_STEPS, Maze, Maze2dEnv, parse_maze, shortest_path
from ractd.progress import progress_bar

#: D4RL dataset sizes (maze2d-*-v1): 1 M / 2 M / 4 M steps.
DEFAULT_STEPS: dict[str, int] = {"umaze": 1_000_000, "medium": 2_000_000, "large": 4_000_000}
TARGET_NOISE = 0.1  # D4RL set_target: goal cell + U(-0.1, 0.1)


@dataclass
class WaypointController:
    """D4RL's waypoint + PD controller (`d4rl/pointmaze/waypoint_controller.py`), in the D4RL frame."""

    maze: Maze
    rng: np.random.Generator
    p_gain: float = 10.0
    d_gain: float = -1.0
    solve_threshold: float = 0.1  # a waypoint (and the goal) counts as reached within this distance
    waypoint_jitter: float = 0.2  # intermediate waypoints: cell - U(0, jitter) per coordinate
    target: tuple[float, float] = (math.nan, math.nan)
    waypoints: list[tuple[float, float]] = field(default_factory=list)
    index: int = 0

    def set_target(self, position: np.ndarray, goal_cell: tuple[int, int]) -> None:
        """Plan waypoints from the ball's cell to `goal_cell` (breadth-first shortest path)."""
        path = shortest_path(self.maze, self.maze.cell_of(position), goal_cell)
        jitter = self.rng.uniform(0.0, self.waypoint_jitter, size=(max(len(path) - 1, 0), 2))
        self.waypoints = [(r - dr, c - dc) for (r, c), (dr, dc) in zip(path[:-1], jitter, strict=True)]
        self.target = (float(goal_cell[0]), float(goal_cell[1]))
        self.waypoints.append(self.target)
        self.index = 0

    def act(self, position: np.ndarray, velocity: np.ndarray) -> tuple[np.ndarray, bool]:
        """PD action toward the current waypoint; returns (action, goal reached)."""
        x, y = float(position[0]), float(position[1])
        reached = math.hypot(x - self.target[0], y - self.target[1]) < self.solve_threshold
        wx, wy = self.target if reached else self.waypoints[self.index]
        ax = self.p_gain * (wx - x) + self.d_gain * float(velocity[0])
        ay = self.p_gain * (wy - y) + self.d_gain * float(velocity[1])
        if (
            not reached
            and self.index < len(self.waypoints) - 1
            and math.hypot(x - wx, y - wy) < self.solve_threshold
        ):
            self.index += 1
        return np.array([min(max(ax, -1.0), 1.0), min(max(ay, -1.0), 1.0)]), reached


@dataclass
class Maze2dRun:
    """The arrays of a generated run plus what happened: goals reached vs segments that ran out of time."""

    arrays: dict[str, np.ndarray]
    goals_reached: int
    goals_missed: int
    seconds: float

    @property
    def success_rate(self) -> float:
        """Fraction of completed goal segments that reached their goal (the unfinished last one excluded)."""
        n = self.goals_reached + self.goals_missed
        return self.goals_reached / n if n else float("nan")


def simulate_maze2d(
    maze: str,
    steps: int,
    seed: int = 0,
    max_segment_steps: int | None = None,
    action_noise: float = 0.0,
    progress: bool = True,
) -> Maze2dRun:
    """Run D4RL's controller recipe for `steps` steps in maze umaze|medium|large (deterministic given `seed`).

    `max_segment_steps` (default: the task's episode length, 300/600/800) bounds the steps spent on
    one goal; `action_noise` adds N(0, action_noise^2) to each action before clipping (D4RL's
    `--noisy` option used 0.5; off by default).
    """
    if steps < 1:
        raise ValueError(f"steps must be a positive number of environment steps, got {steps}")
    budget = int(max_segment_steps or MAX_EPISODE_STEPS[maze])
    rng = np.random.default_rng(seed)
    env = Maze2dEnv(maze)
    controller = WaypointController(parse_maze(maze), rng)
    free_cells = env.maze.free_cells

    obs_buf = np.empty((steps, 4), dtype=np.float32)
    act_buf = np.empty((steps, 2), dtype=np.float32)
    goal_buf = np.empty((steps, 2), dtype=np.float32)
    rew_buf = np.empty(steps, dtype=np.float32)
    timeouts = np.zeros(steps, dtype=bool)
    reached_count = missed_count = 0

    def new_goal(position: np.ndarray) -> np.ndarray:
        cell = free_cells[int(rng.integers(len(free_cells)))]
        controller.set_target(position, cell)
        return np.asarray(cell, dtype=np.float64) + rng.uniform(-TARGET_NOISE, TARGET_NOISE, size=2)

    start = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    goal = new_goal(obs)
    segment_steps = 0
    with progress_bar(f"simulating maze2d-{maze}", steps, progress) as bar:
        for i in range(steps):
            action, reached = controller.act(obs[:2], obs[2:])
            if action_noise > 0:
                action = np.clip(action + rng.normal(0.0, action_noise, size=2), -1.0, 1.0)
            obs_buf[i] = obs
            act_buf[i] = action
            goal_buf[i] = goal
            rew_buf[i] = 1.0 if env.distance_to_goal(obs) <= GOAL_RADIUS else 0.0
            segment_steps += 1
            out_of_time = segment_steps >= budget
            obs, *_ = env.step(action)
            if reached or out_of_time:
                timeouts[i] = True
                reached_count += int(reached)
                missed_count += int(not reached)
                goal = new_goal(obs)
                segment_steps = 0
            if (i + 1) % 2000 == 0 or i + 1 == steps:
                bar.update(completed=i + 1)
    env.close()
    timeouts[-1] = True  # the file ends here: the last segment is cut by the dataset size
    arrays = {
        "observations": obs_buf,
        "actions": act_buf,
        "rewards": rew_buf,
        "terminals": np.zeros(steps, dtype=bool),
        "timeouts": timeouts,
        "infos/goal": goal_buf,
        "infos/qpos": obs_buf[:, :2].copy(),
        "infos/qvel": obs_buf[:, 2:].copy(),
    }
    return Maze2dRun(arrays, reached_count, missed_count, time.perf_counter() - start)


def maze_of(name: str) -> str:
    """`maze2d-umaze` (or `maze2d-umaze-v1`) -> `umaze`, with a clear error for anything else."""
    from ractd.envs.registry import get_task

    try:
        task = get_task(name)
    except KeyError:
        task = None
    if task is None or task.kind != "maze2d" or task.maze is None:
        raise ValueError(
            f"not a Maze2d dataset name: {name!r} (expected maze2d-umaze, maze2d-medium or maze2d-large)"
        )
    return task.maze


def generate_maze2d(
    name: str,
    out_dir: str | Path,
    seed: int = 0,
    steps: int | None = None,
    progress: bool = True,
    action_noise: float = 0.0,
    minari: bool = True,
    overwrite: bool = True,
) -> dict[str, Any]:
    """Generate a Maze2d dataset and write it as D4RL hdf5, Minari dataset, card and return histogram.

    Writes `<out_dir>/<name>.hdf5`, `<out_dir>/card.json`, `<out_dir>/returns.png` and (unless
    `minari=False`) the Minari dataset `ractd/<name>-v0` in the Minari root. `steps` defaults to
    D4RL's size (1 M / 2 M / 4 M). An existing dataset of that name is replaced, or with `overwrite=False`
    refused before simulating. Returns a summary (paths, steps, episodes, success rate, timing, card).
    """
    from ractd.data.card import plot_return_histogram
    from ractd.data.generate.save import refuse_to_replace, save_generated_dataset
    from ractd.envs.registry import get_task

    maze = maze_of(name)
    task = get_task(name)
    name = task.name
    if not overwrite:
        refuse_to_replace(Path(out_dir), name, minari)
    steps = int(steps or DEFAULT_STEPS[maze])
    out_dir = Path(out_dir)
    run = simulate_maze2d(maze, steps, seed=seed, action_noise=action_noise, progress=progress)

    metadata: dict[str, Any] = {
        "name": name,
        "env_id": task.env_id,
        "task": name,
        "generator": "ractd.data.generate.maze2d (D4RL waypoint + PD controller)",
        "seed": seed,
        "steps": steps,
        "action_noise": action_noise,
        "goal_cell": list(task.goal_cell or ()),
        "goals_reached": run.goals_reached,
        "goals_missed": run.goals_missed,
        "success_rate": run.success_rate,
        "ref_min_score": task.ref_min_score,
        "ref_max_score": task.ref_max_score,
    }
    chunks = chunk_normalized_returns(run.arrays["rewards"], task.max_episode_steps, task)
    generation = {k: metadata[k] for k in ("seed", "steps", "action_noise", "goals_reached", "goals_missed",
                                           "success_rate")}
    generation["chunk_normalized_return"] = {
        "episode_steps": task.max_episode_steps,
        "chunks": int(chunks.size),
        "mean": float(chunks.mean()) if chunks.size else float("nan"),
        "std": float(chunks.std()) if chunks.size else float("nan"),
    }
    saved = save_generated_dataset(
        out_dir,
        name,
        run.arrays,
        metadata,
        env_id=task.env_id,
        ref=(task.ref_min_score, task.ref_max_score),
        algorithm_name="D4RL waypoint + PD controller",
        minari=minari,
        description=f"{name}: D4RL-recipe Maze2d data generated by ractd (seed {seed})",
        card_extra={"generation": generation},
        overwrite=overwrite,
    )
    dataset, card = saved.dataset, saved.card
    plot_return_histogram({name: dataset.episode_returns()}, out_dir / "returns.png",
                          title=f"{name}: returns of goal segments (fixed-goal sparse reward)")
    return {
        "name": name,
        "hdf5": str(saved.hdf5),
        "minari_id": saved.minari_id,
        "card": card,
        "steps": steps,
        "episodes": dataset.num_episodes,
        "goals_reached": run.goals_reached,
        "goals_missed": run.goals_missed,
        "success_rate": run.success_rate,
        "simulation_seconds": run.seconds,
        "steps_per_second": steps / run.seconds,
        "chunk_normalized_return": card["generation"]["chunk_normalized_return"],
    }


def chunk_normalized_returns(rewards: np.ndarray, episode_steps: int, task: Any) -> np.ndarray:
    """Normalized returns of the run cut into consecutive evaluation-length pieces (the rest dropped).

    The file's segments are goal-to-goal stretches of varying length, so their returns are not on
    the scale of the D4RL references; these pieces are (they have the evaluation episode length).
    """
    from ractd.envs.registry import normalized_score

    n = rewards.shape[0] // episode_steps
    returns = rewards[: n * episode_steps].astype(np.float64).reshape(n, episode_steps).sum(axis=1)
    return np.asarray(normalized_score(task, returns), dtype=np.float64).reshape(-1)
