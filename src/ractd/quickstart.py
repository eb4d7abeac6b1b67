"""`ractd quickstart`: the whole method on one task in minutes — data → teacher, reward, CTD and RACTD students →
seeded evaluation → latency → one table and a results folder. Resumable: finished stages are skipped.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .io import read_json, write_json

QUICK_DATASET_STEPS = {"maze2d": 200_000, "locomotion": 200_000}
TINY_OVERRIDES = [
    "teacher.unet.down_dims=[8,16]", "teacher.unet.time_embed_dim=8", "data.windows_per_epoch=128",
    "teacher.train.epochs=2", "reward.train.epochs=2", "student.train.epochs=2", "inverse_dynamics.train.epochs=1",
    "student.ctm.ode_steps_max=1", "teacher.train.checkpoint_every=0", "student.train.checkpoint_every=0",
]


@dataclass
class Method:
    """One row of the quickstart table: which run, which sampler, which controller."""

    label: str
    run: str
    sampler: str
    controller: str = "tracking"


@dataclass
class QuickstartResult:
    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0


def _methods(kind: str, inverse_dynamics: bool) -> list[Method]:
    rows = [Method("teacher (EDM, Heun)", "teacher", "heun"), Method("CTD student (σ_r = 0)", "ctd", "one_step"),
            Method("RACTD student", "student", "one_step"), Method("RACTD student, 2 steps", "student", "multistep:2")]
    if kind == "maze2d" and inverse_dynamics:
        rows.append(Method("RACTD student + inverse dynamics", "student", "one_step", "inverse_dynamics"))
    return rows


def batch1_latency_ms(planner: Any, spec: Any, seed: int = 0, repeats: int = 30) -> float:
    """Median wall time (ms) of one batch-1 plan from a real reset observation (and goal), warm-up excluded."""
    from .envs import make_env

    env = make_env(spec)
    obs, info = env.reset(seed=seed)
    env.close()
    goal = np.asarray(info["goal"])[None] if "goal" in info else None
    obs = np.asarray(obs)[None]
    if planner.cond_kind == "history" and planner.n_obs_steps > 1:
        obs = np.repeat(obs[:, None], planner.n_obs_steps, axis=1)
    planner.plan(obs, goal)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        planner.plan(obs, goal)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def run_quickstart(task: str = "maze2d-umaze", out: str | Path = "results/quickstart", size: str = "cpu",
                   episodes: int = 50, seed: int = 0, dataset_steps: int | None = None, tiny: bool = False,
                   overrides: list[str] | None = None, progress: bool = True, console: Any = None) -> QuickstartResult:
    """Run (or resume) the quickstart; returns the table rows and writes `out/results.json`, plots and runs."""
    from rich.console import Console

    from .data.returns import normalized_score
    from .envs import get_task, make_env
    from .evaluate import evaluate, mean_and_standard_error
    from .evaluate.figures import plot_loss_panels, plot_score_rows
    from .planning import PlannerPolicy, load_planner
    from .presets import resolve_config
    from .stages import train_stage

    console = console or Console()
    t0 = time.perf_counter()
    out = Path(out)
    spec = get_task(task)
    result = QuickstartResult(out)
    steps = dataset_steps or (6_000 if tiny else QUICK_DATASET_STEPS[spec.kind])
    if tiny:
        episodes = min(episodes, 4)

    # 1. data: a small dataset generated into the results folder (never writes to the user's data root)
    from .paths import data_root

    name = spec.dataset or task
    user_policies = data_root() / f"{name.split('-')[0]}-policies"  # read before RACTD_DATA_DIR is redirected
    data_dir = out / "data"
    os.environ["RACTD_DATA_DIR"] = str(data_dir.resolve())
    if not (data_dir / name / f"{name}.hdf5").exists():
        console.print(f"[bold]1/4 data[/]: generating {name} ({steps:,} steps) into {data_dir}")
        start = time.perf_counter()
        if spec.kind == "maze2d":
            from .data.generate.maze2d import generate_maze2d

            generate_maze2d(name, data_dir / name, seed=seed, steps=steps, progress=progress, minari=False)
        else:
            from .data.generate.locomotion import generate_locomotion

            # behaviour policies: ones retrained by `ractd data generate --train-policies` (read only), else the
            # policies shipped with ractd (rollouts only)
            cached = (user_policies / "policies.json").exists()
            console.print(f"  behaviour policies: {f'reusing {user_policies}' if cached else 'shipped with ractd'}")
            generate_locomotion(name, data_dir / name, seed=seed, steps=steps, progress=progress, minari=False,
                                policy_dir=user_policies if cached else None)
        result.stage_seconds["data"] = time.perf_counter() - start
    else:
        console.print(f"[bold]1/4 data[/]: {name} found in {data_dir} (delete it to regenerate)")

    # 2. train: teacher, reward, inverse dynamics (Maze2d), CTD student, RACTD student
    base = (TINY_OVERRIDES if tiny else []) + list(overrides or []) + [f"seed={seed}"]
    runs = out / "runs"
    stages = [("teacher", "teacher", []), ("reward", "reward", [])]
    if spec.kind == "maze2d":
        stages.append(("inverse_dynamics", "inverse_dynamics", []))
    stages += [("student", "ctd", ["student.ctm.reward_weight=0"]), ("student", "student", [])]
    for k, (stage, name_, extra) in enumerate(stages, 1):
        cfg = resolve_config(task, size, base + extra)
        if (runs / name_ / "meta.json").exists() and read_json(runs / name_ / "meta.json").get("status") == "finished":
            console.print(f"[bold]2/4 train[/] ({k}/{len(stages)}): {name_} already trained")
            continue
        console.print(f"[bold]2/4 train[/] ({k}/{len(stages)}): {name_}")
        start = time.perf_counter()
        train_stage(cfg, stage, runs, name=name_, progress=progress)
        result.stage_seconds[name_] = time.perf_counter() - start

    # 3. evaluate every method on the same seeded episodes; 4. latency at batch 1
    env_factory = lambda: make_env(spec)  # noqa: E731
    refs = (spec.ref_min_score, spec.ref_max_score) if spec.has_reference_scores else None
    returns: dict[str, np.ndarray] = {}
    inv = runs / "inverse_dynamics" if (runs / "inverse_dynamics" / "model.safetensors").exists() else None
    teacher_ms = None
    for method in _methods(spec.kind, inv is not None):
        tag = f"{method.run}-{method.sampler.replace(':', '')}-{method.controller}"
        path = out / "eval" / f"{tag}.json"
        planner = load_planner(runs / method.run, method.sampler, seed=seed, inverse_dynamics=inv)
        if path.exists():
            res = read_json(path)
            console.print(f"[bold]3/4 eval[/]: {method.label} (cached)")
        else:
            console.print(f"[bold]3/4 eval[/]: {method.label}, {episodes} seeded episodes")
            r = evaluate(PlannerPolicy(planner, method.controller), env_factory, episodes, seed=seed,
                         ref_scores=refs, legacy_running_max=spec.kind == "locomotion", progress=progress,
                         description=method.label)
            r.to_json(path)
            res = read_json(path)
        ms = batch1_latency_ms(planner, spec, seed, repeats=3 if method.sampler == "heun" else 30)
        if method.sampler == "heun":
            teacher_ms = ms
        score = np.asarray(res.get("normalized_scores") or res["returns"], dtype=float)
        returns[method.label] = np.asarray(res["returns"], dtype=float)
        result.rows.append({
            "method": method.label, "nfe": planner.nfe, "controller": method.controller,
            **dict(zip(("score_mean", "score_se"), mean_and_standard_error(score), strict=True)),
            "return_mean": float(returns[method.label].mean()), "episodes": len(score), "ms_per_action": ms,
        })
    for row in result.rows:
        row["speedup_vs_teacher"] = teacher_ms / row["ms_per_action"] if teacher_ms else None

    scores = {label: normalized_score(r, *refs) for label, r in returns.items()} if refs else returns
    plot_score_rows(scores, out / "returns.png", normalized=refs is not None,
                    title=f"{task}: {episodes} seeded episodes per method")
    curves = {n: runs / n / "train.csv" for n in ("teacher", "reward", "ctd", "student")
              if (runs / n / "train.csv").exists()}
    plot_loss_panels(curves, out / "learning_curves.png", title=f"{task}: training losses per optimizer step")
    result.total_seconds = time.perf_counter() - t0
    write_json(out / "results.json", {"task": task, "size": size, "seed": seed, "episodes": episodes,
                                      "dataset_steps": steps, "rows": result.rows,
                                      "stage_seconds": result.stage_seconds, "total_seconds": result.total_seconds,
                                      "score": "D4RL normalized score x100" if refs else "episode return"})
    return result


def format_table(result: QuickstartResult, console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"ractd quickstart — {result.out}")
    for col in ("method", "NFE", "score (mean ± SE)", "ms / action", "speedup vs teacher"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in result.rows:
        speed = f"{r['speedup_vs_teacher']:.0f}×" if r.get("speedup_vs_teacher") else "–"
        table.add_row(r["method"], str(r["nfe"]), f"{r['score_mean']:.1f} ± {r['score_se']:.1f}",
                      f"{r['ms_per_action']:.2f}", speed)
    console.print(table)
    console.print(f"total {result.total_seconds / 60:.1f} min; results in {result.out}/results.json")
