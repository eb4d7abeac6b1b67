"""Training step cost per preset: teacher, reward model and student optimizer steps, side by side in one process.

Untrained networks of a preset's sizes on synthetic batches of the right shapes (a step's cost does not depend on
the data), each step = zero_grad → loss → backward → AdamW step → the objective's after-step hook, exactly what the
training loop does. Steps of the three stages are timed round-robin (one of each per round), so a load change on
a shared machine hits all of them alike; medians are reported. Prints steps/s per stage and the student/teacher
ratio at equal batch against its goal (≤ 3×), and writes JSON.

Inside the student step the teacher's ODE solve (docs/algorithm.md §4.4) is timed separately; "student − solve /
teacher" is the ratio left if the solve cost nothing, the floor that the rest of the objective (two student
forward/backward passes with dropout, three target-network forwards and the backward through one) sets.

    .venv/bin/python benchmarks/train_step.py                                   # cpu presets, their batch (256)
    .venv/bin/python benchmarks/train_step.py --tasks hopper-medium-replay --sizes paper --batch 64 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

import ractd.diffusion.ctm as ctm_module
from ractd.artifact import build_network
from ractd.config import RunConfig
from ractd.diffusion import EDMDenoiser
from ractd.envs import get_task
from ractd.io import write_json
from ractd.presets import preset
from ractd.train.objectives import RewardObjective, StudentObjective, TeacherObjective

GOAL_STUDENT_OVER_TEACHER = 3.0


def synthetic_batch(cfg: RunConfig, obs_dim: int, act_dim: int, batch: int, g: torch.Generator,
                    stage: str) -> dict[str, torch.Tensor]:
    """Normalized windows of the stage's shapes: x in [−1, 1], the conditioning, observations, returns-to-go."""
    d = cfg.data
    if stage == "reward" and cfg.reward.input == "action_obs":
        horizon, x_dim, n_obs = 1, act_dim, 1
    else:
        horizon, x_dim, n_obs = d.horizon, act_dim if d.x_key == "actions" else obs_dim, d.n_obs_steps
    cond_dim = n_obs * obs_dim if d.cond == "history" else 2 * obs_dim

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g) * 2 - 1

    return {"x": u(batch, horizon, x_dim), "cond": u(batch, cond_dim), "obs": u(batch, n_obs, obs_dim),
            "rtg": u(batch, horizon)}


def objectives(cfg: RunConfig, obs_dim: int, act_dim: int) -> dict[str, object]:
    """The three objectives the stages build, with untrained networks (the student warm-started from the teacher)."""
    from ractd.nn import insert_zero_time_columns

    teacher_net = build_network(cfg, "teacher", obs_dim, act_dim)
    reward_net = build_network(cfg, "reward", obs_dim, act_dim)
    student_net = build_network(cfg, "student", obs_dim, act_dim)
    student_net.load_state_dict(insert_zero_time_columns(teacher_net.state_dict(), cfg.teacher.unet.time_embed_dim))
    frozen_teacher = EDMDenoiser(build_network(cfg, "teacher", obs_dim, act_dim), cfg.teacher.edm)
    frozen_teacher.net.load_state_dict(teacher_net.state_dict())
    frozen_reward = build_network(cfg, "reward", obs_dim, act_dim)
    return {
        "teacher": TeacherObjective(teacher_net, cfg.teacher.kind, cfg.teacher.edm, cfg.teacher.ddpm),
        "reward": RewardObjective(reward_net, cfg.reward.input),
        "student": StudentObjective(student_net, frozen_teacher, frozen_reward if cfg.student.ctm.reward_weight > 0
                                    else None, cfg.student.ctm, cfg.student.reward_aggregate, cfg.data.n_obs_steps),
    }


def step_function(objective, batch: dict[str, torch.Tensor]):
    model = objective.trainable().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    count = [0]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = objective.loss(model, batch, count[0])
        loss.backward()
        optimizer.step()
        objective.after_optimizer_step(model, count[0])
        count[0] += 1

    return step


class SolveTimer:
    """Wraps the CTM module's teacher solve to add its CPU time to `seconds` (the student step calls it once)."""

    def __init__(self) -> None:
        self.seconds, self._solve = 0.0, ctm_module.teacher_solve

    def __call__(self, *args, **kwargs):
        start = time.process_time()
        try:
            return self._solve(*args, **kwargs)
        finally:
            self.seconds += time.process_time() - start


def measure(cfg: RunConfig, batch: int, rounds: int, seed: int = 0) -> dict[str, dict[str, float]]:
    task = get_task(cfg.task)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    objs = objectives(cfg, task.obs_dim, task.act_dim)
    steps = {name: step_function(obj, synthetic_batch(cfg, task.obs_dim, task.act_dim, batch, g, name))
             for name, obj in objs.items()}
    for step in steps.values():  # warm-up (allocator, oneDNN kernels)
        step()
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    solve_times: list[float] = []
    timer = SolveTimer()
    ctm_module.teacher_solve = timer
    try:
        for _ in range(rounds):
            for name, step in steps.items():
                timer.seconds = 0.0
                start = time.process_time()
                step()
                times[name].append(time.process_time() - start)
                if name == "student":
                    solve_times.append(timer.seconds)
    finally:
        ctm_module.teacher_solve = timer._solve
    out = {name: {"median_ms": 1e3 * statistics.median(t), "steps_per_s": 1 / statistics.median(t),
                  "q25_ms": 1e3 * statistics.quantiles(t, n=4)[0], "q75_ms": 1e3 * statistics.quantiles(t, n=4)[2]}
           for name, t in times.items()}
    out["student"]["teacher_solve_ms"] = 1e3 * statistics.median(solve_times)
    out["student"]["without_solve_ms"] = 1e3 * statistics.median(t - s for t, s in zip(times["student"], solve_times,
                                                                                         strict=True))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["hopper-medium-replay", "walker2d-medium", "maze2d-umaze",
                                                   "maze2d-large"],
                    help="presets to measure (state-conditioned locomotion and state-sequence Maze2d differ most)")
    ap.add_argument("--sizes", nargs="+", default=["cpu"], choices=["cpu", "paper"])
    ap.add_argument("--batch", type=int, default=None, help="default: the preset's teacher batch size")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/train_step.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=max(Console().width, 190))
    table = Table(title=f"training step cost (CPU time, median over {args.rounds} rounds, {args.threads} thread(s))")
    for col in ("task", "size", "batch", "teacher steps/s", "reward steps/s", "student steps/s", "teacher ms",
                "student ms", "of which solve", "student / teacher", "student − solve / teacher",
                f"goal ≤ {GOAL_STUDENT_OVER_TEACHER:g}×"):
        table.add_column(col, justify="right")
    results: dict[str, dict] = {}
    for task in args.tasks:
        for size in args.sizes:
            cfg = preset(task, size)
            batch = args.batch or cfg.teacher.train.batch_size
            r = measure(cfg, batch, args.rounds)
            st, te = r["student"], r["teacher"]
            ratio, floor = st["median_ms"] / te["median_ms"], st["without_solve_ms"] / te["median_ms"]
            results.setdefault(task, {})[size] = {"batch": batch, "stages": r, "student_over_teacher": ratio,
                                                  "student_without_solve_over_teacher": floor}
            table.add_row(task, size, str(batch), f"{te['steps_per_s']:.2f}", f"{r['reward']['steps_per_s']:.1f}",
                          f"{st['steps_per_s']:.2f}", f"{te['median_ms']:.1f}", f"{st['median_ms']:.1f}",
                          f"{st['teacher_solve_ms']:.1f}", f"{ratio:.2f}×", f"{floor:.2f}×",
                          "met" if ratio <= GOAL_STUDENT_OVER_TEACHER else "missed")
    console.print(table)
    write_json(args.out, {"threads": args.threads, "rounds": args.rounds, "load_average": os.getloadavg(),
                          "results": results})
    console.print(f"wrote {args.out}  (load average at the end: {os.getloadavg()[0]:.2f})")

if __name__ == "__main__":
    main()
