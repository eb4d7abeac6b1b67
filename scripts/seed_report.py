"""The report's seed statistics: RACTD against CTD over tasks × training seeds (IQM, bootstrap CIs, P(improvement)).

Used by scripts/render_report.py; numbers from the committed evaluation files only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ractd.evaluate import mean_and_standard_error
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
                seed_suffix: Callable[[int], str], earlier_data: Sequence[str] = ()) -> list[str]:
    """Markdown: the σ_r-collapse study, per task and variant mean ± SE over the seeds that ran (and each seed), each
    variant against CTD on the same seeds, and the reward model's view of every run (results/report/reward_probe.json,
    written by scripts/reward_probe.py). Tasks in `earlier_data` are marked: their runs predate today's dataset."""
    rows = {"RACTD σ_r = 1 (the task's main runs)": "student", "CTD (σ_r = 0)": "ctd",
            **{f"RACTD {v}": f"ractd_{v}" for v in variants}}
    scores = {label: {task: {k: s for k in seeds
                             if (s := _score(out, task, f"{run}{seed_suffix(k)}-one_step-tracking")) is not None}
                      for task in tasks} for label, run in rows.items()}
    lines = ["### Why σ_r = 1 collapses: variants over seeds", "",
             "Each variant distils the seed's own teacher and reward model (NFE 1, 50 seeded episodes per cell). "
             "`sigma0.1`/`sigma0.3`: σ_r; `code_dsm`: the released code's DSM target (the reward then scores the "
             "jump G(x_σ, σ, σ_min) on the one-step path); `frozen_train`: the released code's frozen teacher and "
             "target with dropout active; `normalized`: σ_r divided by the batch's mean |R| (TD3+BC). Cells: mean over "
             f"seeds ± SE (seeds that ran / {len(seeds)}; each seed's score).", "",
             "| variant | " + " | ".join(f"{t} (earlier data)" if t in earlier_data else t for t in tasks) + " |",
             "|---|" + "---|" * len(tasks)]
    for label in rows:
        cells = []
        for task in tasks:
            got = list(scores[label][task].values())
            if not got:
                cells.append("not run")
            elif len(got) == 1:
                cells.append(f"{got[0]:.1f} (1/{len(seeds)})")
            else:
                mean, se = mean_and_standard_error(got)
                cells.append(f"{mean:.1f} ± {se:.1f} ({len(got)}/{len(seeds)}; "
                             + ", ".join(f"{g:.0f}" for g in got) + ")")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, "", *against_ctd_lines(scores, "CTD (σ_r = 0)"), *probe_lines(out, tasks, rows, seeds, seed_suffix,
                                                                              scores)]


def differences_from_ctd(per_task: Mapping[str, Mapping[int, float]], ctd: Mapping[str, Mapping[int, float]]
                         ) -> dict[str, dict[int, float]]:
    """{task: {seed: score − CTD's score}} over the (task, seed) pairs where both ran."""
    return {task: {k: s - ctd[task][k] for k, s in by_seed.items() if k in ctd[task]}
            for task, by_seed in per_task.items()}


def against_ctd_lines(scores: Mapping[str, Mapping[str, Mapping[int, float]]], ctd: str) -> list[str]:
    """Markdown: each variant against CTD on the same (task, seed) pairs: wins, mean difference ± SE, worst pair, and
    collapses (below half of CTD's score)."""
    robust = []  # (collapses, −wins, label, mean difference, SE, pairs)
    lines = ["Against CTD on the same task and training seed (pairs where both ran):", "",
             "| variant | pairs | above CTD | mean difference ± SE | worst pair | collapses (< ½ CTD) |",
             "|---|---|---|---|---|---|"]
    for label, per_task in scores.items():
        if label == ctd:
            continue
        pairs = [(task, k, x) for task, by_seed in differences_from_ctd(per_task, scores[ctd]).items()
                 for k, x in by_seed.items()]
        if not pairs:
            continue
        d = np.array([p[2] for p in pairs])
        mean, se = mean_and_standard_error(d)
        se_text = "" if np.isnan(se) else f" ± {se:.1f}"
        worst = min(pairs, key=lambda p: p[2])
        collapses = sum(per_task[t][k] < 0.5 * scores[ctd][t][k] for t, k, _ in pairs)
        lines.append(f"| {label} | {len(d)} | {int((d > 0).sum())} | {mean:+.1f}{se_text} | "
                     f"{worst[2]:+.1f} ({worst[0]}, seed {worst[1]}) | {collapses} |")
        robust.append((collapses, -int((d > 0).sum()), label, mean, se, len(d)))
    if robust:
        collapses, wins, label, mean, se, n = min(robust)
        resolved = not np.isnan(se) and mean > 2 * se
        lines += ["", f"Most robust (fewest collapses, then most pairs above CTD): {label}, {-wins} of {n} pairs above "
                  f"CTD, {collapses} collapses, {mean:+.1f} ± {se:.1f} on average — "
                  + ("beyond 2 SE." if resolved else "within 2 SE of CTD, so not a resolved improvement.")]
    return [*lines, "", *per_task_against_ctd_lines(scores, ctd)]


def per_task_against_ctd_lines(scores: Mapping[str, Mapping[str, Mapping[int, float]]], ctd: str) -> list[str]:
    """Markdown: each variant against CTD per task (a preset is chosen per task): seeds above CTD and the mean
    difference ± SE over seeds, in bold where every seed is above CTD and the mean is beyond 2 SE."""
    tasks = list(scores[ctd])
    lines = ["Per task (each task has its own preset): seeds above CTD, mean difference ± SE over seeds; **bold**: "
             "above CTD on every seed and beyond 2 SE.", "",
             "| variant | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for label, per_task in scores.items():
        if label == ctd:
            continue
        cells, diffs = [], differences_from_ctd(per_task, scores[ctd])
        for task in tasks:
            d = np.array(list(diffs[task].values()))
            if len(d) < 2:
                cells.append(f"{int((d > 0).sum())}/1, {d[0]:+.1f}" if len(d) else "–")
                continue
            mean, se = mean_and_standard_error(d)
            cell = f"{int((d > 0).sum())}/{len(d)}, {mean:+.1f} ± {se:.1f}"
            cells.append(f"**{cell}**" if (d > 0).all() and mean > 2 * se else cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (no ties expected in continuous scores)."""
    ra, rb = (np.argsort(np.argsort(np.asarray(x, dtype=np.float64))) for x in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


def probe_lines(out: Path, tasks: Sequence[str], rows: Mapping[str, str], seeds: Sequence[int],
                seed_suffix: Callable[[int], str], scores: Mapping[str, Mapping[str, Mapping[int, float]]]
                ) -> list[str]:
    """Markdown: R_ψ of each run's first actions against the data's (docs/algorithm.md §6.4), mean over seeds, and
    the rank correlation of the reward students' R_ψ gain with their score minus CTD's."""
    p = out / "reward_probe.json"
    probes = json.loads(p.read_text()) if p.exists() else {}
    if not probes:
        return []
    lines = ["Does the student exploit its reward model? R_ψ of the run's first action on 2,048 training windows, "
             "next to R_ψ of the data's own action (normalized return-to-go units: the data spans [−1, 1]); "
             "means over the seeds probed; the score is over the seeds evaluated (a teacher's Heun episodes: seed 0 "
             "only) (docs/algorithm.md §6.4, `scripts/reward_probe.py`).", "",
             "| task | run | seeds | score | R(plan) − R(data) | R(plan) above the data's max | actions at the "
             "data's bounds (data) | action RMS gap |", "|---|---|---|---|---|---|---|---|"]
    gains, bounds, rel = [], [], []
    for task in tasks:
        extra = {"RACTD, reward on a fresh one-step sample (Eq. 3.8)": "ractd_one_step_reward"}  # seed 0 only
        for label, run in {"teacher (Heun)": "teacher", **rows, **extra}.items():
            keys = {k: f"{task}/{run}{seed_suffix(k)}" for k in seeds}
            got = {k: probes[key] for k, key in keys.items() if key in probes}
            if not got:
                continue
            mean = {f: float(np.mean([g[f] for g in got.values()]))
                    for f in ("reward_plan", "reward_data", "above_data_max", "at_bound_plan", "at_bound_data",
                              "action_gap")}
            stem = "heun" if run == "teacher" else "one_step"
            sc = [x for k in got if (x := _score(out, task, f"{run}{seed_suffix(k)}-{stem}-tracking")) is not None]
            lines.append(f"| {task} | {label} | {len(got)} | {f'{np.mean(sc):.1f}' if sc else '–'} | "
                         f"{mean['reward_plan'] - mean['reward_data']:+.3f} | {mean['above_data_max']:.3f} | "
                         f"{mean['at_bound_plan']:.3f} ({mean['at_bound_data']:.3f}) | {mean['action_gap']:.3f} |")
            if run.startswith(("student", "ractd_")):
                for k, g in got.items():
                    ctd = scores["CTD (σ_r = 0)"][task].get(k)
                    own = _score(out, task, f"{run}{seed_suffix(k)}-one_step-tracking")
                    if ctd is not None and own is not None:
                        gains.append(g["reward_plan"] - g["reward_data"])
                        bounds.append(g["at_bound_plan"])
                        rel.append(own - ctd)
    lines.append("")
    if len(gains) >= 3:
        rho = spearman(gains, rel)
        reading = ("the more R_ψ scores a student's actions above the data's, the further it falls below CTD: "
                   "consistent with the student exploiting the reward model" if rho < -0.3 else
                   "a higher R_ψ goes with a better score than CTD's: the reward model is informative here, and "
                   "exploitation does not explain the losses" if rho > 0.3 else
                   "how far R_ψ scores a student above the data says nothing about its score against CTD: "
                   "exploitation of R_ψ does not explain the differences")
        above = {kind: [g["above_data_max"] for key, g in probes.items() if key.split("/", 1)[0] in tasks
                        and key.split("/", 1)[1].startswith(prefix)] for kind, prefix in
                 (("students", ("student", "ractd_")), ("teachers", ("teacher",)))}
        lines += [f"Over the {len(gains)} reward-aware students probed, the rank correlation of R(plan) − R(data) "
                  f"with the score minus CTD's on the same seed is ρ = {rho:+.2f}: {reading}. R_ψ rates at most "
                  f"{max(above['students']):.1%} of a reward-aware student's actions above the data's best return "
                  f"(the teachers' samples: at most {max(above['teachers'], default=float('nan')):.1%}). The fraction "
                  "of a student's action components at the data's bounds has rank correlation "
                  f"ρ = {spearman(bounds, rel):+.2f} with its score minus CTD's.", ""]
    return lines
