"""The Maze2d out-of-combination (OOC) benchmark: region pairs, the held-out split, test tasks (docs/ooc-maze2d.md).

The free cells of a maze of R rows and C columns fall into four quadrants, top = row < R/2 and
left = col < C/2: TL, TR, BL, BR. A window of H steps has the pair (region of its first state, region
of its last state). The four diagonal ordered pairs TL→BR, BR→TL, TR→BL, BL→TR are held out: the model
trains on every window whose pair is one of the other twelve (same-quadrant pairs included), so
every quadrant is seen as a start and as a goal, but never a start in one corner region with the
goal in the opposite one.

Test tasks come from a separate generated run (its own seed, by default the training seed + 1000),
never from the training data. Its candidate windows start every ⌈H/4⌉ steps (so any two tasks are
at least H/4 steps apart); OOC tasks are candidates with a held-out pair, ID tasks candidates with a
training pair, `n_tasks` of each drawn with a fixed seed. A task is the window's first state, its
last state (the goal), its three quarter-point states (the waypoints, at ⌊H/4⌋, ⌊H/2⌋, ⌊3H/4⌋)
and the whole window for reference.

Window order: `training_split` classifies the windows of an `OfflineDataset` in the order in which
`WindowDataset` (same episodes, horizon and pads) enumerates them, so `split.indices` indexes that
`WindowDataset` directly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ractd.data.dataset import OfflineDataset
from ractd.data.windows import window_starts
from ractd.envs.maze2d import Maze, parse_maze

REGIONS: tuple[str, ...] = ("TL", "TR", "BL", "BR")  # index = 2 * bottom + right
HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = (("TL", "BR"), ("BR", "TL"), ("TR", "BL"), ("BL", "TR"))
TEST_SEED_OFFSET = 1000  # the test run's seed = training seed + 1000 unless given
DEFAULT_N_TASKS = 200


def pair_name(start: int, goal: int) -> str:
    """'TL->BR' for region indices (0, 3)."""
    return f"{REGIONS[start]}->{REGIONS[goal]}"


PAIR_NAMES: tuple[str, ...] = tuple(pair_name(s, g) for s in range(4) for g in range(4))  # pair id = 4 s + g


def pair_ids(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Ordered region pairs by name, ('TL', 'BR'), -> pair ids 4 · start + goal."""
    ids = []
    for pair in pairs:
        if len(pair) != 2 or pair[0] not in REGIONS or pair[1] not in REGIONS:
            raise ValueError(f"a held-out pair is (start region, goal region) with regions in {REGIONS}, "
                             f"got {pair!r}")
        ids.append(4 * REGIONS.index(pair[0]) + REGIONS.index(pair[1]))
    return np.asarray(sorted(set(ids)), dtype=np.int64)


def position_regions(maze: Maze, xy: np.ndarray) -> np.ndarray:
    """Quadrant index (TL 0, TR 1, BL 2, BR 3) of D4RL positions (..., >=2), by the cell that holds them."""
    cells = maze.cells_of(xy)
    bottom = cells[..., 0] >= maze.height / 2
    right = cells[..., 1] >= maze.width / 2
    return (2 * bottom + right).astype(np.int64)


def free_cell_regions(maze: Maze) -> dict[str, list[tuple[int, int]]]:
    """The maze's free cells grouped by quadrant (for docs and checks)."""
    cells = np.asarray(maze.free_cells, dtype=np.float64)
    regions = position_regions(maze, cells)  # integer coords lie in their own cell
    return {name: [maze.free_cells[i] for i in np.flatnonzero(regions == k)] for k, name in enumerate(REGIONS)}


def waypoint_offsets(horizon: int) -> np.ndarray:
    """The quarter points of a window of H steps: (⌊H/4⌋, ⌊H/2⌋, ⌊3H/4⌋)."""
    if horizon < 4:
        raise ValueError(f"waypoints need a horizon of at least 4 steps, got {horizon}")
    return np.array([horizon // 4, horizon // 2, 3 * horizon // 4], dtype=np.int64)


def quarter_point_waypoints(observations: np.ndarray, window_steps: np.ndarray) -> np.ndarray:
    """(B, 3, Do) waypoint states of windows given as (B, H) step indices (e.g. `WindowDataset.steps`)."""
    window_steps = np.asarray(window_steps, dtype=np.int64)
    if window_steps.ndim != 2:
        raise ValueError(f"window_steps must be (B, H) step indices, got shape {window_steps.shape}")
    return np.asarray(observations)[window_steps[:, waypoint_offsets(window_steps.shape[1])]]


def window_step_index(
    dataset: OfflineDataset,
    horizon: int,
    offsets: Sequence[int] | np.ndarray,
    episodes: np.ndarray | None = None,
    pad_before: int = 0,
    pad_after: int = 0,
) -> np.ndarray:
    """(N, len(offsets)) global step indices of the given in-window offsets for every window.

    Windows are enumerated as `WindowDataset` does (episodes in the order given, then starts), and an
    index outside its episode is clipped to it (edge padding).
    """
    eps = np.arange(dataset.num_episodes) if episodes is None else np.asarray(episodes, dtype=np.int64)
    local_ep, start = window_starts(dataset.episode_lengths[eps], horizon, pad_before, pad_after)
    ep = eps[local_ep]
    lo = dataset.episode_starts[ep]
    hi = dataset.episode_ends[ep] - 1
    offsets = np.asarray(offsets, dtype=np.int64)
    return np.clip((lo + start)[:, None] + offsets, lo[:, None], hi[:, None])


def window_pairs(maze: Maze, observations: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Pair id 4 · region(first state) + region(last state) of windows given by first/last step indices."""
    obs = np.asarray(observations)
    return 4 * position_regions(maze, obs[first]) + position_regions(maze, obs[last])


def pair_counts(pairs: np.ndarray) -> dict[str, int]:
    """Count of each of the 16 ordered pairs, by name."""
    counts = np.bincount(np.asarray(pairs, dtype=np.int64).reshape(-1), minlength=16)
    return {name: int(c) for name, c in zip(PAIR_NAMES, counts, strict=True)}


def _maze(maze: Maze | str | Sequence[str]) -> Maze:
    return maze if isinstance(maze, Maze) else parse_maze(maze)


@dataclass(frozen=True)
class TrainingSplit:
    """Which windows of the training data the OOC split keeps.

    Attributes:
        pairs: (N,) pair id of every window, in `WindowDataset` order.
        keep: (N,) bool, the window's pair is not held out.
        held_out: the held-out pair ids.
        horizon: H.
    """

    pairs: np.ndarray
    keep: np.ndarray
    held_out: np.ndarray
    horizon: int

    @property
    def indices(self) -> np.ndarray:
        """Indices of the training windows (into the matching `WindowDataset`)."""
        return np.flatnonzero(self.keep)

    def counts(self) -> dict[str, Any]:
        """Windows per pair (all of them), training windows, and windows dropped as held out."""
        return {
            "horizon": self.horizon,
            "windows": int(self.pairs.size),
            "training_windows": int(self.keep.sum()),
            "held_out_windows": int((~self.keep).sum()),
            "held_out_pairs": [PAIR_NAMES[i] for i in self.held_out],
            "windows_per_pair": pair_counts(self.pairs),
        }


def training_split(
    dataset: OfflineDataset,
    maze: Maze | str | Sequence[str],
    horizon: int,
    episodes: np.ndarray | None = None,
    pad_before: int = 0,
    pad_after: int = 0,
    held_out: Sequence[tuple[str, str]] = HELD_OUT_PAIRS,
) -> TrainingSplit:
    """Classify every window of `dataset` by its (start region, goal region) pair and keep the non-held-out ones.

    Refuses a split in which some quadrant never occurs as a start or as a goal among the kept
    windows (the data is too short or does not cover the maze): such a split would test unseen
    elements, not unseen combinations.
    """
    m = _maze(maze)
    steps = window_step_index(dataset, horizon, [0, horizon - 1], episodes, pad_before, pad_after)
    if steps.shape[0] == 0:
        raise ValueError(f"the dataset has no window of {horizon} steps (longest episode: "
                         f"{int(dataset.episode_lengths.max())} steps)")
    pairs = window_pairs(m, dataset.observations, steps[:, 0], steps[:, 1])
    held = pair_ids(held_out)
    keep = ~np.isin(pairs, held)
    starts, goals = np.unique(pairs[keep] // 4), np.unique(pairs[keep] % 4)
    missing = [f"{REGIONS[k]} as a {role}" for role, seen in (("start", starts), ("goal", goals))
               for k in range(4) if k not in seen]
    if missing:
        raise ValueError(f"the training windows (H={horizon}) never have {', '.join(missing)}; the split needs every "
                         "region as a start and as a goal: generate a longer training run")
    return TrainingSplit(pairs=pairs, keep=keep, held_out=held, horizon=int(horizon))


# ------------------------------------------------------------------------------------------ test run
def default_test_seed(train_seed: int) -> int:
    """The test run's seed when none is given: the training seed + 1000."""
    return int(train_seed) + TEST_SEED_OFFSET


def generate_test_run(maze: str, steps: int, seed: int, train_seed: int | None = None) -> OfflineDataset:
    """Simulate a separate Maze2d run (the project's D4RL-recipe generator) for test tasks, as one episode.

    The whole run is one continuous trajectory of the point mass (goal switches do not interrupt it),
    so it is kept as a single episode. `train_seed`, when given, must differ from `seed`.
    Metadata records the seed, the steps and the simulation time.
    """
    from ractd.data.generate.maze2d import simulate_maze2d

    if train_seed is not None and int(train_seed) == int(seed):
        raise ValueError(f"the test run must use another seed than the training run (both {seed})")
    run = simulate_maze2d(maze, int(steps), seed=int(seed), progress=False)
    arrays = dict(run.arrays)
    arrays["timeouts"] = np.zeros(int(steps), dtype=bool)
    arrays["timeouts"][-1] = True
    meta = {"maze": maze, "seed": int(seed), "steps": int(steps), "simulation_seconds": run.seconds,
            "role": "ooc test run"}
    return OfflineDataset.from_arrays(arrays, metadata=meta, source=f"maze2d-{maze} test run (seed {seed})")


@dataclass(frozen=True)
class Maze2dTasks:
    """Planning tasks drawn from windows of the test run (n tasks, H steps, Do = 4 state dims).

    Attributes:
        split: 'ooc' (held-out pairs) or 'id' (training pairs).
        start: (n, Do) the window's first state.
        goal: (n, Do) the window's last state; the goal position is `goal[:, :2]`.
        waypoints: (n, 3, Do) the states at ⌊H/4⌋, ⌊H/2⌋, ⌊3H/4⌋.
        window: (n, H, Do) the true window's states.
        actions: (n, H, Da) the true window's actions.
        pairs: (n,) pair id 4 · start region + goal region.
        first_step: (n,) the window's first step in the test run.
    """

    split: str
    start: np.ndarray
    goal: np.ndarray
    waypoints: np.ndarray
    window: np.ndarray
    actions: np.ndarray
    pairs: np.ndarray
    first_step: np.ndarray

    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    @property
    def horizon(self) -> int:
        return int(self.window.shape[1])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"start": self.start, "goal": self.goal, "waypoints": self.waypoints, "window": self.window,
                "actions": self.actions, "pairs": self.pairs, "first_step": self.first_step}


@dataclass(frozen=True)
class OocTestTasks:
    """The OOC and ID task sets of one test run, and the counts behind them."""

    ooc: Maze2dTasks
    id: Maze2dTasks
    horizon: int
    task_seed: int
    candidate_first: np.ndarray  # (M,) first steps of the candidate windows (every ⌈H/4⌉ steps)
    candidate_pairs: np.ndarray  # (M,) their pair ids
    held_out: np.ndarray
    run_metadata: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        """Candidate windows per pair, how many are held out, and the tasks drawn per pair."""
        held = np.isin(self.candidate_pairs, self.held_out)
        return {
            "horizon": self.horizon,
            "candidate_spacing": candidate_spacing(self.horizon),
            "candidate_windows": int(self.candidate_pairs.size),
            "held_out_candidates": int(held.sum()),
            "training_pair_candidates": int((~held).sum()),
            "candidates_per_pair": pair_counts(self.candidate_pairs),
            "ooc_tasks_per_pair": {k: v for k, v in pair_counts(self.ooc.pairs).items() if v},
            "id_tasks_per_pair": {k: v for k, v in pair_counts(self.id.pairs).items() if v},
            "n_ooc_tasks": len(self.ooc),
            "n_id_tasks": len(self.id),
            "task_seed": self.task_seed,
            "test_run": dict(self.run_metadata),
        }


def candidate_spacing(horizon: int) -> int:
    """Candidate test windows start every ⌈H/4⌉ steps."""
    return max(1, math.ceil(horizon / 4))


def _tasks(split: str, ds: OfflineDataset, first: np.ndarray, pairs: np.ndarray, horizon: int) -> Maze2dTasks:
    steps = first[:, None] + np.arange(horizon, dtype=np.int64)
    window = ds.observations[steps]
    return Maze2dTasks(
        split=split,
        start=window[:, 0].copy(),
        goal=window[:, -1].copy(),
        waypoints=window[:, waypoint_offsets(horizon)].copy(),
        window=window,
        actions=ds.actions[steps],
        pairs=pairs.astype(np.int64),
        first_step=first.astype(np.int64),
    )


def make_test_tasks(
    test_run: OfflineDataset,
    maze: Maze | str | Sequence[str],
    horizon: int,
    n_tasks: int = DEFAULT_N_TASKS,
    seed: int = 0,
    held_out: Sequence[tuple[str, str]] = HELD_OUT_PAIRS,
) -> OocTestTasks:
    """Draw `n_tasks` OOC and `n_tasks` ID tasks from the windows of a separately generated test run.

    Candidates start every ⌈H/4⌉ steps inside each episode of `test_run`; each draw is without
    replacement with `np.random.default_rng(seed)`, tasks sorted by their first step. Raises if the
    run holds fewer candidates of either kind than requested (generate a longer test run: the split
    is never relaxed).
    """
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
    m = _maze(maze)
    gap = candidate_spacing(horizon)
    firsts = []
    for lo, length in zip(test_run.episode_starts, test_run.episode_lengths, strict=True):
        if length >= horizon:
            firsts.append(lo + np.arange(0, length - horizon + 1, gap, dtype=np.int64))
    first = np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.int64)
    pairs = window_pairs(m, test_run.observations, first, first + horizon - 1)
    held = pair_ids(held_out)
    is_ooc = np.isin(pairs, held)
    rng = np.random.default_rng(seed)
    drawn = {}
    for split, mask in (("ooc", is_ooc), ("id", ~is_ooc)):
        pool = np.flatnonzero(mask)
        if pool.size < n_tasks:
            kind = "held-out (OOC)" if split == "ooc" else "training-pair (ID)"
            raise ValueError(
                f"the test run has only {pool.size} {kind} candidate windows of H={horizon} steps "
                f"(starts every {gap} steps, {test_run.num_steps} steps in all), fewer than the {n_tasks} tasks "
                "requested: generate a longer test run (more test-run steps) or ask for fewer tasks"
            )
        pick = np.sort(rng.choice(pool, size=n_tasks, replace=False))
        drawn[split] = _tasks(split, test_run, first[pick], pairs[pick], horizon)
    return OocTestTasks(ooc=drawn["ooc"], id=drawn["id"], horizon=int(horizon), task_seed=int(seed),
                        candidate_first=first, candidate_pairs=pairs, held_out=held,
                        run_metadata=dict(test_run.metadata))


def build_test_tasks(
    maze: str,
    horizon: int,
    test_steps: int,
    train_seed: int,
    test_seed: int | None = None,
    n_tasks: int = DEFAULT_N_TASKS,
    task_seed: int = 0,
    held_out: Sequence[tuple[str, str]] = HELD_OUT_PAIRS,
) -> tuple[OocTestTasks, OfflineDataset]:
    """Generate the test run (seed `test_seed`, default training seed + 1000) and draw its tasks.

    Returns the tasks and the test run; `tasks.counts()["test_run"]` records the run's seed, size and
    simulation time, and `["generation_seconds"]` the whole call.
    """
    t0 = time.perf_counter()
    seed = default_test_seed(train_seed) if test_seed is None else int(test_seed)
    run = generate_test_run(maze, test_steps, seed, train_seed=train_seed)
    tasks = make_test_tasks(run, maze, horizon, n_tasks=n_tasks, seed=task_seed, held_out=held_out)
    tasks.run_metadata["generation_seconds"] = time.perf_counter() - t0
    return tasks, run


# ------------------------------------------------------------------------------- random waypoints
def random_waypoints(
    observations: np.ndarray,
    candidate_first: np.ndarray,
    task_first: np.ndarray,
    horizon: int,
    seed: int = 0,
) -> np.ndarray:
    """The random-waypoint control: (n, 3, Do) waypoints for n tasks, each from an unrelated window.

    Waypoint k of task i is the k-th quarter-point state of a window drawn uniformly (with
    `np.random.default_rng(seed)`, independently for each i and k) among the candidate windows that
    do not overlap task i's own window (first steps at least H apart).
    """
    candidate_first = np.asarray(candidate_first, dtype=np.int64)
    task_first = np.asarray(task_first, dtype=np.int64)
    rng = np.random.default_rng(seed)
    n = task_first.size
    pick = rng.integers(candidate_first.size, size=(n, 3))
    overlap = np.abs(candidate_first[pick] - task_first[:, None]) < horizon
    for _ in range(1000):  # redraw overlapping choices; a handful of rounds in practice
        if not overlap.any():
            break
        pick[overlap] = rng.integers(candidate_first.size, size=int(overlap.sum()))
        overlap = np.abs(candidate_first[pick] - task_first[:, None]) < horizon
    if overlap.any():
        raise ValueError("random_waypoints: too few candidate windows that do not overlap the tasks' own windows")
    steps = candidate_first[pick] + waypoint_offsets(horizon)[None, :]
    return np.asarray(observations)[steps]


# ----------------------------------------------------------------------------------- save / load
def save_tasks(tasks: OocTestTasks, folder: str | Path) -> None:
    """Write `tasks.safetensors` (every array) and `tasks.json` (counts, seeds) atomically into `folder`."""
    from safetensors.numpy import save_file

    from ractd.io import atomic_path, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {f"{s.split}/{k}": np.ascontiguousarray(v) for s in (tasks.ooc, tasks.id) for k, v in s.arrays().items()}
    arrays |= {"candidate_first": tasks.candidate_first, "candidate_pairs": tasks.candidate_pairs,
               "held_out": tasks.held_out}
    with atomic_path(folder / "tasks.safetensors") as tmp:
        save_file(arrays, str(tmp))
    write_json(folder / "tasks.json", tasks.counts())


def load_tasks(folder: str | Path) -> OocTestTasks:
    """Read what `save_tasks` wrote."""
    from safetensors.numpy import load_file

    from ractd.io import read_json

    folder = Path(folder)
    if not (folder / "tasks.safetensors").is_file():
        raise FileNotFoundError(f"{folder}: no tasks.safetensors (write one with save_tasks)")
    a = load_file(str(folder / "tasks.safetensors"))
    meta = read_json(folder / "tasks.json")
    keys = ("start", "goal", "waypoints", "window", "actions", "pairs", "first_step")
    sets = {s: Maze2dTasks(s, *(a[f"{s}/{k}"] for k in keys)) for s in ("ooc", "id")}
    return OocTestTasks(ooc=sets["ooc"], id=sets["id"], horizon=int(meta["horizon"]), task_seed=int(meta["task_seed"]),
                        candidate_first=a["candidate_first"], candidate_pairs=a["candidate_pairs"],
                        held_out=a["held_out"], run_metadata=dict(meta.get("test_run", {})))
