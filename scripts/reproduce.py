#!/usr/bin/env python
"""Reproduction report: train, evaluate and time every entry of docs/results.md from committed configs.

    python scripts/reproduce.py run [--section NAME ...] [--episodes 50]   # long: run in the background
    python scripts/reproduce.py report                                     # render docs/results.md from JSON

Every experiment is an entry of scripts/experiments.py (the trainings and evaluations of each section); results
land in results/report/ (runs/, eval JSON, timings). The run folders and datasets are not committed, so `snapshot`
keeps their summaries in results/report/runs.json and datasets.json, and the report is rendered only from the
committed JSON: `report` works on a clean clone. Finished stages and evaluations are skipped, so an interrupted
run resumes; a stage trained again (its run folder absent or unfinished) drops its earlier evaluations first.
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


FIGURE_DATASETS = ("hopper-medium-expert",)  # datasets whose episode returns a report figure draws


def snapshot(out: Path) -> None:
    """Fold what this machine has into the committed summaries: every run folder under out/runs (status, steps,
    wall time, parameters, final metrics, σ_r) into runs.json and every generated dataset's card into datasets.json.
    Entries of runs or datasets absent here are kept as they are."""
    import json

    from ractd.io import read_json, write_json
    from ractd.paths import data_root

    runs = read_json(out / "runs.json") if (out / "runs.json").exists() else {"runs": {}}
    for meta_path in sorted((out / "runs").glob("*/*/meta.json")) if (out / "runs").exists() else []:
        meta, run = read_json(meta_path), meta_path.parent
        entry = {"status": meta.get("status"), "step": meta.get("step", 0), "wall_time_s": meta.get("wall_time_s"),
                 "parameters": (meta.get("parameters") or {}).get("total", 0), "metrics": meta.get("metrics") or {}}
        if (run / "config.json").exists():
            entry["reward_weight"] = read_json(run / "config.json")["config"]["student"]["ctm"]["reward_weight"]
        runs["runs"][f"{run.parent.name}/{run.name}"] = entry
    datasets = read_json(out / "datasets.json") if (out / "datasets.json").exists() else {"datasets": {}}
    for card_path in sorted(data_root().glob("*/card.json")):
        card, name = read_json(card_path), card_path.parent.name
        gen_path = card_path.parent / "generation.json"
        gen = read_json(gen_path) if gen_path.exists() else card.get("generation", {})
        entry = {"name": name, "steps": card["steps"], "episodes": card["episodes"],
                 "normalized_return": card.get("normalized_return"),
                 "seconds": gen.get("seconds") if isinstance(gen, dict) else None}
        if name in FIGURE_DATASETS:
            from ractd.data import load_dataset

            entry["episode_returns"] = [round(float(r), 4) for r in load_dataset(name).episode_returns()]
        datasets["datasets"][name] = json.loads(json.dumps(entry))
    write_json(out / "runs.json", runs)
    write_json(out / "datasets.json", datasets)


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
        for stale in sorted((OUT / "eval" / task).glob(f"{name}-*.json")):  # results of an earlier training
            print(f"[{section}] {stale.relative_to(ROOT)} evaluated an earlier training of {name}: removed, "
                  "evaluated again below (git keeps the old file)", flush=True)
            stale.unlink()
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
            snapshot(OUT)
    else:
        from render_report import render  # scripts/render_report.py

        snapshot(OUT)
        render(OUT, ROOT / "docs" / "results.md")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
