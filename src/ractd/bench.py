"""Per-action planning latency: student NFE 1–4, teacher Heun, DDIM, and the bare network forward (spec §7).

Method (the reference times one call with neither warm-up nor synchronization, spec §7, §8 item 21):
- warm-up calls are excluded; the device is synchronized before and after every timed call (CUDA);
- every case is timed many times, round-robin with the other cases of the same model and batch size, so a load
  change on a shared machine hits all of them alike; the median and the interquartile range are reported;
- a case whose cost would exceed `max_case_s` (e.g. the paper-size teacher's 158 evaluations at batch 100 on a CPU)
  is not run but extrapolated as NFE × the measured bare forward and marked so: this ignores the solver's own
  arithmetic, so it under-states the teacher's time and the student's speedup over it.

A planner call is the whole `Planner.act_batch` path (or `Planner.plan` for state planners): observations in
environment units → normalization → initial noise → NFE network evaluations → clamp → unnormalization → numpy.
The bare forward is one call of the network on ready tensors, so `call / (NFE × forward)` is the planner's overhead.
ms/action is ms/call divided by the batch size (for a Maze2d state planner: per plan).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .artifact import Artifact, ArtifactError, build_network, load_artifact
from .config import RunConfig
from .planning import Planner

GOAL_SPEEDUP = 150.0  # student (NFE 1) vs teacher (Heun, 158 NFE) per action (issue 5)
GOAL_OVERHEAD = 1.10  # one-step planner call vs one bare forward of its network (issue 5)
FORWARD = "forward"


@dataclass
class Case:
    """One timed thing: a planner call with a sampler, or a bare forward of one network, at one batch size."""

    model: str
    sampler: str  # "forward" | "one_step" | "multistep:K" | "heun:N" | "ddim:K"
    network: str  # student | teacher | ddim
    nfe: int
    batch: int
    call: Callable[[], Any]
    target: int = 0  # timed calls wanted
    estimate_s: float = 0.0
    extrapolated: bool = False
    times: list[float] = field(default_factory=list)  # wall-clock seconds per call
    cpu_times: list[float] = field(default_factory=list)  # process CPU seconds per call


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    """Temporarily `torch.set_num_threads(threads)` (None: leave as is)."""
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a timer measures the compute and not the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_call(call: Callable[[], Any], device: torch.device) -> tuple[float, float]:
    """(wall-clock, process CPU) seconds of one synchronized call.

    On a loaded machine the wall time includes waiting for a core; the CPU time (all threads of this process)
    does not, so it shows the compute cost alone. They agree on an idle machine with one thread.
    """
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def forward_call(planner: Planner, batch: int, rng: np.random.Generator) -> Callable[[], Any]:
    """One bare network forward on ready tensors (input, time input(s), condition), under no_grad."""
    from .export import random_observations

    obs = random_observations(planner.art, batch, rng)
    cond = planner.condition(obs["observations"], obs.get("goal"))
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    x = torch.randn(batch, planner.horizon, planner.x_dim, generator=g).to(planner.device)
    tau = torch.full((batch,), 3.0, device=planner.device)  # any time value costs the same
    net = planner.net
    times = (tau, tau) if getattr(net, "n_time_inputs", 1) == 2 else (tau,)

    def call() -> torch.Tensor:
        with torch.no_grad():
            return net(x, *times, cond=cond)

    return call


def planner_call(planner: Planner, batch: int, rng: np.random.Generator) -> Callable[[], Any]:
    """One planner call in environment units: `act_batch(obs)` (action planners) or `plan(obs, goal)` (state)."""
    from .export import random_observations

    obs = random_observations(planner.art, batch, rng)
    if planner.x_key == "actions":
        return lambda: planner.act_batch(obs["observations"])
    return lambda: planner.plan(obs["observations"], obs.get("goal"))


def build_cases(model: str, arts: Mapping[str, Artifact], batch: int, student_nfe: Sequence[int],
                heun_levels: int | None, ddim_steps: int, device: str, seed: int) -> list[Case]:
    """The forward and planner cases of one model at one batch size; `arts` keys: student, teacher, ddim."""
    rng = np.random.default_rng(seed)
    cases = []
    for network, art in arts.items():
        if network == "student":
            samplers = ["one_step" if k == 1 else f"multistep:{k}" for k in student_nfe]
        elif network == "teacher":
            samplers = [f"heun:{heun_levels or art.config.teacher.edm.n_levels}"]
        else:
            samplers = [f"ddim:{ddim_steps}"]
        base = Planner(art, "auto", device, seed)
        cases.append(Case(model, FORWARD, network, 1, batch, forward_call(base, batch, rng)))
        for sampler in samplers:
            p = Planner(art, sampler, device, seed)
            cases.append(Case(model, sampler, network, p.nfe, batch, planner_call(p, batch, rng)))
    return cases


def _rounds(cases: list[Case], device: torch.device, advance: Callable[[float], None]) -> None:
    """Round-robin: one call of every unfinished case per round until each has its `target` timings."""
    active = [c for c in cases if len(c.times) < c.target]
    while active:
        for c in active:
            wall, cpu = time_call(c.call, device)
            c.times.append(wall)
            c.cpu_times.append(cpu)
            advance(wall)
        active = [c for c in active if len(c.times) < c.target]


def run_cases(groups: list[list[Case]], device: torch.device, repeats: int, warmup: int, min_repeats: int,
              budget_s: float, max_case_s: float, progress: bool) -> None:
    """Estimate, plan and time every group (one model × batch size); fills each case's `times`."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        forwards = [c for group in groups for c in group if c.sampler == FORWARD]
        task = bar.add_task("warming up networks", total=len(forwards))
        for c in forwards:  # warm up and estimate each bare forward: 1 call, then more if it is fast
            first, _ = time_call(c.call, device)
            for _ in range(min(warmup, int(1.0 / max(first, 1e-9)))):
                time_call(c.call, device)
            c.estimate_s = max(time_call(c.call, device)[0], 1e-9)
            bar.advance(task)
        least = min(min_repeats, repeats)
        for group in groups:
            fwd = {c.network: c.estimate_s for c in group if c.sampler == FORWARD}
            for c in group:
                if c.sampler != FORWARD:
                    c.estimate_s = c.nfe * fwd[c.network]
                    c.extrapolated = c.estimate_s * least > max_case_s
                c.target = 0 if c.extrapolated else int(np.clip(budget_s / c.estimate_s, least, repeats))
        total = sum(c.target * c.estimate_s for group in groups for c in group)
        bar.update(task, description="timing (seconds of calls)", completed=0, total=total)
        for group in groups:
            for c in group:  # planner warm-up (forwards are warm), only where it is cheap
                if c.sampler != FORWARD and c.target:
                    for _ in range(min(warmup, int(2.0 / c.estimate_s))):
                        time_call(c.call, device)
            _rounds(group, device, lambda seconds: bar.advance(task, seconds))


CLOCKS = ("wall", "cpu")


def resolve_clock(clock: str, device: str, threads: int | None) -> str:
    """'auto' → 'cpu' (process CPU time) for one CPU thread, else 'wall'; the clock the ratios and goals use.

    With one thread on a CPU, CPU time is the compute cost without the time spent waiting for a core on a
    loaded machine; with a GPU or several threads only the wall clock is meaningful.
    """
    if clock == "auto":
        return "cpu" if torch.device(device).type == "cpu" and threads == 1 else "wall"
    if clock not in CLOCKS:
        raise ValueError(f"clock must be 'auto', 'wall' or 'cpu', got {clock!r}")
    return clock


def _stats(c: Case, fwd: Case, clock: str) -> dict[str, Any]:
    """Median, quartiles and minimum in ms of one clock; an extrapolated case is NFE × the forward's median."""
    times = c.times if clock == "wall" else c.cpu_times
    if c.extrapolated:
        median = c.nfe * 1e3 * statistics.median(fwd.times if clock == "wall" else fwd.cpu_times)
        return {"median_ms": median, "q25_ms": None, "q75_ms": None, "min_ms": None}
    q25, median, q75 = (float(q) for q in 1e3 * np.quantile(times, [0.25, 0.5, 0.75]))
    return {"median_ms": median, "q25_ms": q25, "q75_ms": q75, "min_ms": 1e3 * min(times)}


def case_rows(groups: list[list[Case]], clock: str) -> list[dict[str, Any]]:
    """One row per case: per clock ('wall', 'cpu') the median/quartiles/min in ms, the speedup vs the Heun teacher
    (teacher ms ÷ this) and the overhead vs bare forwards (ms ÷ (NFE × forward ms)); top-level fields repeat
    the `clock` ones (ms_per_call, iqr_ms, ms_per_action, speedup_vs_teacher, overhead_vs_forward)."""
    rows = []
    for group in groups:
        fwd = {c.network: c for c in group if c.sampler == FORWARD}
        stats = {(id(c), k): _stats(c, fwd[c.network], k) for c in group for k in CLOCKS}
        teacher = next((c for c in group if c.network == "teacher" and c.sampler != FORWARD), None)
        for c in group:
            r: dict[str, Any] = {"model": c.model, "network": c.network, "sampler": c.sampler, "nfe": c.nfe,
                                 "batch": c.batch, "repeats": len(c.times), "measured": not c.extrapolated,
                                 "clock": clock}
            planner = c.sampler != FORWARD
            for k in CLOCKS:
                st = dict(stats[id(c), k])
                forward_ms = stats[id(fwd[c.network]), k]["median_ms"]
                teacher_ms = None if teacher is None else stats[id(teacher), k]["median_ms"]
                st["speedup_vs_teacher"] = teacher_ms / st["median_ms"] if planner and teacher_ms else None
                st["overhead_vs_forward"] = (st["median_ms"] / (c.nfe * forward_ms)
                                             if planner and not c.extrapolated else None)
                r[k] = st
            p = r[clock]
            r |= {"ms_per_call": p["median_ms"], "ms_per_action": p["median_ms"] / c.batch,
                  "iqr_ms": None if p["q25_ms"] is None else p["q75_ms"] - p["q25_ms"],
                  "speedup_vs_teacher": p["speedup_vs_teacher"], "overhead_vs_forward": p["overhead_vs_forward"]}
            rows.append(r)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and batch: student (NFE 1)/teacher speedup and one-step planner/bare forward, against the goals
    (judged on the rows' clock; the other clock's ratios are given too)."""
    out = []
    for model, batch in dict.fromkeys((r["model"], r["batch"]) for r in rows):
        sel = {(r["network"], r["sampler"]): r for r in rows if (r["model"], r["batch"]) == (model, batch)}
        one = sel.get(("student", "one_step"))
        teacher = next((r for (net, s), r in sel.items() if net == "teacher" and s != FORWARD), None)
        item: dict[str, Any] = {"model": model, "batch": batch}
        if one is None:
            out.append(item)
            continue
        item["clock"] = one["clock"]
        if teacher is not None:
            item |= {"student_over_teacher": one["speedup_vs_teacher"], "teacher_nfe": teacher["nfe"],
                     "teacher_measured": teacher["measured"],
                     "speedup_goal_met": one["speedup_vs_teacher"] >= GOAL_SPEEDUP,
                     **{f"{k}_student_over_teacher": one[k]["speedup_vs_teacher"] for k in CLOCKS}}
        item |= {"planner_over_forward": one["overhead_vs_forward"],
                 "overhead_goal_met": one["overhead_vs_forward"] <= GOAL_OVERHEAD,
                 **{f"{k}_planner_over_forward": one[k]["overhead_vs_forward"] for k in CLOCKS}}
        out.append(item)
    return out


def environment_info(device: str, threads: int | None) -> dict[str, Any]:
    """What the numbers depend on: versions, device, threads, the machine and its load while measuring."""
    info = {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "device": device, "threads": threads or torch.get_num_threads()}
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


@dataclass(frozen=True)
class BenchSettings:
    """Every knob of a latency benchmark (see `benchmark_latency`)."""

    batch_sizes: tuple[int, ...] = (1, 100)
    student_nfe: tuple[int, ...] = (1, 2, 3, 4)
    heun_levels: int | None = None  # None: the teacher's own (80 → 158 NFE)
    ddim_steps: int = 10
    repeats: int = 100  # at most this many timed calls per case
    warmup: int = 10  # untimed calls first (fewer for slow cases)
    min_repeats: int = 3
    budget_s: float = 10.0  # stop a case after this many seconds of timed calls (but >= min_repeats)
    max_case_s: float = 60.0  # extrapolate a case whose min_repeats calls would take longer
    device: str = "cpu"
    threads: int | None = 1  # torch.set_num_threads during the run (None: unchanged)
    clock: str = "auto"  # auto | wall | cpu: the clock of the ratios and goals (see resolve_clock)
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
        if min(self.repeats, self.min_repeats, self.ddim_steps) < 1 or self.warmup < 0:
            raise ValueError("repeats, min_repeats and ddim_steps must be >= 1, warmup >= 0")
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
    with num_threads(s.threads):
        groups = [build_cases(label, arts, b, s.student_nfe, s.heun_levels, s.ddim_steps, s.device, s.seed)
                  for label, arts in models.items() for b in s.batch_sizes]
        env = environment_info(s.device, s.threads)
        run_cases(groups, torch.device(s.device), s.repeats, s.warmup, s.min_repeats, s.budget_s, s.max_case_s,
                  progress)
    rows = case_rows(groups, clock)
    params = {label: {net: sum(p.numel() for p in art.net.parameters()) for net, art in arts.items()}
              for label, arts in models.items()}
    return {"format": "ractd.bench/1", "environment": env, "parameters": params,
            "settings": {**dataclasses.asdict(s), "clock": clock},
            "goals": {"student_over_teacher_min": GOAL_SPEEDUP, "planner_over_forward_max": GOAL_OVERHEAD},
            "rows": rows, "summary": summarize(rows)}


def run_artifacts(run_root: str | Path) -> dict[str, Artifact]:
    """{student, teacher?, ddim?} from `run_root/student`, `run_root/teacher` (EDM) and `run_root/ddim` (DDPM)."""
    root = Path(run_root)
    if (root / "config.json").exists():
        raise ArtifactError(f"{root}: this is a single stage folder; pass the run root that holds student/ and "
                            f"teacher/ (e.g. {root.parent})")
    if not (root / "student").is_dir():
        raise ArtifactError(f"{root}: no student/ run folder to benchmark (train it with `ractd train student`)")
    arts = {"student": load_artifact(root / "student", expect_stage="student")}
    for folder in ("teacher", "ddim"):
        if (root / folder).is_dir():
            art = load_artifact(root / folder, expect_stage="teacher")
            key = "teacher" if art.config.teacher.kind == "edm" else "ddim"
            if key in arts:
                raise ArtifactError(f"{root}: both teacher/ and ddim/ hold a {art.config.teacher.kind} teacher")
            arts[key] = art
    return arts


def benchmark_latency(run_root: str | Path, batch_sizes: Sequence[int] = (1, 100),
                      student_nfe: Sequence[int] = (1, 2, 3, 4), repeats: int = 100, warmup: int = 10,
                      device: str = "cpu", progress: bool = True, out: str | Path | None = None,
                      **options: Any) -> dict[str, Any]:
    """Per-action latency of the trained planners under `run_root` (student/, teacher/, optional ddim/).

    Cases per batch size: bare forward of each network; student NFE in `student_nfe` (1 = one step, k = chaining);
    teacher Heun on `heun_levels` levels (default: the teacher's, 80 → 158 NFE); DDIM with `ddim_steps` if a
    DDPM teacher exists in `run_root/ddim` (or teacher/). Each case: up to `repeats` timed calls after `warmup`,
    stopping after `budget_s` seconds of calls (but at least `min_repeats`); a case that would need more than
    `max_case_s` for `min_repeats` calls is extrapolated from the bare forward (row `measured: false`).
    `options` are the other `BenchSettings` fields (heun_levels, ddim_steps, min_repeats, budget_s, max_case_s,
    threads=1, clock='auto', seed). Returns the result dict; writes it as JSON atomically to `out` if given.
    """
    from .io import write_json

    settings = BenchSettings(tuple(batch_sizes), tuple(student_nfe), repeats=repeats, warmup=warmup, device=device,
                             **options)
    arts = run_artifacts(run_root)
    result = benchmark_artifacts({Path(run_root).name: arts}, settings, progress)
    result["source"] = {"run_root": str(run_root), **{k: str(a.path) for k, a in arts.items()}}
    if out is not None:
        write_json(out, result)
    return result


def random_normalizers(obs_dim: int, act_dim: int, seed: int = 0) -> Any:
    """Min–max normalizers fitted on random data (timing only: the cost does not depend on their values)."""
    from .data import NormalizerSet

    rng = np.random.default_rng(seed)
    return NormalizerSet.fit({"observations": rng.normal(size=(256, obs_dim)),
                              "actions": rng.uniform(-1, 1, size=(256, act_dim)), "returns": rng.normal(size=256)})


def untrained_artifacts(cfg: RunConfig, obs_dim: int | None = None, act_dim: int | None = None,
                        seed: int = 0) -> dict[str, Artifact]:
    """Randomly initialized student and teacher (EDM → 'teacher', DDPM → 'ddim') of `cfg`'s sizes, no run folder.

    Dimensions default to the task's (`ractd.envs.get_task(cfg.task)`).
    """
    if obs_dim is None or act_dim is None:
        from .envs import get_task

        task = get_task(cfg.task)
        obs_dim, act_dim = obs_dim or task.obs_dim, act_dim or task.act_dim
    norms = random_normalizers(obs_dim, act_dim, seed)
    torch.manual_seed(seed)
    arts = {}
    for stage in ("student", "teacher"):
        net = build_network(cfg, stage, obs_dim, act_dim).eval()
        key = stage if stage == "student" or cfg.teacher.kind == "edm" else "ddim"
        arts[key] = Artifact.from_parts(Path(f"<untrained {cfg.task} {cfg.size} {stage}>"), stage, cfg, net, norms,
                                        obs_dim, act_dim)
    return arts


def benchmark_networks(configs: Mapping[str, RunConfig], batch_sizes: Sequence[int] = (1, 100),
                       student_nfe: Sequence[int] = (1, 2, 3, 4), repeats: int = 100, warmup: int = 10,
                       device: str = "cpu", progress: bool = True, out: str | Path | None = None,
                       **options: Any) -> dict[str, Any]:
    """`benchmark_latency` for untrained networks built from configs ({label: RunConfig}), e.g. paper vs cpu size.

    No run folder needed: weights and normalizers are random (latency does not depend on them); dimensions are
    the task's. Models are timed one after another in this process; within a model and batch size all cases are
    interleaved. `options`: the other `BenchSettings` fields.
    """
    from .io import write_json

    settings = BenchSettings(tuple(batch_sizes), tuple(student_nfe), repeats=repeats, warmup=warmup, device=device,
                             **options)
    models = {label: untrained_artifacts(cfg, seed=settings.seed) for label, cfg in configs.items()}
    result = benchmark_artifacts(models, settings, progress)
    result["source"] = {label: f"untrained {cfg.task} ({cfg.size})" for label, cfg in configs.items()}
    if out is not None:
        write_json(out, result)
    return result


# ------------------------------------------------------------------------------------------------ report


def _fmt(x: float | None, spec: str, suffix: str = "") -> str:
    return "—" if x is None else f"{x:{spec}}{suffix}"


def latency_table(result: Mapping[str, Any]) -> Any:
    """A rich Table: model, network, sampler, NFE, batch, ms/call (median, IQR), the other clock, ms/action, ratios."""
    from rich.table import Table

    env, clock = result["environment"], result["settings"]["clock"]
    other = "wall" if clock == "cpu" else "cpu"
    name = {"cpu": "CPU", "wall": "wall"}
    load = f", load {env['load_average_1min']:.1f}" if "load_average_1min" in env else ""
    table = Table(title=f"Planning latency ({env['device']}, {env['threads']} thread(s), torch {env['torch']}"
                        f"{load}; {name[clock]} time)",
                  caption=f"Medians of many calls ({name[clock]} time; IQR = interquartile range). "
                          "≈ = extrapolated as NFE × measured bare forward (solver arithmetic not included). "
                          "× teacher = teacher ms/call ÷ this; overhead = ms/call ÷ (NFE × bare forward).")
    for col in ("model", "network", "sampler", "NFE", "batch", "ms/call", "IQR", f"{name[other]} ms",
                "ms/action", "× teacher", "overhead"):
        table.add_column(col, justify="left" if col in ("model", "network", "sampler") else "right",
                         no_wrap=col in ("network", "sampler"))
    for r in result["rows"]:
        approx = "" if r["measured"] else "≈"
        table.add_row(r["model"], r["network"], r["sampler"], str(r["nfe"]), str(r["batch"]),
                      approx + _fmt(r["ms_per_call"], ".4g"), _fmt(r["iqr_ms"], ".2g"),
                      approx + _fmt(r[other]["median_ms"], ".4g"), approx + _fmt(r["ms_per_action"], ".4g"),
                      _fmt(r["speedup_vs_teacher"], ".1f", "×"), _fmt(r["overhead_vs_forward"], ".3f", "×"))
    return table


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    """One line per model and batch: the two ratios against their goals (and on the other clock)."""
    lines = []
    for s in result["summary"]:
        if "clock" not in s:
            continue
        clock = s["clock"]
        other = "wall" if clock == "cpu" else "cpu"
        parts = [f"{s['model']} batch {s['batch']} ({clock} time):"]
        if "student_over_teacher" in s:
            how = "" if s["teacher_measured"] else ", teacher extrapolated"
            parts.append(f"student/teacher {s['student_over_teacher']:.1f}× "
                         f"({other} {s[f'{other}_student_over_teacher']:.1f}×{how}), "
                         f"goal ≥ {GOAL_SPEEDUP:g}× {'met' if s['speedup_goal_met'] else 'NOT met'};")
        parts.append(f"one-step planner/bare forward {s['planner_over_forward']:.3f}× "
                     f"({other} {s[f'{other}_planner_over_forward']:.3f}×), goal ≤ {GOAL_OVERHEAD:.2f}× "
                     f"{'met' if s['overhead_goal_met'] else 'NOT met'}")
        lines.append(" ".join(parts))
    return lines


def bench_command(run_root: str | Path, out: str | Path | None = None, batch_sizes: Sequence[int] = (1, 100),
                  device: str = "cpu", threads: int | None = 1, heun_levels: int | None = None,
                  repeats: int = 100, progress: bool = True) -> Any:
    """`ractd bench RUN_ROOT`: benchmark, write JSON (default RUN_ROOT/bench.json), return a rich renderable."""
    from rich.console import Group

    out = Path(out) if out is not None else Path(run_root) / "bench.json"
    result = benchmark_latency(run_root, batch_sizes, repeats=repeats, device=device, progress=progress, out=out,
                               heun_levels=heun_levels, threads=threads)
    return Group(latency_table(result), *summary_lines(result), f"wrote {out}")
