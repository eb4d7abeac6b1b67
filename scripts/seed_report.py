"""The report's seed statistics: RACTD against CTD over tasks × training seeds (IQM, bootstrap CIs, P(improvement)).

Used by scripts/render_report.py; numbers from the committed evaluation files only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ractd.evaluate.aggregate import (
    aggregate_intervals,
    mean_and_se,
    plot_performance_profiles,
    probability_of_improvement,
    score_matrix,
)

METHODS = (("CTD", "ctd"), ("RACTD", "student"))  # (label, run name) of the one-step students


def load_eval(out: Path, task: str, stem: str) -> dict | None:
    """The evaluation results/report/eval/<task>/<stem>.json, or None if it has not run."""
    p = out / "eval" / task / f"{stem}.json"
    return json.loads(p.read_text()) if p.exists() else None


def _score(out: Path, task: str, stem: str) -> float | None:
    d = load_eval(out, task, stem)
    return d["normalized_score"]["mean"] if d else None


def seed_statistics_lines(out: Path, seeds: Mapping[str, Sequence[int]], seed_suffix: Callable[[int], str]
                          ) -> list[str]:
    """Markdown: the aggregate over the tasks whose every seed ran for both methods, and the profile figure."""
    per_task: dict[str, dict[str, dict[int, float]]] = {label: {} for label, _ in METHODS}
    for task, extra in seeds.items():
        runs = [0, *extra]
        got = {label: {k: _score(out, task, f"{run}{seed_suffix(k)}-one_step-tracking") for k in runs}
               for label, run in METHODS}
        common = [k for k in runs if all(got[label][k] is not None for label, _ in METHODS)]
        if len(common) >= 3:
            for label, _ in METHODS:
                per_task[label][task] = {k: got[label][k] for k in common}
    tasks = sorted(per_task["CTD"])
    if not tasks:
        return []
    n = min(len(per_task["CTD"][t]) for t in tasks)  # the same seeds on every task (stratified bootstrap)
    for label, _ in METHODS:
        per_task[label] = {t: dict(sorted(per_task[label][t].items())[:n]) for t in tasks}
    scores = {label: score_matrix(per_task[label], tasks) for label, _ in METHODS}
    agg = aggregate_intervals(scores, reps=50_000, seed=0)
    poi = probability_of_improvement(scores["RACTD"], scores["CTD"], reps=5_000, seed=0)
    fig = plot_performance_profiles(scores, out / "seed_profiles.png",
                                    title=f"{len(tasks)} tasks × {n} training seeds, NFE 1")

    def ci(iv, digits: int = 1) -> str:
        return f"{iv.point:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"

    lines = ["### Over tasks and seeds (rliable)", "",
             f"Tasks with {n} whole-pipeline training seeds for both students: {', '.join(tasks)} "
             f"({'all' if len(tasks) == 9 else len(tasks)} of the nine locomotion tasks"
             f"{'' if len(tasks) == 9 else '; the others have no runs yet'}). Per task mean ± SE over "
             "seeds; aggregate IQM and mean over all runs × tasks with 95 % stratified bootstrap intervals (50,000 "
             "resamples); P(RACTD > CTD) is the probability that a RACTD run beats a CTD run on a random task, with "
             "its 95 % bootstrap interval.", "",
             "| method | " + " | ".join(tasks) + " | IQM [95 % CI] | mean [95 % CI] |",
             "|---|" + "---|" * (len(tasks) + 2)]
    for label, _ in METHODS:
        mean, se = mean_and_se(scores[label])
        cells = " | ".join(f"{m:.1f} ± {s:.1f}" for m, s in zip(mean, se, strict=True))
        lines.append(f"| {label} | {cells} | {ci(agg[label]['iqm'])} | {ci(agg[label]['mean'])} |")
    wins = {t: sum(per_task["RACTD"][t][k] > per_task["CTD"][t][k] for k in per_task["CTD"][t]) for t in tasks}
    every = [t for t in tasks if wins[t] == n]
    lines += ["", "RACTD above CTD on the same training seed: " + ", ".join(f"{t} {wins[t]}/{n}" for t in tasks)
              + ". " + (f"On every seed: {', '.join(every)} (candidates for the embedded default, which must also "
                        "fit `make demo`'s time budget)." if every else
                        "No task has RACTD above CTD on every seed, so no task shows RACTD's advantage reliably "
                        "enough to be the embedded default.")]
    lines += ["", f"P(RACTD > CTD) = {ci(poi, 2)}: "
              + ("the interval contains 0.5, so these runs do not show RACTD better than CTD."
                 if poi.low <= 0.5 <= poi.high else
                 ("RACTD is reliably better." if poi.low > 0.5 else "CTD is reliably better.")), "",
              f"![performance profiles](../{fig.relative_to(out.parent.parent)})", ""]
    return lines


def study_lines(out: Path, tasks: Sequence[str], variants: Mapping[str, Sequence[str]], seeds: Sequence[int],
                seed_suffix: Callable[[int], str]) -> list[str]:
    """Markdown: the σ_r-collapse study, per task and variant mean ± SE over the seeds that ran (and each seed)."""
    rows = {"RACTD σ_r = 1 (the task's main runs)": "student", "CTD (σ_r = 0)": "ctd",
            **{f"RACTD {v}": f"ractd_{v}" for v in variants}}
    lines = ["### Why σ_r = 1 collapses: variants over seeds", "",
             "Each variant distils the seed's own teacher and reward model (NFE 1, 50 seeded episodes per cell). "
             "`sigma0.1`/`sigma0.3`: σ_r; `code_dsm`: the released code's DSM target (the reward then scores the "
             "jump G(x_σ, σ, σ_min) on the one-step path); `frozen_train`: the released code's frozen teacher and "
             "target with dropout active; `normalized`: σ_r divided by the batch's mean |R| (TD3+BC). Cells: mean over "
             f"seeds ± SE (seeds that ran / {len(seeds)}).", "",
             "| variant | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for label, run in rows.items():
        cells = []
        for task in tasks:
            got = [s for k in seeds if (s := _score(out, task, f"{run}{seed_suffix(k)}-one_step-tracking")) is not None]
            if not got:
                cells.append("not run")
            elif len(got) == 1:
                cells.append(f"{got[0]:.1f} (1/{len(seeds)})")
            else:
                se = float(np.std(got, ddof=1) / np.sqrt(len(got)))
                cells.append(f"{np.mean(got):.1f} ± {se:.1f} ({len(got)}/{len(seeds)}; "
                             + ", ".join(f"{g:.0f}" for g in got) + ")")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]
