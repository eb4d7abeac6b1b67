"""What the timings say: one row per case (median, quartiles, ms/action, the two ratios), the summary against the
goals, the rich table and the summary lines (the JSON is these rows and summaries, see `run.benchmark_artifacts`).

Ratios are taken between medians: speedup vs the teacher = teacher ms/call ÷ this case's ms/call;
overhead vs the bare forward = ms/call ÷ (NFE × forward ms/call).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .cases import FORWARD, Case

GOAL_SPEEDUP = 150.0  # student (NFE 1) vs teacher (Heun, 158 NFE) per action
GOAL_OVERHEAD = 1.10  # one-step planner call vs one bare forward of its network


def stats(c: Case, forward: Case) -> dict[str, Any]:
    """Median, quartiles and minimum in ms; an extrapolated case is NFE × the forward's median, no quartiles."""
    if c.extrapolated:
        median = c.nfe * 1e3 * float(np.median(forward.times))
        return {"median_ms": median, "q25_ms": None, "q75_ms": None, "min_ms": None}
    q25, median, q75 = (float(q) for q in 1e3 * np.quantile(c.times, [0.25, 0.5, 0.75]))
    return {"median_ms": median, "q25_ms": q25, "q75_ms": q75, "min_ms": 1e3 * min(c.times)}


def case_rows(groups: Sequence[Sequence[Case]], clock: str) -> list[dict[str, Any]]:
    """One row per case: `stats`, ms_per_call (the median), iqr_ms, ms_per_action (÷ batch), calls per block and
    blocks, the speedup vs the group's teacher and the overhead vs the bare forwards (planner rows only)."""
    rows = []
    for group in groups:
        forward = {c.network: c for c in group if c.is_forward}
        st = {id(c): stats(c, forward[c.network]) for c in group}
        teacher = next((c for c in group if c.network == "teacher" and not c.is_forward), None)
        teacher_ms = None if teacher is None else st[id(teacher)]["median_ms"]
        for c in group:
            s = st[id(c)]
            ms = s["median_ms"]
            forward_ms = st[id(forward[c.network])]["median_ms"]
            planner = not c.is_forward
            rows.append({
                "model": c.model, "network": c.network, "sampler": c.sampler, "nfe": c.nfe, "batch": c.batch,
                "clock": clock, "measured": not c.extrapolated, "blocks": len(c.times),
                "calls_per_block": 0 if c.extrapolated else c.number, **s,
                "ms_per_call": ms, "ms_per_action": ms / c.batch,
                "iqr_ms": None if s["q25_ms"] is None else s["q75_ms"] - s["q25_ms"],
                "speedup_vs_teacher": teacher_ms / ms if planner and teacher_ms else None,
                "overhead_vs_forward": ms / (c.nfe * forward_ms) if planner and not c.extrapolated else None,
            })
    return rows


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per model and batch: student (NFE 1)/teacher speedup and one-step planner/bare forward, against the goals."""
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
                     "speedup_goal_met": one["speedup_vs_teacher"] >= GOAL_SPEEDUP}
        item |= {"planner_over_forward": one["overhead_vs_forward"],
                 "overhead_goal_met": one["overhead_vs_forward"] <= GOAL_OVERHEAD}
        out.append(item)
    return out


def _fmt(x: float | None, spec: str, suffix: str = "") -> str:
    return "—" if x is None else f"{x:{spec}}{suffix}"


CLOCK_NAMES = {"cpu": "CPU", "wall": "wall"}


def latency_table(result: Mapping[str, Any]) -> Any:
    """A rich Table: model, network, sampler, NFE, batch, ms/call (median, IQR), ms/action, calls × blocks, ratios."""
    from rich.table import Table

    env, clock = result["environment"], CLOCK_NAMES[result["settings"]["clock"]]
    load = ""
    if "load_average_1min" in env:
        load = f", load {env['load_average_1min']:.1f}"
        load += f"→{env['load_average_1min_end']:.1f}" if "load_average_1min_end" in env else ""
    table = Table(title=f"Planning latency ({env['device']}, {env['threads']} thread(s), torch {env['torch']}"
                        f"{load}; {clock} time)",
                  caption=f"Medians over timed blocks ({clock} time; IQR = interquartile range; calls × blocks). "
                          "≈ = extrapolated as NFE × measured bare forward (solver arithmetic not included). "
                          "× teacher = teacher ms/call ÷ this; overhead = ms/call ÷ (NFE × bare forward).")
    for col in ("model", "network", "sampler", "NFE", "batch", "ms/call", "IQR", "ms/action", "calls × blocks",
                "× teacher", "overhead"):
        table.add_column(col, justify="left" if col in ("model", "network", "sampler") else "right",
                         no_wrap=col in ("network", "sampler"))
    for r in result["rows"]:
        approx = "" if r["measured"] else "≈"
        table.add_row(r["model"], r["network"], r["sampler"], str(r["nfe"]), str(r["batch"]),
                      approx + _fmt(r["ms_per_call"], ".4g"), _fmt(r["iqr_ms"], ".2g"),
                      approx + _fmt(r["ms_per_action"], ".4g"),
                      f"{r['calls_per_block']} × {r['blocks']}" if r["measured"] else "—",
                      _fmt(r["speedup_vs_teacher"], ".1f", "×"), _fmt(r["overhead_vs_forward"], ".3f", "×"))
    return table


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    """One line per model and batch: the two ratios against their goals."""
    lines = []
    for s in result["summary"]:
        if "clock" not in s:
            continue
        parts = [f"{s['model']} batch {s['batch']} ({CLOCK_NAMES[s['clock']]} time):"]
        if "student_over_teacher" in s:
            how = "" if s["teacher_measured"] else " (teacher extrapolated)"
            parts.append(f"student/teacher {s['student_over_teacher']:.1f}×{how}, goal ≥ {GOAL_SPEEDUP:g}× "
                         f"{'met' if s['speedup_goal_met'] else 'NOT met'};")
        parts.append(f"one-step planner/bare forward {s['planner_over_forward']:.3f}×, goal ≤ {GOAL_OVERHEAD:.2f}× "
                     f"{'met' if s['overhead_goal_met'] else 'NOT met'}")
        lines.append(" ".join(parts))
    return lines
