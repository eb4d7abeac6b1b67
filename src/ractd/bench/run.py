"""The benchmark's entry points: settings → cases → timed blocks → result dict (and JSON), for trained runs
(`benchmark_latency`, `ractd bench`) or untrained networks of a config's sizes (`benchmark_networks`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifact import Artifact
from ..config import RunConfig
from ..nn import count_parameters
from .cases import build_cases, run_artifacts, untrained_artifacts
from .report import GOAL_OVERHEAD, GOAL_SPEEDUP, case_rows, latency_table, summarize, summary_lines
from .timing import environment_info, load_average, resolve_clock, run_cases

FORMAT = "ractd.bench/2"


@dataclass(frozen=True)
class BenchSettings:
    """Every knob of a latency benchmark (see `benchmark_latency`)."""

    batch_sizes: tuple[int, ...] = (1, 100)
    student_nfe: tuple[int, ...] = (1, 2, 3, 4)
    heun_levels: int | None = None  # None: the teacher's own (80 → 158 NFE)
    ddim_steps: int = 10
    repeats: int = 100  # at most this many rounds (timed blocks per case)
    min_repeats: int = 3  # at least this many (unless extrapolated)
    block_s: float = 0.05  # shortest timed block; a group's blocks last as long as its slowest call
    budget_s: float = 10.0  # seconds of timed calls per case (within min_repeats..repeats blocks)
    max_case_s: float = 60.0  # extrapolate a planner case whose min_repeats calls would take longer
    device: str = "cpu"
    threads: int | None = 1  # torch threads while timing (None: the current count)
    clock: str = "auto"  # auto | wall | cpu: see timing.resolve_clock
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_sizes", tuple(int(b) for b in self.batch_sizes))
        object.__setattr__(self, "student_nfe", tuple(int(k) for k in self.student_nfe))
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"batch_sizes must be >= 1, got {list(self.batch_sizes)}")
        if self.student_nfe and min(self.student_nfe) < 1:
            raise ValueError(f"student_nfe must be >= 1, got {list(self.student_nfe)}")
        if self.heun_levels is not None and self.heun_levels < 2:
            raise ValueError(f"heun_levels must be >= 2, got {self.heun_levels}")
        if min(self.repeats, self.min_repeats, self.ddim_steps) < 1:
            raise ValueError("repeats, min_repeats and ddim_steps must be >= 1")
        if min(self.block_s, self.budget_s, self.max_case_s) <= 0:
            raise ValueError("block_s, budget_s and max_case_s must be > 0")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        resolve_clock(self.clock, self.device, self.threads)


def benchmark_artifacts(models: Mapping[str, Mapping[str, Artifact]], settings: BenchSettings = BenchSettings(),
                        progress: bool = True) -> dict[str, Any]:
    """Time the cases of several models ({label: {student|teacher|ddim: Artifact}}); see `benchmark_latency`."""
    if not models:
        raise ValueError("nothing to benchmark: no model given")
    s = settings
    clock = resolve_clock(s.clock, s.device, s.threads)
    groups = [build_cases(label, arts, b, s.student_nfe, s.heun_levels, s.ddim_steps, s.device, s.seed)
              for label, arts in models.items() for b in s.batch_sizes]
    env = environment_info(s.device, s.threads)
    run_cases(groups, clock, s.threads, s.repeats, s.min_repeats, s.block_s, s.budget_s, s.max_case_s, progress)
    if (load := load_average()) is not None:
        env["load_average_1min_end"] = load
    rows = case_rows(groups, clock)
    params = {label: {net: count_parameters(art.net) for net, art in arts.items()}
              for label, arts in models.items()}
    return {"format": FORMAT, "environment": env, "parameters": params,
            "settings": {**dataclasses.asdict(s), "clock": clock},
            "goals": {"student_over_teacher_min": GOAL_SPEEDUP, "planner_over_forward_max": GOAL_OVERHEAD},
            "rows": rows, "summary": summarize(rows)}


def benchmark_latency(run_root: str | Path, batch_sizes: Sequence[int] = (1, 100),
                      student_nfe: Sequence[int] = (1, 2, 3, 4), repeats: int = 100, device: str = "cpu",
                      progress: bool = True, out: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Per-action latency of the trained planners under `run_root` (student/, teacher/, optional ddim/).

    Cases per batch size: bare forward of each network; student NFE in `student_nfe` (1 = one step, k = chaining);
    teacher Heun on `heun_levels` levels (default: the teacher's, 80 → 158 NFE); DDIM with `ddim_steps` if a
    DDPM teacher exists in `run_root/ddim` (or teacher/). The cases of one batch size go round-robin, one timed
    block each per round, every block as long as the slowest call (at least `block_s`), for `budget_s` seconds
    per case (at least `min_repeats`, at most `repeats` rounds); a planner case that would need more than
    `max_case_s` for `min_repeats` calls is extrapolated from the bare forward (row `measured: false`).
    `options` are the other `BenchSettings` fields (heun_levels, ddim_steps, min_repeats, block_s, budget_s,
    max_case_s, threads=1, clock='auto', seed). Returns the result dict; writes it as JSON atomically to `out`.
    """
    from ..io import write_json

    settings = BenchSettings(tuple(batch_sizes), tuple(student_nfe), repeats=repeats, device=device, **options)
    arts = run_artifacts(run_root)
    result = benchmark_artifacts({Path(run_root).name: arts}, settings, progress)
    result["source"] = {"run_root": str(run_root), **{k: str(a.path) for k, a in arts.items()}}
    if out is not None:
        write_json(out, result)
    return result


def benchmark_networks(configs: Mapping[str, RunConfig], batch_sizes: Sequence[int] = (1, 100),
                       student_nfe: Sequence[int] = (1, 2, 3, 4), repeats: int = 100, device: str = "cpu",
                       progress: bool = True, out: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """`benchmark_latency` for untrained networks built from configs ({label: RunConfig}), e.g. paper vs cpu size.

    No run folder needed: weights and normalizers are random (latency does not depend on them); dimensions are
    the task's. Models are timed one after another; within a model and batch size all cases are interleaved.
    `options`: the other `BenchSettings` fields.
    """
    from ..io import write_json

    settings = BenchSettings(tuple(batch_sizes), tuple(student_nfe), repeats=repeats, device=device, **options)
    models = {label: untrained_artifacts(cfg, seed=settings.seed) for label, cfg in configs.items()}
    result = benchmark_artifacts(models, settings, progress)
    result["source"] = {label: f"untrained {cfg.task} ({cfg.size})" for label, cfg in configs.items()}
    if out is not None:
        write_json(out, result)
    return result


def bench_command(run_root: str | Path, out: str | Path | None = None, batch_sizes: Sequence[int] = (1, 100),
                  device: str = "cpu", threads: int | None = 1, heun_levels: int | None = None,
                  repeats: int = 100, progress: bool = True, console: Any = None) -> dict[str, Any]:
    """`ractd bench RUN_ROOT`: benchmark, write JSON (default RUN_ROOT/bench.json) and its bar chart next to it (the
    same name, .png), print the table, the summary lines and both paths to `console` (a rich Console; default:
    stdout, at least 130 columns wide), return the result."""
    from rich.console import Console

    from ..evaluate.figures import plot_latency

    out = Path(out) if out is not None else Path(run_root) / "bench.json"
    result = benchmark_latency(run_root, batch_sizes, repeats=repeats, device=device, progress=progress, out=out,
                               heun_levels=heun_levels, threads=threads)
    console = console or Console(width=max(Console().width, 130))
    console.print(latency_table(result))
    chart = plot_latency(result, out.with_suffix(".png"), source=str(out))
    for line in [*summary_lines(result), f"wrote {out}", f"wrote {chart} (ms per action per case, log scale)"]:
        console.print(line)
    return result
