"""Maze2d plan metrics for the out-of-combination benchmark (docs/ooc-maze2d.md, "Metrics").

A plan is an unnormalized state sequence (x, y, vx, vy) of H steps in the D4RL frame; a batch of
plans is (B, H, >=2). Per plan:

* collision-free: every position and every midpoint of consecutive positions lies in a free cell;
* continuous: max_t ‖xy_{t+1} − xy_t‖ ≤ 0.15 (the point mass moves about 0.05 per step at most);
* reaches goal: ‖xy_{H−1} − goal‖ ≤ 0.5;
* plan success = collision-free ∧ continuous ∧ reaches goal;
* waypoint hits: for each waypoint k, min_t ‖xy_t − w_k‖ ≤ 0.5;
* closed-loop success: the env reset to the task's start state and goal, the plan followed by a
  controller, success if the ball comes within 0.5 of the goal within 2H steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ractd.envs.maze2d import Maze, Maze2dEnv, parse_maze

MAX_STEP = 0.15  # continuity threshold on consecutive plan positions
GOAL_RADIUS = 0.5  # plan end / closed-loop goal radius (D4RL's sparse-reward radius)
WAYPOINT_RADIUS = 0.5  # a waypoint counts as hit within this distance of some plan position


def _positions(plans: np.ndarray) -> np.ndarray:
    xy = np.asarray(plans, dtype=np.float64)
    if xy.ndim != 3 or xy.shape[-1] < 2 or xy.shape[1] < 1:
        raise ValueError(f"plans must be (B, H, >=2) state sequences, got shape {xy.shape}")
    return xy[..., :2]


def _maze(maze: Maze | str | Sequence[str]) -> Maze:
    return maze if isinstance(maze, Maze) else parse_maze(maze)


def collision_free(maze: Maze | str | Sequence[str], plans: np.ndarray) -> np.ndarray:
    """(B,) bool: every plan position and every midpoint of consecutive positions lies in a free cell."""
    m = _maze(maze)
    xy = _positions(plans)
    midpoints = 0.5 * (xy[:, 1:] + xy[:, :-1])
    return m.free_at(xy).all(axis=1) & m.free_at(midpoints).all(axis=1)


def max_step(plans: np.ndarray) -> np.ndarray:
    """(B,) max_t ‖xy_{t+1} − xy_t‖ (0 for a one-step plan)."""
    xy = _positions(plans)
    if xy.shape[1] < 2:
        return np.zeros(xy.shape[0])
    return np.linalg.norm(np.diff(xy, axis=1), axis=-1).max(axis=1)


def continuous(plans: np.ndarray, threshold: float = MAX_STEP) -> np.ndarray:
    """(B,) bool: no step of the plan is longer than `threshold`."""
    return max_step(plans) <= threshold


def final_goal_distance(plans: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """(B,) ‖xy_{H−1} − goal‖ for goals (B, >=2)."""
    xy = _positions(plans)
    g = np.asarray(goals, dtype=np.float64)
    if g.shape[0] != xy.shape[0] or g.shape[-1] < 2:
        raise ValueError(f"goals must be ({xy.shape[0]}, >=2), got shape {g.shape}")
    return np.linalg.norm(xy[:, -1] - g[:, :2], axis=-1)


def reaches_goal(plans: np.ndarray, goals: np.ndarray, radius: float = GOAL_RADIUS) -> np.ndarray:
    """(B,) bool: the plan's last position is within `radius` of the goal."""
    return final_goal_distance(plans, goals) <= radius


def waypoint_distances(plans: np.ndarray, waypoints: np.ndarray) -> np.ndarray:
    """(B, K) min_t ‖xy_t − w_k‖ for waypoints (B, K, >=2)."""
    xy = _positions(plans)
    w = np.asarray(waypoints, dtype=np.float64)
    if w.ndim != 3 or w.shape[0] != xy.shape[0] or w.shape[-1] < 2:
        raise ValueError(f"waypoints must be ({xy.shape[0]}, K, >=2), got shape {w.shape}")
    return np.linalg.norm(xy[:, :, None, :] - w[:, None, :, :2], axis=-1).min(axis=1)


def waypoint_hits(plans: np.ndarray, waypoints: np.ndarray, radius: float = WAYPOINT_RADIUS) -> np.ndarray:
    """(B, K) bool: some plan position is within `radius` of waypoint k."""
    return waypoint_distances(plans, waypoints) <= radius


def plan_metrics(
    maze: Maze | str | Sequence[str], plans: np.ndarray, goals: np.ndarray, waypoints: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per-plan metrics of a batch: collision_free, continuous, reaches_goal, plan_success (B,) bool,
    max_step and goal_distance (B,) float, and with waypoints waypoint_hits (B,) int and all_waypoints (B,) bool."""
    out: dict[str, np.ndarray] = {
        "collision_free": collision_free(maze, plans),
        "max_step": max_step(plans),
        "goal_distance": final_goal_distance(plans, goals),
    }
    out["continuous"] = out["max_step"] <= MAX_STEP
    out["reaches_goal"] = out["goal_distance"] <= GOAL_RADIUS
    out["plan_success"] = out["collision_free"] & out["continuous"] & out["reaches_goal"]
    if waypoints is not None:
        hits = waypoint_hits(plans, waypoints)
        out["waypoint_hits"] = hits.sum(axis=1)
        out["all_waypoints"] = hits.all(axis=1)
    return out


def summarize_plan_metrics(per_plan: dict[str, np.ndarray]) -> dict[str, float]:
    """Batch rates (means) of `plan_metrics` (and `closed_loop_success`) outputs: success flags become rates,
    waypoint_hits the mean number of hits (of 3), max_step and goal_distance their means; `n` the batch size."""
    out: dict[str, float] = {}
    for key, value in per_plan.items():
        v = np.asarray(value)
        out[f"{key}_rate" if v.dtype == bool else f"mean_{key}"] = float(v.mean()) if v.size else float("nan")
    out["n"] = float(len(next(iter(per_plan.values())))) if per_plan else 0.0
    return out


def follow_waypoint(plan: np.ndarray, t: int) -> np.ndarray:
    """The controller's target at env step t: plan[t + 1], and after the plan's end its last state at rest."""
    if t < plan.shape[0] - 1:
        return plan[t + 1]
    w = np.array(plan[-1], dtype=np.float64)
    w[2:] = 0.0
    return w


def closed_loop_success(
    maze: str | Sequence[str],
    plans: np.ndarray,
    starts: np.ndarray,
    goals: np.ndarray,
    controller: Callable[[np.ndarray, np.ndarray], np.ndarray],
    max_steps: int | None = None,
    radius: float = GOAL_RADIUS,
) -> dict[str, np.ndarray]:
    """Follow each plan in `Maze2dEnv` from the task's start state towards its goal.

    `controller(state, target)` maps the current state and the plan's next state to an action, e.g.
    the tracking controller `ractd.planning.tracking_action`. The env is reset with
    `options={"start_state": starts[i], "goal": goals[i, :2]}`; at step t the target is `plans[i, t+1]`
    (after the plan's end, its last state with zero velocity). Success: some state s_0 … s_{max_steps}
    is within `radius` of the goal; `max_steps` defaults to 2H.

    Returns closed_loop_success (B,) bool and steps_to_goal (B,) int (-1 when never reached).
    """
    plans = np.asarray(plans, dtype=np.float64)
    if plans.ndim != 3 or plans.shape[-1] != 4:
        raise ValueError(f"closed-loop plans must be (B, H, 4) states (x, y, vx, vy), got shape {plans.shape}")
    b, h = plans.shape[:2]
    starts, goals = np.asarray(starts, dtype=np.float64), np.asarray(goals, dtype=np.float64)
    if starts.shape != (b, 4) or goals.shape[0] != b or goals.shape[-1] < 2:
        raise ValueError(f"starts must be ({b}, 4) and goals ({b}, >=2), got {starts.shape} and {goals.shape}")
    budget = 2 * h if max_steps is None else int(max_steps)
    env = Maze2dEnv(maze, goal_radius=radius)
    steps_to_goal = np.full(b, -1, dtype=np.int64)
    try:
        for i in range(b):
            obs, info = env.reset(options={"start_state": starts[i], "goal": goals[i, :2]})
            t = 0
            while not info["success"] and t < budget:
                action = np.asarray(controller(obs, follow_waypoint(plans[i], t)), dtype=np.float64)
                obs, _, _, _, info = env.step(action)  # the env clips actions to [-1, 1]
                t += 1
            if info["success"]:
                steps_to_goal[i] = t
    finally:
        env.close()
    return {"closed_loop_success": steps_to_goal >= 0, "steps_to_goal": steps_to_goal}


def evaluate_plans(
    maze: str | Sequence[str],
    plans: np.ndarray,
    tasks: Any,
    controller: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Every metric for plans of a task set (an object with `start`, `goal`, `waypoints`): per-plan arrays
    under "per_plan" and their rates under "summary"; closed-loop success only when a controller is given."""
    per = plan_metrics(maze, plans, tasks.goal, tasks.waypoints)
    if controller is not None:
        per |= closed_loop_success(maze, plans, tasks.start, tasks.goal, controller)
    return {"per_plan": per, "summary": summarize_plan_metrics(per)}
