#!/usr/bin/env python
"""Reproduction report: train, evaluate and time every entry of docs/results.md from committed configs.

    python scripts/reproduce.py run [--section NAME ...] [--episodes 50]   # long: run in the background
    python scripts/reproduce.py report                                     # render docs/results.md from JSON

Every experiment is an entry of scripts/experiments.py (the trainings and evaluations of each section); results
land in results/report/ (runs/, eval JSON, timings) and the report is rendered only from those files. Finished
stages and evaluations are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from experiments import EVALS, TRAININGS, task_of  # scripts/experiments.py

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "report"


def record(path: Path, key: str, value) -> None:
    """Set one key of a shared JSON file (timings, latency): re-read under a lock, so parallel sections add up."""
    import fcntl

    from ractd.io import read_json, write_json

    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = read_json(path) if path.exists() else {}
        data[key] = value
        write_json(path, data)


def run_section(section: str, episodes: int, teacher_episodes: int) -> None:
    from ractd.envs import get_task, make_env
    from ractd.evaluate import evaluate
    from ractd.io import read_json
    from ractd.planning import PlannerPolicy, load_planner
    from ractd.presets import resolve_config
    from ractd.quickstart import batch1_latency_ms
    from ractd.stages import train_stage

    task = task_of(section)
    runs = OUT / "runs" / task
    timings_path = OUT / "timings.json"
    for name, stage, overrides in TRAININGS[section]:
        meta = runs / name / "meta.json"
        if meta.exists() and read_json(meta).get("status") == "finished":
            continue
        print(f"[{section}] train {name}", flush=True)
        start = time.perf_counter()
        train_stage(resolve_config(task, "cpu", overrides), stage, runs, name=name, progress=False)
        record(timings_path, f"{task}/{name}", time.perf_counter() - start)
    spec = get_task(task)
    inv = runs / "inverse_dynamics" if (runs / "inverse_dynamics" / "model.safetensors").exists() else None
    for run, sampler, controller in EVALS[section]:
        path = OUT / "eval" / task / f"{run}-{sampler.replace(':', '')}-{controller}.json"
        if path.exists():
            continue
        n = teacher_episodes if sampler.startswith("heun") and spec.kind == "locomotion" else episodes
        print(f"[{section}] eval {run} {sampler} {controller} ({n} episodes)", flush=True)
        planner = load_planner(runs / run, sampler, seed=0, inverse_dynamics=inv)
        start = time.perf_counter()
        r = evaluate(PlannerPolicy(planner, controller), lambda: make_env(spec), n, seed=0,
                     ref_scores=(spec.ref_min_score, spec.ref_max_score), legacy_running_max=True, progress=False,
                     description=planner.describe())
        r.to_json(path)
        record(timings_path, f"{task}/eval/{path.stem}", time.perf_counter() - start)
        ms = batch1_latency_ms(planner, spec, repeats=2 if planner.sampler.name == "heun" else 20)
        record(OUT / "latency.json", f"{task}/{path.stem}", {"nfe": planner.nfe, "ms_per_action": ms})
    if spec.kind == "maze2d":
        plans = read_json(OUT / "maze_plans.json") if (OUT / "maze_plans.json").exists() else {}
        for run, sampler in dict.fromkeys((run, sampler) for run, sampler, _ in EVALS[section]):
            key = f"{task}/{run}-{sampler.replace(':', '')}"
            if key not in plans:
                record(OUT / "maze_plans.json", key, plan_geometry(load_planner(runs / run, sampler, seed=0), spec))
        if f"{task}/dataset" not in plans:  # the behaviour controller's step, for scale
            from ractd.data import load_dataset

            obs = load_dataset(task).observations
            record(OUT / "maze_plans.json", f"{task}/dataset",
                   {"mean_step": float(np.linalg.norm(np.diff(obs[:, :2], axis=0), axis=-1).mean())})


def plan_geometry(planner, spec, episodes: int = 50) -> dict:
    """How a Maze2d plan looks, on the evaluation's seeded start/goal pairs: mean waypoint step ‖Δxy‖ and the
    distance of its first waypoint from the agent (a smooth plan from the agent has small values for both)."""
    from ractd.envs import make_env

    env = make_env(spec)
    resets = [env.reset(seed=k) for k in range(episodes)]  # the seeds `evaluate` gives episodes 0..n-1
    starts, goals = np.stack([o for o, _ in resets]), np.stack([info["goal"] for _, info in resets])
    plans = planner.plan(starts, goals)
    step = np.linalg.norm(np.diff(plans[..., :2], axis=1), axis=-1).mean()
    offset = np.linalg.norm(plans[:, 0, :2] - starts[:, :2], axis=-1).mean()
    return {"mean_step": float(step), "start_offset": float(offset), "episodes": episodes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["run", "report"])
    ap.add_argument("--section", action="append", choices=list(TRAININGS))
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--teacher-episodes", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.command == "run":
        for section in args.section or list(TRAININGS):
            run_section(section, args.episodes, args.teacher_episodes)
    else:
        from render_report import render  # scripts/render_report.py

        render(OUT, ROOT / "docs" / "results.md")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
