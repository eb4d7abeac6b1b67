"""Maze2d plan metrics: collisions (positions and midpoints), continuity, goal, waypoint hits, closed loop."""

from __future__ import annotations

import numpy as np
import pytest

from ractd.data.ooc_maze2d import build_test_tasks
from ractd.envs.maze2d import D4RL_CELL_OFFSET, parse_maze, shortest_path
from ractd.evaluate.plan_metrics import (
    closed_loop_success,
    collision_free,
    continuous,
    evaluate_plans,
    max_step,
    plan_metrics,
    reaches_goal,
    summarize_plan_metrics,
    waypoint_hits,
)
from ractd.planning import tracking_action

MAZE = parse_maze("medium")


def centre(cell: tuple[int, int]) -> np.ndarray:
    return np.asarray(cell, dtype=np.float64) - D4RL_CELL_OFFSET


def polyline(points: list[np.ndarray], step: float = 0.05) -> np.ndarray:
    """(T, 4) states along straight segments through `points`, positions at most `step` apart, zero velocity."""
    xy = [points[0]]
    for a, b in zip(points[:-1], points[1:], strict=True):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / step)))
        xy.extend(a + (b - a) * k / n for k in range(1, n + 1))
    xy = np.asarray(xy)
    return np.concatenate([xy, np.zeros_like(xy)], axis=1)


def test_plan_through_a_wall_fails_and_a_shortest_path_plan_passes() -> None:
    start, goal = (1, 2), (1, 5)  # row 1 of medium is '#OO##OO#': cells (1, 3) and (1, 4) are walls
    through_wall = polyline([centre(start), centre(goal)])
    path = [start, *shortest_path(MAZE, start, goal)]
    along_path = polyline([centre(c) for c in path])
    goal_xy = np.asarray(goal, dtype=np.float64)  # D4RL's integer goal coords, 0.2 from the cell centre
    for plan, ok in ((through_wall, False), (along_path, True)):
        plans, goals = plan[None], goal_xy[None]
        assert collision_free(MAZE, plans)[0] == ok
        assert continuous(plans)[0] and reaches_goal(plans, goals)[0]
        assert plan_metrics(MAZE, plans, goals)["plan_success"][0] == ok
    assert len(path) > 4  # the path detours around the wall


def test_a_jump_over_a_wall_is_caught_by_the_midpoint_and_the_step_length() -> None:
    # two free positions on either side of a one-cell wall: only the midpoint lies in the wall
    a, b = centre((1, 2)), centre((1, 5))
    jump = np.array([[*a, 0, 0], [*b, 0, 0]])[None]
    assert MAZE.free_at(jump[0, :, :2]).all()
    assert not collision_free(MAZE, jump)[0]
    assert max_step(jump)[0] == pytest.approx(3.0) and not continuous(jump)[0]
    outside = np.array([[[1.0, 1.0, 0, 0], [1.0, -2.0, 0, 0]]])
    assert not collision_free(MAZE, outside)[0]


def test_continuity_and_goal_thresholds() -> None:
    plans = np.zeros((3, 5, 4))
    plans[:, :, 0] = 1.0
    plans[0, :, 1] = 1.0 + 0.14 * np.arange(5)  # steps of 0.14: continuous
    plans[1, :, 1] = 1.0 + 0.16 * np.arange(5)  # steps of 0.16: not
    plans[2, :, 1] = 1.0
    np.testing.assert_array_equal(continuous(plans), [True, False, True])
    goals = np.array([[1.0, 1.56 + 0.49], [1.0, 1.64 + 0.51], [1.0, 1.0]])
    np.testing.assert_array_equal(reaches_goal(plans, goals), [True, False, True])


def test_waypoint_hits_on_a_constructed_case() -> None:
    plan = np.zeros((1, 101, 4))
    plan[0, :, 0] = 1.0
    plan[0, :, 1] = 1.0 + 0.01 * np.arange(101)  # x = 1, y from 1 to 2
    waypoints = np.array([[[1.0, 1.5], [1.45, 1.2], [1.0, 2.6]]])  # distances 0, 0.45, 0.6
    np.testing.assert_array_equal(waypoint_hits(plan, waypoints), [[True, True, False]])
    plans = np.concatenate([plan, plan])
    both = np.concatenate([waypoints, [[[1.0, 1.0], [1.0, 2.0], [1.3, 1.5]]]])  # all within 0.5
    per = plan_metrics(MAZE, plans, np.array([[1.0, 2.0], [1.0, 2.0]]), both)
    np.testing.assert_array_equal(per["waypoint_hits"], [2, 3])
    np.testing.assert_array_equal(per["all_waypoints"], [False, True])
    s = summarize_plan_metrics(per)
    assert s["mean_waypoint_hits"] == 2.5 and s["all_waypoints_rate"] == 0.5 and s["n"] == 2
    assert s["plan_success_rate"] == 1.0


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(B, H, >=2\)"):
        collision_free(MAZE, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="waypoints must be"):
        waypoint_hits(np.zeros((2, 5, 4)), np.zeros((3, 3, 2)))
    with pytest.raises(ValueError, match="closed-loop plans"):
        closed_loop_success("medium", np.zeros((1, 5, 2)), np.zeros((1, 4)), np.zeros((1, 2)), tracking_action)


def test_closed_loop_true_window_succeeds_and_a_plan_that_goes_nowhere_fails() -> None:
    tasks, _ = build_test_tasks("medium", 128, test_steps=20_000, train_seed=0, n_tasks=8, task_seed=0)
    t = tasks.ooc  # start and goal in opposite quadrants: far apart
    assert (np.linalg.norm(t.start[:, :2] - t.goal[:, :2], axis=1) > 0.5).all()
    followed = closed_loop_success("medium", t.window, t.start, t.goal, tracking_action)
    assert followed["closed_loop_success"].all()
    assert (followed["steps_to_goal"] <= 2 * 128).all()
    standing = np.repeat(t.start[:, None], 128, axis=1)
    stayed = closed_loop_success("medium", standing, t.start, t.goal, tracking_action)
    assert not stayed["closed_loop_success"].any()
    np.testing.assert_array_equal(stayed["steps_to_goal"], -1)
    # the true windows are also valid plans that hit their own waypoints
    result = evaluate_plans("medium", t.window, t, tracking_action)
    assert result["summary"]["plan_success_rate"] == 1.0
    assert result["summary"]["all_waypoints_rate"] == 1.0
    assert result["summary"]["closed_loop_success_rate"] == 1.0
