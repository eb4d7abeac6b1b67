"""Per-action planning latency: student NFE 1–4, teacher Heun, DDIM, and the bare network forward
(docs/algorithm.md §7). Inference only: models come from `ractd.artifact` and run behind `ractd.planning.Planner`.

- `cases`: which calls are timed (bare forward on ready tensors, the planner call per sampler), the models
  (trained run folders or untrained networks of a config), and the extrapolation rule for too-slow cases;
- `timing`: `torch.utils.benchmark.Timer` blocks, interleaved round-robin, on the wall or the CPU clock;
- `report`: rows, ratios, the summary against the goals, the rich table and its summary lines;
- `run`: settings and the entry points (`benchmark_latency`, `benchmark_networks`, `ractd bench`), JSON.
"""

from .cases import FORWARD, Case, build_cases, plan_group, random_normalizers, run_artifacts, untrained_artifacts
from .report import GOAL_OVERHEAD, GOAL_SPEEDUP, case_rows, latency_table, summarize, summary_lines
from .run import BenchSettings, bench_command, benchmark_artifacts, benchmark_latency, benchmark_networks
from .timing import CLOCKS, environment_info, resolve_clock, run_cases

__all__ = [
    "CLOCKS", "FORWARD", "GOAL_OVERHEAD", "GOAL_SPEEDUP", "BenchSettings", "Case", "bench_command",
    "benchmark_artifacts", "benchmark_latency", "benchmark_networks", "build_cases", "case_rows",
    "environment_info", "latency_table", "plan_group", "random_normalizers", "resolve_clock", "run_artifacts",
    "run_cases", "summarize", "summary_lines", "untrained_artifacts",
]
