"""Maze2dEnv.reset options `start_state` and `goal`: exact start, per-episode goal, defaults unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from ractd.envs.maze2d import Maze2dEnv

# Seeded medium rollouts recorded before the reset options existed: reset(seed) then 40 steps of
# uniform random actions from default_rng(seed); and a reset_cell reset. They must not change.
RECORDED = {
    0: ([5.953957342752774, 1.908194704787239, 0.010490011715303971, -0.0535669373161111],
        [6.161575247730716, 1.7666105209513818, 0.44774597887219925, 0.007525432725137518]),
    11: ([0.9998555724880231, 6.020299671524672, -0.05103070767876675, -0.02979695111064471],
         [0.8286846188762473, 5.773904976383137, -1.0936918583750237, -1.465964497585085]),
}
RECORDED_RESET_CELL = [1.061000584749076, 1.0615881579472985, -0.024836162209524854, 0.04204452380655215]


def rollout(env: Maze2dEnv, seed: int, options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    first, _ = env.reset(seed=seed, options=options)
    rng = np.random.default_rng(seed)
    obs = first
    for _ in range(40):
        obs, *_ = env.step(rng.uniform(-1, 1, 2))
    return first, obs


def test_seeded_rollouts_without_options_are_unchanged() -> None:
    env = Maze2dEnv("medium")
    for seed, (first, last) in RECORDED.items():
        got_first, got_last = rollout(env, seed)
        np.testing.assert_array_equal(got_first, first)
        np.testing.assert_array_equal(got_last, last)
    obs, _ = env.reset(seed=5, options={"reset_cell": (1, 1)})
    np.testing.assert_array_equal(obs, RECORDED_RESET_CELL)


def test_start_state_is_set_exactly_and_goal_drives_reward_and_info() -> None:
    env = Maze2dEnv("medium")
    start = np.array([1.05, 1.9, 0.3, -0.2])
    goal = np.array([5.0, 1.0])
    obs, info = env.reset(seed=0, options={"start_state": start, "goal": goal})
    np.testing.assert_allclose(obs, start, atol=1e-12)
    np.testing.assert_array_equal(info["goal"], goal)
    assert not info["success"]
    assert env.reward(goal + [0.3, 0.0]) == 1.0 and env.reward(np.array(env.fixed_goal)) == 0.0
    # the same start state with another seed: no noise is added
    obs2, _ = env.reset(seed=99, options={"start_state": start, "goal": goal})
    np.testing.assert_array_equal(obs, obs2)
    # the start at the goal succeeds at once
    _, info = env.reset(options={"start_state": [5.0, 1.1, 0.0, 0.0], "goal": goal})
    assert info["success"]


def test_goal_option_lasts_one_episode_and_does_not_change_the_dynamics() -> None:
    env = Maze2dEnv("medium")
    _, last_with_goal = rollout(env, 0, options={"goal": [1.0, 1.0]})
    np.testing.assert_array_equal(last_with_goal, RECORDED[0][1])  # same start noise, same physics
    _, info = env.reset(seed=0)
    np.testing.assert_array_equal(info["goal"], env.fixed_goal)  # back to the fixed goal
    np.testing.assert_array_equal(env.goal, [6.0, 6.0])


def test_start_state_matches_the_recorded_continuation() -> None:
    """Resetting to a mid-rollout state and replaying the actions reproduces the rollout's states."""
    env = Maze2dEnv("medium")
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    actions = rng.uniform(-1, 1, (30, 2))
    states = [env.step(a)[0] for a in actions]
    env.reset(options={"start_state": states[9]})
    replay = [env.step(a)[0] for a in actions[10:]]
    np.testing.assert_allclose(replay, states[10:], atol=1e-9)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start_state": [1.0, 1.0]}, "finite \\(x, y, vx, vy\\)"),
        ({"start_state": [np.nan, 1.0, 0.0, 0.0]}, "finite \\(x, y, vx, vy\\)"),
        ({"start_state": [3.0, 1.0, 0.0, 0.0]}, "wall or outside"),  # cell (3, 1) is a wall
        ({"goal": [0.0, 0.0]}, "wall or outside"),
        ({"goal": [1.0, 1.0, 0.0]}, "finite \\(x, y\\)"),
        ({"start_state": [1.0, 1.0, 0.0, 0.0], "reset_cell": (1, 1)}, "not both"),
    ],
)
def test_bad_reset_options_are_refused(options: dict, message: str) -> None:
    env = Maze2dEnv("medium")
    with pytest.raises(ValueError, match=message):
        env.reset(options=options)
