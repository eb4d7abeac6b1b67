"""Peak memory of training-data preparation and window sampling, relative to the raw arrays.

A synthetic locomotion-shaped dataset (default 1 M transitions; Hopper-shaped 11-d observations / 3-d actions and
Walker2d-shaped 17 / 6; episodes of medium-replay-like lengths: many early falls, a share of 1000-step timeouts) is
written once as a D4RL hdf5 file. Then, for every (shape, stage), a fresh Python process does what a training stage
does before and while it trains: ``prepare_data`` (load the file, returns-to-go, min–max normalizers),
``stage_windows`` (the stage's training and validation windows) and the loop's sampling (an epoch permutation and
``--batches`` training batches turned into tensors, plus validation batches where the stage has them).

Measurement, in the child process (Linux /proc):
  baseline = VmRSS after importing numpy, torch, h5py and the ractd modules the path uses (nothing loaded yet);
             the peak counter VmHWM is then reset to it (``/proc/self/clear_refs`` ← 5) where the kernel allows,
             else the import peak stays in the counter (that only overstates the result);
  peak     = VmHWM at the end − baseline: the most resident memory the data path ever added;
  raw      = bytes of the dataset's arrays as loaded (observations, actions, rewards, terminals, timeouts and
             the episode ends);
  ratio    = peak / raw, goal ≤ 2×.
``kept`` (VmRSS at the end − baseline) is what stays resident while training.

    .venv/bin/python benchmarks/data_memory.py                       # 1 M transitions, paper-size presets
    .venv/bin/python benchmarks/data_memory.py --steps 200000 --size cpu
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

GOAL_PEAK_OVER_RAW = 2.0
MiB = 2**20
#: (task whose preset configures the stage, observation size, action size)
SHAPES = {"hopper": ("hopper-medium-replay", 11, 3), "walker2d": ("walker2d-medium-replay", 17, 6)}
STAGES = ("teacher", "reward")  # the student samples the teacher's windows


def episode_lengths(n_steps: int, rng: np.random.Generator, max_len: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Medium-replay-like episode lengths summing to ``n_steps`` and whether each ended in a timeout: log-normal
    lengths around 200 steps clipped to [10, max_len]; those reaching max_len (and the last, cut) are timeouts."""
    lengths: list[int] = []
    total = 0
    while total < n_steps:
        length = int(np.clip(rng.lognormal(np.log(200.0), 1.0), 10, max_len))
        length = min(length, n_steps - total)
        lengths.append(length)
        total += length
    arr = np.asarray(lengths, dtype=np.int64)
    timeout = arr >= max_len
    timeout[-1] = True
    return arr, timeout


def synthetic_arrays(n_steps: int, obs_dim: int, act_dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    """D4RL-layout arrays of a locomotion-shaped dataset (float32 observations/actions/rewards, bool flags)."""
    rng = np.random.default_rng(seed)
    lengths, timeout = episode_lengths(n_steps, rng)
    last = np.cumsum(lengths) - 1
    terminals = np.zeros(n_steps, dtype=bool)
    timeouts = np.zeros(n_steps, dtype=bool)
    terminals[last[~timeout]] = True
    timeouts[last[timeout]] = True
    return {
        "observations": rng.standard_normal((n_steps, obs_dim), dtype=np.float32),
        "actions": rng.uniform(-1, 1, (n_steps, act_dim)).astype(np.float32),
        "rewards": (3.0 + rng.standard_normal(n_steps, dtype=np.float32)).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
    }


# ---------------------------------------------------------------------------------------------- child process
def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def child(args: argparse.Namespace) -> None:
    """Run the data path once and print one JSON line of measurements (KiB)."""
    import gc

    import h5py  # noqa: F401  (loading the file imports it; part of the baseline)
    import torch

    from ractd.data import d4rl  # noqa: F401
    from ractd.prepare import prepare_data, stage_windows
    from ractd.presets import resolve_config
    from ractd.train.order import batch_to_tensors, epoch_permutation

    torch.set_num_threads(1)
    cfg = resolve_config(args.task, args.size, [f'data.dataset="{args.dataset}"'])
    section = {"teacher": cfg.teacher, "reward": cfg.reward}[args.stage]
    batch_size = section.train.batch_size
    device = torch.device("cpu")
    gc.collect()
    baseline = _proc_status_kib("VmRSS")
    reset = _reset_peak()

    prep = prepare_data(cfg)
    after_prepare = _proc_status_kib("VmRSS")
    train, val = stage_windows(cfg, prep, args.stage)
    after_windows = _proc_status_kib("VmRSS")
    # what the training loop does: one epoch permutation, consecutive batches of it, tensors
    perm = epoch_permutation(cfg.seed, 0, len(train))
    for b in range(args.batches):
        batch_to_tensors(train.get_batch(perm[b * batch_size:(b + 1) * batch_size]), device)
    if val is not None:
        for b in range(min(args.batches, -(-len(val) // batch_size))):
            batch_to_tensors(val.get_batch(np.arange(b * batch_size, min((b + 1) * batch_size, len(val)))), device)
    ds = prep.dataset
    raw = sum(a.nbytes for a in (ds.observations, ds.actions, ds.rewards, ds.terminals, ds.timeouts,
                                 ds.episode_ends))
    print(json.dumps({
        "baseline_kib": baseline, "peak_kib": _proc_status_kib("VmHWM"), "end_kib": _proc_status_kib("VmRSS"),
        "after_prepare_kib": after_prepare, "after_windows_kib": after_windows, "peak_reset": reset,
        "raw_bytes": raw, "n_steps": ds.num_steps, "n_episodes": ds.num_episodes, "train_windows": len(train),
        "val_windows": 0 if val is None else len(val), "batch_size": batch_size,
    }))


# ---------------------------------------------------------------------------------------------- parent
def measure(dataset: Path, task: str, stage: str, size: str, batches: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--child", "--dataset", str(dataset), "--task", task,
                          "--stage", stage, "--size", size, "--batches", str(batches)],
                         check=True, capture_output=True, text=True, env=env)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    kib = 1024
    r["peak_bytes"] = (r["peak_kib"] - r["baseline_kib"]) * kib
    r["kept_bytes"] = (r["end_kib"] - r["baseline_kib"]) * kib
    r["ratio"] = r["peak_bytes"] / r["raw_bytes"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1_000_000, help="transitions of the synthetic dataset")
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    ap.add_argument("--size", default="paper", choices=["cpu", "paper"],
                    help="preset size (paper: every window every epoch; cpu: a fixed subset of windows per epoch)")
    ap.add_argument("--batches", type=int, default=50, help="training batches sampled after preparation")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/data_memory.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", help=argparse.SUPPRESS)
    ap.add_argument("--task", help=argparse.SUPPRESS)
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    from rich.console import Console
    from rich.table import Table

    from ractd.data.d4rl import write_d4rl_hdf5
    from ractd.io import write_json

    console = Console(width=130)
    load = os.getloadavg()
    table = Table(title=f"peak RSS of data preparation + window sampling, {args.steps:,} transitions, {args.size} "
                        f"presets (load {load[0]:.2f})")
    for col in ("dataset", "stage", "windows (train/val)", "raw MiB", "peak MiB", "kept MiB", "peak / raw",
                f"goal ≤ {GOAL_PEAK_OVER_RAW:g}×"):
        table.add_column(col, justify="right")
    results = []
    with tempfile.TemporaryDirectory(prefix="ractd-data-memory-") as tmp:
        for shape in args.shapes:
            task, obs_dim, act_dim = SHAPES[shape]
            path = write_d4rl_hdf5(Path(tmp) / f"{shape}.hdf5", synthetic_arrays(args.steps, obs_dim, act_dim))
            for stage in args.stages:
                r = measure(path, task, stage, args.size, args.batches)
                r.update(dataset=shape, task=task, stage=stage, obs_dim=obs_dim, act_dim=act_dim)
                results.append(r)
                table.add_row(shape, stage, f"{r['train_windows']:,}/{r['val_windows']:,}",
                              f"{r['raw_bytes'] / MiB:.1f}", f"{r['peak_bytes'] / MiB:.1f}",
                              f"{r['kept_bytes'] / MiB:.1f}", f"{r['ratio']:.2f}×",
                              "met" if r["ratio"] <= GOAL_PEAK_OVER_RAW else "missed")
    console.print(table)
    worst = max(r["ratio"] for r in results)
    console.print(f"worst peak / raw: {worst:.2f}× (goal ≤ {GOAL_PEAK_OVER_RAW:g}×); load average {load}")
    write_json(args.out, {"steps": args.steps, "size": args.size, "batches": args.batches, "load_average": load,
                          "goal_peak_over_raw": GOAL_PEAK_OVER_RAW, "worst_ratio": worst, "results": results})
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
