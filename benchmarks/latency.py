"""Planning latency of the paper-size and cpu-size networks, side by side in one process (docs/algorithm.md §7).

Untrained networks with random normalizers (latency does not depend on the weights), built from the presets
`preset(TASK, "paper")` (the published U-Net [512, 1024, 2048]) and `preset(TASK, "cpu")` ([16, 32, 64]).
For each size and batch size: the bare student and teacher forwards, the student planner at NFE 1–4 and the
teacher's Heun solver (158 evaluations on 80 levels). A Heun case whose `--min-repeats` calls would take longer
than the size's `max case` seconds is not run but extrapolated as 158 × the measured teacher forward and marked
≈ in the table (e.g. the paper-size teacher at batch 100 on a CPU: ~20 minutes per call).

Timing (`ractd.bench.timing`): `torch.utils.benchmark.Timer` blocks, warm-up calls before every block, the cases
of one size and batch interleaved round-robin, one block each per round, every block as long as the slowest call
(at least `--block-s`); medians over the blocks.
With one CPU thread the clock is the process's CPU time (`--clock auto`), which leaves out the time spent
waiting for a core on a loaded machine; the 1-minute load average at the start and the end is in the title.

Prints the table and, per size and batch, the two ratios against their goals: student (NFE 1)/teacher ≥ 150×,
one-step planner/bare forward ≤ 1.10×; writes everything to JSON.

    .venv/bin/python benchmarks/latency.py                       # both sizes, batch 1 and 100, one thread
    .venv/bin/python benchmarks/latency.py --sizes cpu --batch-sizes 1 --threads 2 --clock wall
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from ractd.bench import (
    BenchSettings,
    benchmark_artifacts,
    latency_table,
    summary_lines,
    untrained_artifacts,
)
from ractd.io import write_json
from ractd.presets import preset

# per size: (most rounds, seconds of timed calls per case, longest case to run rather than extrapolate)
PER_SIZE = {"cpu": (100, 10.0, 120.0), "paper": (20, 30.0, 600.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="hopper-medium-replay")
    ap.add_argument("--sizes", nargs="+", default=["paper", "cpu"], choices=sorted(PER_SIZE))
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 100])
    ap.add_argument("--student-nfe", nargs="+", type=int, default=[1, 2, 3, 4])
    ap.add_argument("--heun-levels", type=int, default=None, help="default: the preset's 80 levels (158 NFE)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (2 are ~10x slower on a loaded 2-core box)")
    ap.add_argument("--clock", default="auto", choices=["auto", "wall", "cpu"],
                    help="clock of the ratios: auto = CPU time with one CPU thread, else wall clock")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-repeats", type=int, default=3, help="fewest timed blocks of a case that is run")
    ap.add_argument("--block-s", type=float, default=0.05, help="shortest timed block, in seconds")
    ap.add_argument("--budget-s", type=float, default=None, help="override every size's seconds of calls per case")
    ap.add_argument("--max-case-s", type=float, default=None,
                    help="override every size's longest case to measure (seconds for --min-repeats calls)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/latency.json"))
    args = ap.parse_args()

    results = {}
    for size in args.sizes:
        repeats, budget, max_case = PER_SIZE[size]
        settings = BenchSettings(tuple(args.batch_sizes), tuple(args.student_nfe), heun_levels=args.heun_levels,
                                 repeats=repeats, min_repeats=args.min_repeats, block_s=args.block_s,
                                 budget_s=args.budget_s or budget,
                                 max_case_s=args.max_case_s or max_case, device=args.device, threads=args.threads,
                                 clock=args.clock)
        models = {size: untrained_artifacts(preset(args.task, size))}
        results[size] = benchmark_artifacts(models, settings)
        results[size]["source"] = {size: f"untrained {args.task} ({size} preset)"}

    first = next(iter(results.values()))
    merged = {**first, "rows": [r for res in results.values() for r in res["rows"]],
              "summary": [s for res in results.values() for s in res["summary"]],
              "parameters": {k: v for res in results.values() for k, v in res["parameters"].items()},
              "settings": {"clock": first["settings"]["clock"], **{k: r["settings"] for k, r in results.items()}},
              "environment_per_size": {k: r["environment"] for k, r in results.items()},
              "source": {k: v for res in results.values() for k, v in res["source"].items()}}
    console = Console(width=max(Console().width, 130))
    console.print(latency_table(merged))
    for label, params in merged["parameters"].items():
        console.print(f"{label}: student {params['student'] / 1e6:.1f} M parameters, "
                      f"teacher {params['teacher'] / 1e6:.1f} M")
    for line in summary_lines(merged):
        console.print(line)
    write_json(args.out, merged)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
