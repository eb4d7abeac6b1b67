#!/usr/bin/env python
"""The σ_r study's exploitation check: how each trained hopper planner's first actions score under its seed's
reward model, next to the data's own actions (ractd.planning.reward_probe; docs/algorithm.md §6.4).

    python scripts/reward_probe.py [--task hopper-medium-replay ...] [--windows 2048]

Probes every run folder of the study tasks under results/report/runs/<task>/ (students one-step, teachers with
their default sampler: Heun for EDM) on the same training windows, and writes results/report/reward_probe.json
("<task>/<run>" -> probe), which `reproduce.py report` renders next to the runs' episode scores. Seconds per
student; a teacher's 158 NFE take longer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from experiments import STUDY_TASKS  # scripts/experiments.py
from reproduce import OUT, record  # scripts/reproduce.py


def probe_task(task: str, windows: int) -> None:
    from ractd.artifact import load_artifact
    from ractd.io import read_json
    from ractd.planning import load_planner
    from ractd.planning.reward_probe import probe_reward
    from ractd.prepare import prepare_data, stage_windows
    from ractd.presets import resolve_config

    runs = OUT / "runs" / task
    cfg = resolve_config(task, "cpu", [])
    data, _ = stage_windows(cfg, prepare_data(cfg), "student")
    batch = data.get_batch(np.random.default_rng(0).choice(len(data), size=min(windows, len(data)), replace=False))
    rewards = {}  # reward run name -> network, loaded once per training seed
    for run in sorted(p.parent for p in runs.glob("*/model.safetensors")):
        stage = read_json(run / "config.json")["stage"]
        if stage not in ("teacher", "student"):
            continue
        planner = load_planner(run, "auto" if stage == "teacher" else "one_step", seed=0)  # EDM: Heun
        reward_run = planner.cfg.student.reward_run  # the seed's reward model, as the run's config names it
        if planner.cfg.data.dataset != cfg.data.dataset or not (runs / reward_run).exists():
            continue
        if reward_run not in rewards:
            rewards[reward_run] = load_artifact(runs / reward_run, expect_stage="reward").net
        reward = rewards[reward_run]
        start = time.perf_counter()
        probe = probe_reward(planner, reward, batch, cfg.data.n_obs_steps)
        print(f"{task}/{run.name}: R(plan) {probe.reward_plan:+.3f} vs R(data) {probe.reward_data:+.3f}, "
              f"above max {probe.above_data_max:.3f}, at bound {probe.at_bound_plan:.3f} "
              f"(data {probe.at_bound_data:.3f}; {time.perf_counter() - start:.1f} s)", flush=True)
        record(OUT / "reward_probe.json", f"{task}/{run.name}", probe.to_dict())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", action="append", choices=STUDY_TASKS)
    ap.add_argument("--windows", type=int, default=2048)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for task in args.task or STUDY_TASKS:
        if (OUT / "runs" / task).exists():
            probe_task(task, args.windows)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
