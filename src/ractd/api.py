"""The training API: a task's config, then its stages trained one by one into a run root, then a planner.

    import ractd

    cfg = ractd.task_config("hopper-medium-replay", size="cpu", overrides=["seed=1"])
    pipeline = ractd.Pipeline(cfg, runs="runs")         # stages go to runs/hopper-medium-replay/<stage>
    pipeline.fit("teacher"); pipeline.fit("reward"); pipeline.fit("student")
    planner = pipeline.planner("student")               # ractd.planning.Planner, one network evaluation

`ractd train STAGE` is this same code (`plan_stage`): the same config layers, the same settings taken from the
teacher run, the same run-folder checks and the same progress bars.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import RunConfig
    from .planning import Planner
    from .stages import Inheritance, StageRun

@dataclass(frozen=True)
class PipelineConfig:
    """What the stages of one task are trained with, kept as layers: the task's preset at `size`, an optional JSON
    `config_file` (a RunConfig, or a run's config.json), then `overrides` ("key=value", the last one wins).

    Kept as layers rather than resolved once, so that each stage can put what it takes from the teacher run
    (`ractd.stages.inherited_settings`) under the user's own settings, and so notice a contradiction.
    """

    task: str
    size: str
    overrides: tuple[str, ...] = ()
    config_file: str | None = None

    def resolve(self, inherited: dict[str, Any] | None = None) -> RunConfig:
        """The RunConfig of these layers, with `inherited` (a partial RunConfig dict) under the file and overrides."""
        from .presets import resolve_config

        return resolve_config(self.task, self.size, list(self.overrides), self.config_file, inherited=inherited)

    def for_stage(self, stage: str, task_root: str | Path) -> tuple[RunConfig, Inheritance | None, str | None]:
        """The config `stage` trains with in `task_root` (`runs/TASK`): these layers plus what the stage takes
        from the teacher run there, if there is one; a contradicting data setting is refused. Also returns the
        inheritance and the one line that says what was taken (None when nothing was)."""
        from .stages import inherited_settings

        own = self.resolve()
        inheritance = inherited_settings(stage, task_root, own.student.teacher_run)
        if inheritance is None:
            return own, None, None
        cfg = self.resolve(inheritance.layer)
        inheritance.check(cfg)
        return cfg, inheritance, inheritance.describe(own, cfg)

    def with_overrides(self, *overrides: str) -> PipelineConfig:
        """These layers with more overrides on top."""
        return dataclasses.replace(self, overrides=(*self.overrides, *overrides))

    def to_dict(self) -> dict[str, Any]:
        """The resolved RunConfig as a dict (what `ractd config` prints)."""
        return self.resolve().to_dict()


def task_config(task: str, size: str | None = None, *, dataset: str | None = None, seed: int | None = None,
                device: str | None = None, overrides: Sequence[str] = (),
                config_file: str | os.PathLike[str] | None = None) -> PipelineConfig:
    """The config of `task`, as `ractd train` builds it from its options: `--size` (default: `paper` when CUDA is
    available, else `cpu`), `--set` (`overrides`), `--config` (`config_file`), `--dataset` (a generated name, a
    D4RL hdf5 path or a Minari id), `--seed` and `--device`. Checked at once: a typo fails here, naming the field."""
    from .presets import default_size

    if isinstance(overrides, str):
        raise TypeError(f"overrides: expected a list of 'key=value' strings, got the string {overrides!r}")
    layers = list(overrides)
    if device:
        layers.append(f"device={device}")
    if seed is not None:
        layers.append(f"seed={seed}")
    if dataset:
        layers.append(f"data.dataset={json.dumps(dataset)}")  # any path, quoted as JSON
    cfg = PipelineConfig(task, size or default_size(), tuple(layers), str(config_file) if config_file else None)
    cfg.resolve()  # every layer is checked now, not when the first stage starts
    return cfg


def plan_stage(cfg: PipelineConfig, stage: str, runs: str | Path, name: str | None = None, resume: bool = True,
               say: Callable[[str], None] | None = print) -> StageRun:
    """`stage` of `cfg.task`, checked and ready to train into `runs/TASK/<name or stage>`: `ractd train STAGE`
    up to the first byte written; `.train()` trains it.

    The stage takes the teacher run's settings (`PipelineConfig.for_stage`) and says so in one line; every check
    runs before anything is written (`ractd.stages.prepare_stage`); a finished run says so and `.train()` leaves it
    as it is; an unfinished one resumes. `say` gets these lines (None: silent).
    """
    from .stages import STAGES, prepare_stage

    stage = stage.replace("-", "_")
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    task_root = Path(runs) / cfg.task
    run_cfg, _, note = cfg.for_stage(stage, task_root)
    if note and say:
        say(note)
    run = prepare_stage(run_cfg, stage, task_root, name=name, resume=resume)  # every check; writes nothing
    if run.finished and say:
        say(run.folder.describe())
    return run


class Pipeline:
    """The stages of one task in one run root, trained in order: teacher, reward (and for Maze2d inverse
    dynamics), then the student that distils the teacher (docs/algorithm.md §4).

    `fit(stage)` is `ractd train STAGE --task TASK --runs RUNS`: each stage takes the teacher run's dataset and
    data settings (the student also its network and EDM constants), a finished stage is not trained again, an
    interrupted one resumes. `verbose=False` silences the one-line notes and the progress bars.
    """

    def __init__(self, cfg: PipelineConfig | str, runs: str | Path = "runs", verbose: bool = True) -> None:
        self.config = task_config(cfg) if isinstance(cfg, str) else cfg
        if not isinstance(self.config, PipelineConfig):
            raise TypeError(f"Pipeline: expected ractd.task_config(...) or a task name, got {type(cfg).__name__}")
        self.runs = Path(runs)
        self.verbose = verbose

    @property
    def folder(self) -> Path:
        """Where the stages go: RUNS/TASK."""
        return self.runs / self.config.task

    def fit(self, stage: str, name: str | None = None, overrides: Sequence[str] = (), resume: bool = True) -> Path:
        """Train `stage` (teacher, reward, student, inverse_dynamics) into `folder/<name or stage>` and return that
        folder. `overrides` apply to this stage only (e.g. a CTD student: `fit("student", name="ctd",
        overrides=["student.ctm.reward_weight=0"])`); `resume=False` starts an existing run over."""
        cfg = self.config.with_overrides(*overrides) if overrides else self.config
        run = plan_stage(cfg, stage, self.runs, name=name, resume=resume, say=print if self.verbose else None)
        return run.train(progress=self.verbose)

    def planner(self, name: str = "student", sampler: str = "auto", device: str = "cpu", seed: int = 0,
                **kwargs: Any) -> Planner:
        """The trained run `folder/name` as a `ractd.planning.Planner` (`ractd.planning.load_planner`: `sampler`
        "auto" is the student's one step or the teacher's Heun solve)."""
        from .planning import load_planner

        return load_planner(self.folder / name, sampler, device, seed, **kwargs)

    def __repr__(self) -> str:
        return f"Pipeline({self.config!r}, runs={str(self.runs)!r})"


# ------------------------------------------------------------------------------ out-of-combination evaluation
OOC_SPLITS = ("id", "ooc")
WAYPOINT_MODES = ("true", "random")


def ooc_task_folder(run: str | Path) -> Path:
    """Where the test tasks of a plan-diffusion run are kept: next to the run, `RUNS/TASK/ooc-tasks/...`, one
    folder per (maze, horizon, test-run steps, test seed, tasks per split, draw seed), so every model of the task
    is scored on the same tasks."""
    cfg = load_artifact_config(run)
    o = cfg.ooc
    name = (f"{o.maze}-h{cfg.data.horizon}-test{o.test_run_steps}-seed{cfg.seed + o.test_seed_offset}"
            f"-n{o.n_tasks}-draw{o.task_seed}")
    return Path(run).parent / "ooc-tasks" / name


def load_artifact_config(run: str | Path) -> RunConfig:
    """The RunConfig a run folder was trained with (its config.json), without building its network."""
    from .config import RunConfig, upgrade_config_dict
    from .io import read_json
    from .schema import from_dict

    path = Path(run) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run}: not a ractd run folder (no config.json)")
    return from_dict(RunConfig, upgrade_config_dict(read_json(path)["config"]))


def ooc_test_tasks(run: str | Path, say: Callable[[str], None] | None = print):
    """The run's test tasks and the test run's states: read from `ooc_task_folder(run)`, or generated there first
    (a separate simulated run with the seed `seed + ooc.test_seed_offset`, `ooc.n_tasks` tasks per split).
    Returns (tasks, test-run observations)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    from .data.ooc_maze2d import build_test_tasks, load_tasks, save_tasks
    from .io import atomic_path

    cfg = load_artifact_config(run)
    if cfg.ooc.split == "none":
        raise ValueError(f"{run}: trained without an out-of-combination split (ooc.split = 'none'); the OOC "
                         "evaluation needs a run of an ooc preset, e.g. --task ooc-maze2d-medium")
    folder = ooc_task_folder(run)
    states = folder / "test_run.safetensors"
    if not (folder / "tasks.safetensors").is_file() or not states.is_file():
        o = cfg.ooc
        if say:
            say(f"simulating the test run ({o.test_run_steps} steps, seed {cfg.seed + o.test_seed_offset}) and "
                f"drawing {o.n_tasks} ID and {o.n_tasks} OOC tasks into {folder}")
        tasks, test_run = build_test_tasks(o.maze, cfg.data.horizon, o.test_run_steps, cfg.seed,
                                           cfg.seed + o.test_seed_offset, o.n_tasks, o.task_seed,
                                           [tuple(p) for p in o.holdout])
        save_tasks(tasks, folder)
        with atomic_path(states) as tmp:
            save_file({"observations": np.ascontiguousarray(test_run.observations)}, str(tmp))
    return load_tasks(folder), load_file(str(states))["observations"]


def evaluate_ooc(run: str | Path, splits: Sequence[str] = OOC_SPLITS, guidance: float | None = None,
                 waypoints: str = "true", seed: int = 0, device: str = "cpu", weights: str = "model",
                 closed_loop: bool = True, n_tasks: int | None = None, out: str | Path | None = None,
                 plot: str | Path | bool | None = None, overwrite: bool = False,
                 say: Callable[[str], None] | None = print) -> dict[str, Any]:
    """`ractd eval RUN --split id|ooc`: one plan per test task of each split from the plan-diffusion run `run`,
    scored by the Maze2d plan metrics (and closed-loop success with the tracking controller), with a breakdown per
    region pair; written to `out` (JSON) and, with `plot` (a PNG path, or True: next to the JSON), 8 plans per split
    drawn on the maze.

    `guidance` overrides the run's λ; `waypoints="random"` gives the planner waypoints of unrelated windows (the
    metrics still count hits of the task's own); `n_tasks` evaluates only the first tasks of each split.
    """
    import time

    import numpy as np

    from .data.ooc_maze2d import random_waypoints
    from .evaluate import check_result_path
    from .evaluate.ooc_maze2d import evaluate_task_set, plot_plans_on_maze
    from .io import write_json
    from .planning import tracking_action
    from .planning.plan_diffusion import load_plan_planner

    bad = [s for s in splits if s not in OOC_SPLITS]
    if bad or not splits:
        raise ValueError(f"split must be one of {OOC_SPLITS} (or both), got {list(splits)}")
    if waypoints not in WAYPOINT_MODES:
        raise ValueError(f"waypoints must be one of {WAYPOINT_MODES}, got {waypoints!r}")
    if n_tasks is not None and n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
    run = Path(run)
    planner = load_plan_planner(run, guidance, device, seed, weights)
    cfg = planner.cfg
    lam = f"{planner.guidance:g}" if planner.conditioned else "none"
    out = Path(out) if out else run / (f"ooc-eval-{weights}-{'-'.join(splits)}-{waypoints}-g{lam}"
                                       f"-n{n_tasks or cfg.ooc.n_tasks}-seed{seed}.json")
    check_result_path(out, overwrite)
    tasks, test_states = ooc_test_tasks(run, say)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "run": str(run), "weights": weights, "planner": planner.describe(), "conditioning": cfg.conditioning.kind,
        "guidance": planner.guidance if planner.conditioned else None, "waypoints": waypoints, "seed": seed,
        "maze": cfg.ooc.maze, "horizon": cfg.data.horizon, "network_calls_per_plan": planner.network_calls_per_plan,
        "closed_loop_controller": "tracking" if closed_loop else None, "tasks": str(ooc_task_folder(run)),
        "task_counts": json.loads(json.dumps(tasks.counts(), default=float)), "splits": {},
    }
    rows = {}

    def plan(start: np.ndarray, goal: np.ndarray, wps: np.ndarray) -> np.ndarray:
        return planner.plan(start, goal, wps).states

    for split in splits:
        task_set = getattr(tasks, split)
        if n_tasks is not None:
            task_set = _first_tasks(task_set, n_tasks)
        given = None
        if waypoints == "random":
            given = random_waypoints(test_states, tasks.candidate_first, task_set.first_step, cfg.data.horizon,
                                     seed=seed + (0 if split == "id" else 1))
        res, plans = evaluate_task_set(cfg.ooc.maze, plan, task_set, given, tracking_action if closed_loop else None)
        result["splits"][split] = res
        rows[f"{split.upper()} tasks"] = (plans, task_set, np.asarray(res["per_plan"]["plan_success"]), given)
        if say:
            s = res["summary"]
            say(f"{split}: plan success {s['plan_success']:.3f} "
                f"[{s['plan_success_95ci'][0]:.3f}, {s['plan_success_95ci'][1]:.3f}], waypoint hits "
                f"{s['mean_waypoint_hits']:.2f}/3, all three {s['all_waypoints']:.3f}"
                + (f", closed loop {s['closed_loop_success']:.3f}" if closed_loop else "") + f" ({s['n']} tasks)")
    result["seconds"] = time.perf_counter() - started
    write_json(out, result)
    result["path"] = str(out)
    if plot is True:
        plot = out.with_suffix(".png")
    if plot:
        title = f"{run.name}: {planner.describe()}, waypoints {waypoints}"
        result["plot"] = str(plot_plans_on_maze(cfg.ooc.maze, rows, plot, title=title))
    return result


def _first_tasks(tasks: Any, n: int) -> Any:
    """The first `n` tasks of a task set."""
    arrays = {k: v[:n] for k, v in tasks.arrays().items()}
    return dataclasses.replace(tasks, **arrays)


def evaluate_roundabout(run: str | Path, traffics: Sequence[str] | None = None, episodes: int = 100,
                        seeds: Sequence[int] = (0, 1, 2), guidance: float | None = None, kinds: str = "true",
                        device: str = "cpu", weights: str = "model", workers: int = 1, batch: int = 100,
                        out: str | Path | None = None, overwrite: bool = False,
                        say: Callable[[str], None] | None = print) -> dict[str, Any]:
    """`ractd eval RUN` of a roundabout plan-diffusion run: the run as a driver (`DiffusionDriver`, replanning every
    step) over the test `traffics` (default: mixed and the bicycle-heavy test-2) × evaluation `seeds`, `episodes`
    each; crashes per 100 episodes, success and return, mean ± SE over the seeds; written to `out` (JSON).

    `guidance` overrides the run's λ; `kinds="random"` conditions on random car/bicycle kinds (the control). Each of
    `workers` processes steps `batch` episodes together, one batched planner call per step; each episode draws its
    noise from its own generator, so the results do not depend on `workers` or `batch` (up to float rounding of
    batched network calls)."""
    import time

    from .evaluate import check_result_path
    from .evaluate.ooc_roundabout import DEFAULT_TRAFFICS, evaluate_driver
    from .io import write_json
    from .planning.driving import load_driver

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    run = Path(run)
    driver = load_driver(run, guidance, kinds, device, weights)
    traffics = tuple(traffics or DEFAULT_TRAFFICS)
    lam = f"{driver.guidance:g}" if driver.conditioned else "none"
    out = Path(out) if out else run / (f"roundabout-eval-{weights}-{kinds}-g{lam}-{'-'.join(traffics)}-n{episodes}"
                                       f"-seeds{'-'.join(str(s) for s in seeds)}.json")
    check_result_path(out, overwrite)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "run": str(run), "weights": weights, "planner": driver.describe(), "conditioning": driver.cfg.conditioning.kind,
        "guidance": driver.guidance if driver.conditioned else None, "kinds": kinds, "episodes": episodes,
        "seeds": list(seeds), "network_calls_per_action": driver.network_calls_per_action, "workers": workers,
        "batch": batch, "traffic": evaluate_driver(driver, traffics, episodes, seeds, workers, batch, say)}
    result["seconds"] = time.perf_counter() - started
    write_json(out, result)
    result["path"] = str(out)
    return result
