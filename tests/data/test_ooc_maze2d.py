"""The Maze2d OOC split: regions, held-out pairs, training windows, test tasks from a separate run, waypoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ractd.data import (
    NormalizerSet,
    OfflineDataset,
    WindowDataset,
    WindowSpec,
    drop_last_step_per_episode,
    resegment_at_goal_departures,
)
from ractd.data.generate.maze2d import simulate_maze2d
from ractd.data.ooc_maze2d import (
    HELD_OUT_PAIRS,
    PAIR_NAMES,
    REGIONS,
    build_test_tasks,
    free_cell_regions,
    load_tasks,
    make_test_tasks,
    pair_ids,
    position_regions,
    quarter_point_waypoints,
    random_waypoints,
    save_tasks,
    training_split,
    window_step_index,
)
from ractd.envs.maze2d import parse_maze

H = 128
MAZE = parse_maze("medium")
TRAIN_SEED = 0


def region_by_hand(xy: np.ndarray) -> str:
    """Quadrant of a position from the scalar cell lookup: top = row < R/2, left = col < C/2."""
    r, c = MAZE.cell_of(xy)
    return ("T" if r < MAZE.height / 2 else "B") + ("L" if c < MAZE.width / 2 else "R")


@pytest.fixture(scope="module")
def train_data() -> OfflineDataset:
    """A short training run prepared as the Maze2d pipeline does (re-segmented, last step dropped)."""
    run = simulate_maze2d("medium", 30_000, seed=TRAIN_SEED, progress=False)
    ds = OfflineDataset.from_arrays(resegment_at_goal_departures(run.arrays, np.asarray(MAZE.goal_cell, float)))
    return drop_last_step_per_episode(ds)


@pytest.fixture(scope="module")
def test_tasks():
    return build_test_tasks("medium", H, test_steps=30_000, train_seed=TRAIN_SEED, n_tasks=40, task_seed=3)


def test_regions_of_medium_maze_are_its_quadrants() -> None:
    regions = free_cell_regions(MAZE)
    assert regions["TL"] == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 2), (3, 3)]
    assert regions["BR"] == [(4, 4), (4, 5), (4, 6), (5, 4), (5, 6), (6, 5), (6, 6)]
    assert sum(len(v) for v in regions.values()) == len(MAZE.free_cells)
    large = free_cell_regions(parse_maze("large"))  # 9 x 12: top rows 1-4, left cols 1-5
    assert (4, 1) in large["TL"] and (5, 1) in large["BL"] and (1, 6) in large["TR"] and (7, 9) in large["BR"]
    rng = np.random.default_rng(0)
    xy = rng.uniform(0.3, 6.3, size=(500, 2))
    got = position_regions(MAZE, xy)
    assert [REGIONS[k] for k in got] == [region_by_hand(p) for p in xy]
    np.testing.assert_array_equal(MAZE.cells_of(xy), [MAZE.cell_of(p) for p in xy])


def test_held_out_pairs_are_the_four_diagonals() -> None:
    assert sorted(PAIR_NAMES[i] for i in pair_ids(HELD_OUT_PAIRS)) == ["BL->TR", "BR->TL", "TL->BR", "TR->BL"]
    with pytest.raises(ValueError, match="start region, goal region"):
        pair_ids([("TL", "XX")])


def test_training_split_keeps_every_region_and_no_held_out_pair(train_data: OfflineDataset) -> None:
    split = training_split(train_data, MAZE, H)
    steps = window_step_index(train_data, H, [0, H - 1])
    kept = split.indices
    assert 0 < kept.size < steps.shape[0]
    obs = train_data.observations
    # independent check with the scalar cell lookup on every kept window
    kept_pairs = {(region_by_hand(obs[a]), region_by_hand(obs[b])) for a, b in steps[kept]}
    assert not kept_pairs & set(HELD_OUT_PAIRS)
    assert {s for s, _ in kept_pairs} == set(REGIONS) and {g for _, g in kept_pairs} == set(REGIONS)
    dropped = {(region_by_hand(obs[a]), region_by_hand(obs[b])) for a, b in steps[~split.keep]}
    assert dropped == set(HELD_OUT_PAIRS)  # a 30k-step run holds every diagonal pair
    counts = split.counts()
    assert sum(counts["windows_per_pair"].values()) == counts["windows"] == steps.shape[0]
    held = sum(counts["windows_per_pair"][f"{s}->{g}"] for s, g in HELD_OUT_PAIRS)
    assert counts["held_out_windows"] == held and counts["training_windows"] == counts["windows"] - held


def test_split_indices_address_the_matching_window_dataset(train_data: OfflineDataset) -> None:
    spec = WindowSpec(horizon=H, x_key="observations", cond="first_last")
    norms = NormalizerSet.fit({"observations": train_data.observations, "actions": train_data.actions})
    wd = WindowDataset(train_data, spec, norms)
    split = training_split(train_data, MAZE, H)
    assert len(wd) == split.pairs.size
    idx = split.indices[:: max(1, split.indices.size // 300)]
    window_steps = wd.steps(idx)
    np.testing.assert_array_equal(window_steps[:, [0, -1]], window_step_index(train_data, H, [0, H - 1])[idx])
    wp = quarter_point_waypoints(train_data.observations, window_steps)
    assert wp.shape == (idx.size, 3, 4)
    np.testing.assert_array_equal(wp[:, 1], train_data.observations[window_steps[:, H // 2]])
    np.testing.assert_array_equal(wp[:, 2], train_data.observations[window_steps[:, 3 * H // 4]])


def test_split_refuses_data_that_misses_a_region() -> None:
    # a run that never leaves the top-left room: no other quadrant as a start or a goal
    run = simulate_maze2d("medium", 400, seed=0, progress=False)
    obs = run.arrays["observations"].copy()
    obs[:, :2] = [1.0, 1.0]
    ds = OfflineDataset.from_arrays({**run.arrays, "observations": obs})
    with pytest.raises(ValueError, match="generate a longer training run"):
        training_split(ds, MAZE, H)


def test_tasks_come_from_a_separate_run_with_the_right_pairs(train_data: OfflineDataset, test_tasks) -> None:
    tasks, run = test_tasks
    assert run.metadata["seed"] == TRAIN_SEED + 1000
    # no task state occurs anywhere in the training data
    train_rows = {row.tobytes() for row in train_data.observations}
    for t in (tasks.ooc, tasks.id):
        assert not any(row.tobytes() in train_rows for row in t.window.reshape(-1, 4))
    for t, want_held_out in ((tasks.ooc, True), (tasks.id, False)):
        assert len(t) == 40
        for start, goal in zip(t.start, t.goal, strict=True):
            assert ((region_by_hand(start), region_by_hand(goal)) in HELD_OUT_PAIRS) == want_held_out
        # a task is its window's first, last and quarter-point states, read from the test run
        for i, first in enumerate(t.first_step):
            np.testing.assert_array_equal(t.window[i], run.observations[first:first + H])
            np.testing.assert_array_equal(t.actions[i], run.actions[first:first + H])
        np.testing.assert_array_equal(t.start, t.window[:, 0])
        np.testing.assert_array_equal(t.goal, t.window[:, H - 1])
        np.testing.assert_array_equal(t.waypoints, t.window[:, [32, 64, 96]])
    firsts = np.sort(np.concatenate([tasks.ooc.first_step, tasks.id.first_step]))
    assert np.diff(firsts).min() >= H / 4  # windows at least H/4 apart


def test_task_counts_per_pair_are_reported(test_tasks) -> None:
    tasks, _ = test_tasks
    c = tasks.counts()
    assert sum(c["candidates_per_pair"].values()) == c["candidate_windows"]
    assert c["held_out_candidates"] + c["training_pair_candidates"] == c["candidate_windows"]
    assert set(c["ooc_tasks_per_pair"]) <= {f"{s}->{g}" for s, g in HELD_OUT_PAIRS}
    assert sum(c["ooc_tasks_per_pair"].values()) == sum(c["id_tasks_per_pair"].values()) == 40
    assert not set(c["id_tasks_per_pair"]) & set(c["ooc_tasks_per_pair"])
    assert c["test_run"]["seed"] == 1000 and c["test_run"]["steps"] == 30_000
    assert c["test_run"]["generation_seconds"] > 0


def test_task_draw_is_seeded_and_too_few_held_out_windows_is_an_error(test_tasks) -> None:
    tasks, run = test_tasks
    again = make_test_tasks(run, MAZE, H, n_tasks=40, seed=3)
    np.testing.assert_array_equal(again.ooc.first_step, tasks.ooc.first_step)
    other = make_test_tasks(run, MAZE, H, n_tasks=40, seed=4)
    assert not np.array_equal(other.ooc.first_step, tasks.ooc.first_step)
    n_held = tasks.counts()["held_out_candidates"]
    with pytest.raises(ValueError, match=f"only {n_held} held-out .* generate a longer test run"):
        make_test_tasks(run, MAZE, H, n_tasks=n_held + 1)


def test_test_run_must_not_reuse_the_training_seed() -> None:
    with pytest.raises(ValueError, match="another seed"):
        build_test_tasks("medium", H, test_steps=1_000, train_seed=5, test_seed=5)


def test_random_waypoints_come_from_unrelated_windows(test_tasks) -> None:
    tasks, run = test_tasks
    w = random_waypoints(run.observations, tasks.candidate_first, tasks.ooc.first_step, H, seed=1)
    assert w.shape == (40, 3, 4)
    lookup = {run.observations[c + k * H // 4].tobytes(): c for c in tasks.candidate_first for k in (1, 2, 3)}
    for i, first in enumerate(tasks.ooc.first_step):
        for k in range(3):
            source = lookup[w[i, k].tobytes()]  # a quarter-point state of some candidate window ...
            assert abs(source - first) >= H  # ... that does not overlap the task's own window
    assert not np.array_equal(w, tasks.ooc.waypoints)
    np.testing.assert_array_equal(w, random_waypoints(run.observations, tasks.candidate_first,
                                                      tasks.ooc.first_step, H, seed=1))


def test_tasks_save_and_load_round_trip(test_tasks, tmp_path: Path) -> None:
    tasks, _ = test_tasks
    save_tasks(tasks, tmp_path / "tasks")
    back = load_tasks(tmp_path / "tasks")
    for a, b in ((tasks.ooc, back.ooc), (tasks.id, back.id)):
        for key, value in a.arrays().items():
            np.testing.assert_array_equal(b.arrays()[key], value)
    assert back.counts() == tasks.counts()
    with pytest.raises(FileNotFoundError, match="no tasks.safetensors"):
        load_tasks(tmp_path / "missing")
