"""How cases are timed: `torch.utils.benchmark.Timer` blocks, interleaved round-robin (docs/algorithm.md §7).

- Each case has one `Timer`. It sets the torch thread count while measuring, synchronizes an accelerator before
  reading the clock (the default wall clock), and runs `max(number/100, 2)` untimed calls before every block
  (`Timer.timeit`), so each block starts warm even right after another case ran.
- A block is `number` calls, `number` measured from an estimate of the call so that every block of a model ×
  batch size lasts about as long as its slowest call (`cases.plan_group`); its time ÷ `number` is one entry of the
  case's `times`. Statistics are taken over the blocks (median, quartiles).
- Timer's own `blocked_autorange` times one statement to the end before the next starts, so a load change on a
  shared machine would hit one case and not the others. Here the blocks go round-robin instead: one block of every
  case of a model × batch size per round, the same number of rounds for each, so the planner, the bare forward and
  the teacher whose ratios are the goals are sampled over the same stretch of time, under the same load.
- Each bare forward is first estimated with `blocked_autorange` (Timer's warm-up and median); planner cases are
  planned from it (`cases.plan_group`), too-slow ones extrapolated and never run.

Clocks: "wall" (Timer's default, accelerator-synchronized) or "cpu" (`time.process_time`, Timer's `timer=`
argument): CPU time of this process leaves out the time spent waiting for a core on a loaded machine, and on a CPU
device with one thread it is the compute cost itself. It does not see an accelerator's work, so it is refused
for any device but the CPU.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.benchmark import Timer

from .cases import Case, plan_group

CLOCKS = ("wall", "cpu")


def resolve_clock(clock: str, device: str, threads: int | None) -> str:
    """'auto' → 'cpu' (process CPU time) on a CPU device with one thread, else 'wall'; the clock of the ratios.

    With one thread on a CPU, CPU time is the compute cost without the time spent waiting for a core on a loaded
    machine; with several threads or an accelerator only the wall clock is meaningful.
    """
    cpu_device = torch.device(device).type == "cpu"
    if clock == "auto":
        return "cpu" if cpu_device and threads == 1 else "wall"
    if clock not in CLOCKS:
        raise ValueError(f"clock must be 'auto', 'wall' or 'cpu', got {clock!r}")
    if clock == "cpu" and not cpu_device:
        raise ValueError(f"clock 'cpu' (process CPU time) does not see the work of device {device!r}; use 'wall'")
    return clock


def make_timer(call: Callable[[], Any], clock: str, threads: int | None) -> Timer:
    """A Timer of `call()` on `clock`, run with `threads` torch threads (None: the current count)."""
    kwargs: dict[str, Any] = {"timer": time.process_time} if clock == "cpu" else {}
    return Timer("call()", globals={"call": call}, num_threads=threads or torch.get_num_threads(), **kwargs)


def estimate(case: Case, timer: Timer, min_run_time: float) -> None:
    """`case.estimate_s`: Timer's warmed-up median over about `min_run_time` seconds of calls (≥ 1 call)."""
    case.estimate_s = max(timer.blocked_autorange(min_run_time=min_run_time).median, 1e-9)


def time_block(case: Case, timer: Timer) -> float:
    """Time one block of `case.number` calls (after Timer's warm-up calls); append seconds per call; return the
    block's seconds."""
    m = timer.timeit(case.number)
    case.times.append(m.times[0])
    return m.raw_times[0]


def rounds(cases: Sequence[Case], timers: dict[int, Timer], advance: Callable[[float], None]) -> None:
    """Round-robin: one block of every unfinished case per round, until each has its `target` blocks."""
    active = [c for c in cases if len(c.times) < c.target]
    while active:
        for c in active:
            advance(time_block(c, timers[id(c)]))
        active = [c for c in active if len(c.times) < c.target]


def run_cases(groups: Sequence[Sequence[Case]], clock: str, threads: int | None, repeats: int, min_repeats: int,
              block_s: float, budget_s: float, max_case_s: float, progress: bool) -> None:
    """Estimate the forwards, plan every group (one model × batch size), then time it; fills each case's `times`."""
    from ..progress import progress_bar

    timers = {id(c): make_timer(c.call, clock, threads) for group in groups for c in group}
    forwards = [c for group in groups for c in group if c.is_forward]
    # auto_refresh=False: no drawing thread, whose CPU time the "cpu" clock would count
    with progress_bar("warming up networks", len(forwards), progress, transient=True, auto_refresh=False) as bar:
        for c in forwards:
            estimate(c, timers[id(c)], min_run_time=min(block_s * 4, 1.0))
            bar.advance()
        for group in groups:
            plan_group(group, block_s, repeats, min_repeats, budget_s, max_case_s)
        total = sum(c.target * c.number * c.estimate_s for group in groups for c in group)
        bar.update(description="timing (seconds of calls)", completed=0, total=total)
        for group in groups:
            rounds(group, timers, bar.advance)


def load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def environment_info(device: str, threads: int | None) -> dict[str, Any]:
    """What the numbers depend on: versions, device, threads, the machine and its load when measuring starts."""
    info = {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "device": device, "threads": threads or torch.get_num_threads()}
    if (load := load_average()) is not None:
        info["load_average_1min"] = load
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info
