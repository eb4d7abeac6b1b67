"""Evaluation of a Maze2d planner on the out-of-combination benchmark's task sets (docs/ooc-maze2d.md).

The planner is passed in as a function (start, goal, waypoints) → plan states (B, H, 4), so this module needs no
network code: one plan per task, every plan metric of `plan_metrics`, closed-loop success with the controller
passed in, rates with a 95 % Wilson interval over tasks, and a breakdown per (start region, goal region) pair.
`plot_plans_on_maze` draws plans on the map with their start, goal and waypoints.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ractd.data.ooc_maze2d import PAIR_NAMES, Maze2dTasks
from ractd.envs.maze2d import Maze, parse_maze
from ractd.evaluate.plan_metrics import evaluate_plans

PlanFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
RATE_KEYS = ("plan_success", "collision_free", "continuous", "reaches_goal", "all_waypoints",
             "closed_loop_success")


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate (95 % with z = 1.96); (nan, nan) for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rates(per_plan: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Rates of the success flags (with their 95 % Wilson interval over plans) and the mean waypoint hits."""
    out: dict[str, Any] = {"n": int(len(next(iter(per_plan.values()))))}
    for key in RATE_KEYS:
        if key in per_plan:
            flags = np.asarray(per_plan[key], dtype=bool)
            out[key] = float(flags.mean()) if flags.size else float("nan")
            out[f"{key}_95ci"] = list(wilson_interval(int(flags.sum()), int(flags.size)))
    if "waypoint_hits" in per_plan:
        out["mean_waypoint_hits"] = float(np.mean(per_plan["waypoint_hits"]))
    for key in ("max_step", "goal_distance"):
        if key in per_plan:
            out[f"mean_{key}"] = float(np.mean(per_plan[key]))
    return out


def per_pair_rates(per_plan: Mapping[str, np.ndarray], pairs: np.ndarray) -> dict[str, dict[str, Any]]:
    """`rates` for the plans of each (start region, goal region) pair that occurs, by pair name ('TL->BR')."""
    out = {}
    for pid in np.unique(pairs):
        sel = pairs == pid
        out[PAIR_NAMES[int(pid)]] = rates({k: np.asarray(v)[sel] for k, v in per_plan.items()})
    return out


def evaluate_task_set(
    maze: str | Sequence[str],
    plan: PlanFn,
    tasks: Maze2dTasks,
    waypoints: np.ndarray | None = None,
    controller: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """One plan per task of `tasks` from `plan(start, goal, waypoints)`, scored against the task's own waypoints.

    `waypoints` (n, 3, 4) replaces the waypoints the planner receives (the random-waypoint control); the metrics
    always count hits of the task's true waypoints. With a `controller` the plans are also followed in the env.
    Returns (the result: summary, per-pair breakdown, per-plan flags and timings; the plans (n, H, 4)).
    """
    given = tasks.waypoints if waypoints is None else np.asarray(waypoints)
    if given.shape != tasks.waypoints.shape:
        raise ValueError(f"waypoints must be {tasks.waypoints.shape}, got {given.shape}")
    t0 = time.perf_counter()
    plans = np.asarray(plan(tasks.start, tasks.goal, given), dtype=np.float64)
    plan_seconds = time.perf_counter() - t0
    if plans.shape[:2] != (len(tasks), tasks.horizon):
        raise ValueError(f"the planner returned plans of shape {plans.shape}, expected ({len(tasks)}, "
                         f"{tasks.horizon}, 4)")
    t0 = time.perf_counter()
    scored = evaluate_plans(maze, plans, tasks, controller)
    per_plan = scored["per_plan"]
    result = {
        "split": tasks.split,
        "summary": rates(per_plan),
        "per_pair": per_pair_rates(per_plan, tasks.pairs),
        "per_plan": {k: np.asarray(v).tolist() for k, v in per_plan.items()},
        "task_first_step": tasks.first_step.tolist(),
        "task_pairs": [PAIR_NAMES[int(p)] for p in tasks.pairs],
        "seconds": {"planning": plan_seconds, "metrics": time.perf_counter() - t0},
    }
    return result, plans


def _maze(maze: Maze | str | Sequence[str]) -> Maze:
    return maze if isinstance(maze, Maze) else parse_maze(maze)


def plot_plans_on_maze(
    maze: Maze | str | Sequence[str],
    rows: Mapping[str, tuple[np.ndarray, Maze2dTasks, np.ndarray, np.ndarray | None]],
    path: str | os.PathLike,
    n: int = 8,
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """One row per entry of `rows` ({label: (plans (B, H, 4), tasks, plan_success (B,), waypoints given or None)}),
    the first `n` plans of each drawn on the map: walls grey, the plan coloured from start to end (green frame:
    plan success, red: failure), start ●, goal ★, the waypoints the planner was given ✕ (numbered 1–3)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from ractd.evaluate.plots import save_figure

    m = _maze(maze)
    n_rows = len(rows)
    fig = Figure(figsize=(2.1 * n, 2.35 * n_rows + 0.4), layout="constrained")
    axes = fig.subplots(n_rows, n, squeeze=False)
    extent = (-0.7, m.width - 0.7, m.height - 0.7, -0.7)  # cell (i, j) spans x ∈ [i−0.7, i+0.3), y ∈ [j−0.7, j+0.3)
    for r, (label, (plans, tasks, success, given)) in enumerate(rows.items()):
        wps = tasks.waypoints if given is None else given
        for k in range(n):
            ax = axes[r, k]
            ax.imshow(m.walls, cmap="Greys", vmin=0, vmax=1.6, extent=extent, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if k >= len(plans):
                ax.axis("off")
                continue
            xy = plans[k][:, :2]
            ax.scatter(xy[:, 1], xy[:, 0], c=np.linspace(0, 1, len(xy)), cmap="viridis", s=3, zorder=2)
            ax.plot(xy[:, 1], xy[:, 0], color="tab:blue", lw=0.6, alpha=0.5, zorder=1)
            ax.plot(tasks.start[k, 1], tasks.start[k, 0], "o", color="tab:green", ms=7, mec="k", zorder=3)
            ax.plot(tasks.goal[k, 1], tasks.goal[k, 0], "*", color="tab:red", ms=12, mec="k", zorder=3)
            for j, w in enumerate(wps[k]):
                ax.plot(w[1], w[0], "X", color="tab:orange", ms=8, mec="k", zorder=4)
                ax.annotate(str(j + 1), (w[1], w[0]), xytext=(3, 3), textcoords="offset points", fontsize=7)
            ok = bool(success[k])
            for side in ax.spines.values():
                side.set_edgecolor("tab:green" if ok else "tab:red")
                side.set_linewidth(2.5)
            ax.set_title(f"{PAIR_NAMES[int(tasks.pairs[k])]} {'ok' if ok else 'fail'}", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, dpi, tight=False)
