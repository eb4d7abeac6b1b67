"""Maze2d generation: the controller reaches its goals, the files round-trip, data is in the D4RL frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ractd.data.d4rl import read_d4rl_hdf5, read_d4rl_metadata
from ractd.data.dataset import OfflineDataset, validate_arrays
from ractd.data.generate.maze2d import (
    WaypointController,
    generate_maze2d,
    maze_of,
    simulate_maze2d,
)
from ractd.envs.maze2d import D4RL_CELL_OFFSET, Maze2dEnv, parse_maze


@pytest.mark.parametrize("maze", ["umaze", "medium", "large"])
def test_controller_reaches_random_goals(maze: str) -> None:
    run = simulate_maze2d(maze, 3000, seed=0, progress=False)
    n = run.goals_reached + run.goals_missed
    print(f"{maze}: {run.goals_reached}/{n} goals reached ({run.success_rate:.1%})")
    assert n >= 8  # enough goals to mean something
    assert run.success_rate >= 0.95


def test_controller_drives_to_the_fixed_goal_and_stays() -> None:
    env = Maze2dEnv("medium")
    obs, _ = env.reset(seed=0, options={"reset_cell": (1, 1)})  # far corner from the goal (6, 6)
    ctrl = WaypointController(env.maze, np.random.default_rng(0))
    ctrl.set_target(obs, env.goal_cell)
    rewards = []
    for _ in range(600):
        action, _ = ctrl.act(obs[:2], obs[2:])
        assert np.all(np.abs(action) <= 1.0)
        obs, r, *_ = env.step(action)
        rewards.append(r)
    assert np.linalg.norm(obs[:2] - env.goal) < 0.1
    first = int(np.argmax(rewards))
    assert 0 < first < 300 and all(rewards[first + 50 :])  # arrives, then dwells at the goal


def test_random_policy_matches_d4rl_reference_min() -> None:
    # D4RL's ref_min_score (23.85 for umaze) is a random policy's mean return under the protocol:
    # it depends on the reset distribution, goal radius and episode length, all of which we mimic.
    env = Maze2dEnv("umaze")
    rng = np.random.default_rng(0)
    returns = []
    for ep in range(120):
        env.reset(seed=ep)
        returns.append(sum(env.step(rng.uniform(-1, 1, 2))[1] for _ in range(300)))
    mean, se = np.mean(returns), np.std(returns) / np.sqrt(len(returns))
    assert abs(mean - 23.85) < 3 * se + 2, (mean, se)


def test_generation_is_deterministic_given_seed() -> None:
    a = simulate_maze2d("umaze", 1500, seed=4, progress=False).arrays
    b = simulate_maze2d("umaze", 1500, seed=4, progress=False).arrays
    c = simulate_maze2d("umaze", 1500, seed=5, progress=False).arrays
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["observations"], c["observations"])


def test_generated_arrays_follow_d4rl_layout_and_frame() -> None:
    run = simulate_maze2d("large", 3000, seed=1, progress=False)
    a = run.arrays
    assert validate_arrays(a) == 3000
    maze = parse_maze("large")
    obs = a["observations"].astype(np.float64)
    # every position lies in a free cell, at least a ball radius (0.1, minus MuJoCo's contact margin)
    # away from every wall: check the four axis neighbours of the containing cell
    for p in obs[:, :2]:
        r, c = maze.cell_of(p)
        assert maze.is_free((r, c))
        lo_r, lo_c = r - 0.5 - D4RL_CELL_OFFSET, c - 0.5 - D4RL_CELL_OFFSET  # cell edges in D4RL coords
        if not maze.is_free((r - 1, c)):
            assert p[0] - lo_r >= 0.095
        if not maze.is_free((r + 1, c)):
            assert lo_r + 1 - p[0] >= 0.095
        if not maze.is_free((r, c - 1)):
            assert p[1] - lo_c >= 0.095
        if not maze.is_free((r, c + 1)):
            assert lo_c + 1 - p[1] >= 0.095
    # sparse reward of the recorded observation w.r.t. the fixed goal (7, 9), radius 0.5
    expected = (np.linalg.norm(obs[:, :2] - [7.0, 9.0], axis=1) <= 0.5).astype(np.float32)
    np.testing.assert_array_equal(a["rewards"], expected)
    assert not a["terminals"].any()
    np.testing.assert_array_equal(a["infos/qpos"], a["observations"][:, :2])
    np.testing.assert_array_equal(a["infos/qvel"], a["observations"][:, 2:])
    # infos/goal is constant within a segment, within 0.1 of a free cell, and changes after each timeout
    ends = np.flatnonzero(a["timeouts"])
    assert ends[-1] == 2999 and ends.size == run.goals_reached + run.goals_missed + 1
    starts = np.concatenate([[0], ends[:-1] + 1])
    for s, e in zip(starts, ends, strict=True):
        g = a["infos/goal"][s : e + 1]
        assert (g == g[0]).all()
        cell = np.round(g[0]).astype(int)
        assert maze.is_free((int(cell[0]), int(cell[1]))) and np.all(np.abs(g[0] - cell) <= 0.1 + 1e-6)
        if e < 2999 and run.goals_missed == 0:  # each completed segment ends within 0.1 of its cell
            assert np.linalg.norm(obs[e, :2] - cell) < 0.1
    # velocities obey D4RL's clip (|v| <= 5 before the step, so slightly above after one step)
    assert np.abs(obs[:, 2:]).max() < 5.3


def test_generate_writes_hdf5_minari_card_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    minari_root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))
    out = tmp_path / "maze2d-umaze"
    summary = generate_maze2d("maze2d-umaze-v1", out, seed=0, steps=3000, progress=False)
    assert summary["name"] == "maze2d-umaze" and summary["steps"] == 3000
    assert summary["success_rate"] >= 0.95
    hdf5 = out / "maze2d-umaze.hdf5"
    assert {p.name for p in out.iterdir()} == {"maze2d-umaze.hdf5", "card.json", "returns.png"}
    # hdf5 round-trip: bit-identical arrays, and the same as a direct simulation with the same seed
    arrays = read_d4rl_hdf5(hdf5)
    direct = simulate_maze2d("umaze", 3000, seed=0, progress=False).arrays
    assert set(arrays) == set(direct)
    for k in direct:
        np.testing.assert_array_equal(arrays[k], direct[k])
        assert arrays[k].dtype == direct[k].dtype
    meta = read_d4rl_metadata(hdf5)
    assert meta["seed"] == 0 and meta["env_id"] == "ractd/maze2d-umaze-v1" and meta["goal_cell"] == [1, 1]
    ds = OfflineDataset.from_arrays(arrays)
    assert ds.num_steps == 3000 and ds.num_episodes == summary["episodes"]
    # the Minari copy reads back to the same episodes
    from ractd.data.minari_io import load_minari

    mds = load_minari("ractd/maze2d-umaze-v0", root=minari_root)
    np.testing.assert_array_equal(mds.observations, ds.observations)
    np.testing.assert_array_equal(mds.actions, ds.actions)
    np.testing.assert_array_equal(mds.rewards, ds.rewards)
    np.testing.assert_array_equal(mds.episode_ends, ds.episode_ends)
    # card
    card = summary["card"]
    assert card["steps"] == 3000 and card["episodes"] == ds.num_episodes
    assert card["generation"]["chunk_normalized_return"]["chunks"] == 10
    # regenerating replaces the Minari dataset instead of failing
    generate_maze2d("maze2d-umaze", out, seed=1, steps=1000, progress=False)
    assert load_minari("ractd/maze2d-umaze-v0", root=minari_root).num_steps == 1000


def test_maze_name_errors() -> None:
    assert maze_of("maze2d-large") == "large"
    with pytest.raises(ValueError, match="not a Maze2d dataset name: 'hopper-medium'"):
        maze_of("hopper-medium")
    with pytest.raises(ValueError, match="steps must be a positive"):
        simulate_maze2d("umaze", 0, progress=False)
