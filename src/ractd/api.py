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
