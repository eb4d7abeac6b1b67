"""Render docs/results.md from results/report/ (eval JSON, latency.json, timings.json) — no number typed by hand.

Used by `python scripts/reproduce.py report`.
"""

from __future__ import annotations

import json
import platform
from datetime import date
from pathlib import Path

import numpy as np
from experiments import (
    EVALS,
    LONG_STUDENT_TASKS,
    SEEDS,
    STUDY,
    STUDY_SEEDS,
    STUDY_TASKS,
    seed_suffix,
    task_of,
)  # scripts/experiments.py
from ooc_report import ooc_lines  # scripts/ooc_report.py
from roundabout_report import roundabout_lines  # scripts/roundabout_report.py
from seed_report import load_eval as _load  # scripts/seed_report.py
from seed_report import seed_statistics_lines, study_lines

from ractd.evaluate import mean_and_standard_error

# how each committed quickstart record (results/report/quickstart*.json) was timed: the record does not say
QUICKSTART_TIMING = {
    "quickstart": "1 thread; the other core busy",
    "quickstart-hopper-medium": "alone on both cores, in a fresh clone, after `make install`",
    **{f"quickstart-hopper-medium-seed{k}": "1 thread, beside another job" for k in (1, 2)},
}
# Thesis (Duan 2025) numbers, for the comparison columns only.
PAPER_RACTD = {"hopper-medium-replay": 104.9, "hopper-medium": 121.0, "hopper-medium-expert": 129.0,
               "walker2d-medium-replay": 91.5, "walker2d-medium": 98.9, "walker2d-medium-expert": 119.6,
               "halfcheetah-medium-replay": 57.9, "halfcheetah-medium": 59.3, "halfcheetah-medium-expert": 95.9}
# Table 3.2; the teacher column is Diffuser's (the thesis reports no Heun-teacher row for Maze2d)
PAPER_MAZE = {"maze2d-umaze": {"teacher": "113.9 (Diffuser)", "ctd": 123.4, "student": 125.7},
              "maze2d-medium": {"teacher": "121.5 (Diffuser)", "ctd": 119.8, "student": 130.8}}
PAPER_T33 = {"heun": (114.2, 2134.0, 80), "ddim:10": (60.6, 208.0, 15), "one_step": (104.9, 15.0, 1),
             "multistep:2": (109.8, 24.1, 2), "multistep:3": (108.7, 37.7, 3), "multistep:4": (107.9, 51.7, 4)}
# D4RL's -v2 locomotion files: (transitions, episodes, mean normalized episode return), as commonly reported
# (computed from the released files; None where not quoted). Random levels: size only.
D4RL_V2 = {
    "hopper-random": (1_000_000, None, None), "hopper-medium": (1_000_000, 2186, 44.3),
    "hopper-medium-replay": (402_000, 2041, 15.0), "hopper-expert": (1_000_000, 1027, 108.5),
    "hopper-medium-expert": (2_000_000, 3213, 64.8),
    "walker2d-random": (1_000_000, None, None), "walker2d-medium": (1_000_000, 1191, 62.1),
    "walker2d-medium-replay": (302_000, 1093, 14.8), "walker2d-expert": (1_000_000, 1000, 106.7),
    "walker2d-medium-expert": (2_000_000, 2191, 82.7),
    "halfcheetah-random": (1_000_000, 1000, None), "halfcheetah-medium": (1_000_000, 1000, 40.7),
    "halfcheetah-medium-replay": (202_000, 202, 27.2), "halfcheetah-expert": (1_000_000, 1000, 88.1),
    "halfcheetah-medium-expert": (2_000_000, 2000, 64.3),
}
PAPER_T34 = {("teacher", "ctd"): 50.8, ("rteacher", "rteacher_ctd"): 96.2, ("teacher", "student"): 104.9,
             ("rteacher", "rteacher_ractd"): 96.0}


def _read(path: Path) -> dict:
    """A committed JSON file of results/report/ ({} if absent): the report never reads runs/ or datasets."""
    return json.loads(path.read_text()) if path.exists() else {}


def _fmt(d: dict | None, key: str = "normalized_score") -> str:
    if d is None or d.get(key) is None:
        return "not run"
    s = d[key]
    return f"{s['mean']:.1f} ± {s['se']:.1f}" if s.get("se") is not None else f"{s['mean']:.1f}"


def _missing_evaluations(out: Path) -> list[str]:
    """One bullet per section of scripts/experiments.py with an evaluation not yet in results/report/eval/."""
    bullets = []
    for section, evals in EVALS.items():
        missing = [f"{run} {sampler} {controller}" for run, sampler, controller in evals
                   if _load(out, task_of(section), f"{run}-{sampler.replace(':', '')}-{controller}") is None]
        if missing:
            bullets.append(f"- Section `{section}` not finished: {', '.join(missing)}. "
                           f"`python scripts/reproduce.py run --section {section}` resumes it.")
    return bullets


def render(out: Path, target: Path) -> None:
    import torch

    lat = _read(out / "latency.json")
    timings = _read(out / "timings.json")
    runs = _read(out / "runs.json").get("runs", {})  # "<task>/<run>" -> status, steps, wall time, final metrics
    datasets = _read(out / "datasets.json").get("datasets", {})  # name -> card summary
    # the datasets the committed runs were trained on, where they differ from today's generated ones
    trained_on = _read(out / "datasets.json").get("trained_on", {})
    run_datasets = {**datasets, **trained_on}
    lines = [
        "# Reproduction report (CPU, generated data)",
        "",
        f"Rendered {date.today()} by `python scripts/reproduce.py report` from `results/report/` (produced by "
        "`python scripts/reproduce.py run`). Machine: "
        f"{platform.machine()}, 2 cores, no GPU, torch {torch.__version__}, Python {platform.python_version()}; "
        "1 torch thread; other jobs shared the 2 cores during the runs, so timings are upper bounds.",
        "",
        "All models use the `cpu` presets (U-Net [16, 32, 64], 1,500 teacher and 400 student optimizer steps; "
        "one maze student 1,600) on "
        "datasets generated by `ractd data generate` (D4RL recipe, not the D4RL files). Scores are D4RL normalized "
        "scores ×100 of the **true episode return** Σ r_t, mean ± standard error over seeded episodes "
        "(episode i reset with seed i). These are not the paper's models or data; the comparison columns are for "
        "orientation only.",
        "",
    ]

    # The embedded default (make demo = ractd quickstart), copied from results/quickstart*/results.json:
    # quickstart.json (maze2d-umaze), quickstart-<task>.json (`ractd quickstart --task <task>`; its other seeds,
    # quickstart-<task>-seed<k>.json, are read under 'Training seeds')
    for qs_path in sorted(out.glob("quickstart*.json"), key=lambda p: (p.stem != "quickstart", p.stem)):
        if "-seed" in qs_path.stem:
            continue
        qs = json.loads(qs_path.read_text())
        command = "`make demo` (`ractd quickstart`)" if qs_path.stem == "quickstart" else \
            f"`ractd quickstart --task {qs['task']}`"
        lines += [f"## {command}: {qs['task']}, {qs['dataset_steps']:,}-step dataset, "
                  f"{qs['episodes']} seeded episodes", "",
                  f"Wall time **{qs['total_seconds'] / 60:.1f} min** on this machine "
                  f"({QUICKSTART_TIMING.get(qs_path.stem, 'conditions not recorded')}). "
                  "Stages (s): " + ", ".join(f"{k} {v:.0f}" for k, v in qs["stage_seconds"].items()) + ".", "",
                  "| method | NFE | score (mean ± SE) | ms / action (batch 1) | speed-up vs teacher |",
                  "|---|---|---|---|---|"]
        for r in qs["rows"]:
            sp = r.get("speedup_vs_teacher")
            lines.append(f"| {r['method']} | {r['nfe']} | {r['score_mean']:.1f} ± {r['score_se']:.1f} | "
                         f"{r['ms_per_action']:.2f} | {f'{sp:.0f}×' if sp else '–'} |")
        if qs_path.stem != "quickstart":
            lines.append("")
            lines.append(f"A single training run on a {qs['dataset_steps']:,}-step dataset; see 'Training seeds' for "
                         "how far one run of this task moves with the training seed.")
        lines.append("")

    # Datasets generated on this machine (results/report/datasets.json, kept by `reproduce.py` and
    # scripts/generate_locomotion.sh), locomotion rows next to D4RL's -v2 files
    detail = _read(out / "datasets.json").get("locomotion", {})
    lines += ["## Datasets generated here (`ractd data generate NAME`, seed 0)", "",
              "| dataset | steps | episodes | normalized return (mean ± std per episode) | generation seconds | "
              "D4RL -v2 steps | D4RL -v2 normalized mean |",
              "|---|---|---|---|---|---|---|"]
    for name, card in sorted(datasets.items()):
        nr, secs = card.get("normalized_return") or {}, card.get("seconds")
        d4rl_steps, _, d4rl_mean = D4RL_V2.get(name, (None, None, None))
        score = f"{nr['mean']:.1f} ± {nr['std']:.1f}" if "mean" in nr else "– (no reference scores)"
        lines.append(f"| {name} | {card['steps']:,} | {card['episodes']:,} | {score} | "
                     f"{f'{secs:.0f}' if secs else '–'} | {f'{d4rl_steps:,}' if d4rl_steps else '–'} | "
                     f"{d4rl_mean if d4rl_mean is not None else '–'} |")
    lines += ["", "Maze2d 'episodes' are goal-to-goal segments, so their per-episode normalized returns are not on "
              "the evaluation scale. Locomotion: rolled out from the PPO behaviour policies shipped with ractd "
              "(docs/datasets.md); D4RL's columns are the -v2 files' sizes and mean normalized episode returns as "
              "commonly reported (the files are not downloadable here).", ""]
    replay = {n: d for n, d in sorted(detail.items()) if n.endswith("-medium-replay")}
    if replay:
        lines += ["Medium-replay stand-in (learner snapshots re-rolled, see docs/datasets.md) against D4RL's "
                  "replay buffers: normalized return per episode.", "",
                  "| dataset | steps (D4RL) | episodes (D4RL) | p10 | p50 | p90 | max | mean (D4RL) |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, d in replay.items():
            card, (d4rl_steps, d4rl_episodes, d4rl_mean) = datasets[name], D4RL_V2[name]
            q = d["normalized_quantiles"]
            lines.append(f"| {name} | {card['steps']:,} ({d4rl_steps:,}) | {card['episodes']:,} ({d4rl_episodes:,}) | "
                         f"{q['p10']:.1f} | {q['p50']:.1f} | {q['p90']:.1f} | {q['p100']:.1f} | "
                         f"{card['normalized_return']['mean']:.1f} ({d4rl_mean}) |")
        lines.append("")

    # Table 3.3: speed vs quality
    task = "hopper-medium-replay"
    lines += ["## Speed vs quality (thesis Table 3.3 / 3.5), hopper-medium-replay", "",
              "| sampler | NFE | score (ours) | ms / action (ours, batch 1) | speed-up vs teacher | paper score | "
              "paper ms |", "|---|---|---|---|---|---|---|"]
    teacher_ms = lat.get(f"{task}/teacher-heun-tracking", {}).get("ms_per_action")
    rows = [("teacher Heun", "teacher-heun-tracking", "heun"), ("DDIM (ε-pred. teacher)", "ddpm-ddim10-tracking",
            "ddim:10")] + [(f"student NFE {k}", f"student-{'one_step' if k == 1 else f'multistep{k}'}-tracking",
                           "one_step" if k == 1 else f"multistep:{k}") for k in (1, 2, 3, 4)]
    for label, stem, key in rows:
        d = _load(out, task, stem)
        L = lat.get(f"{task}/{stem}", {})
        ms = L.get("ms_per_action")
        speed = f"{teacher_ms / ms:.0f}×" if ms and teacher_ms else "–"
        p = PAPER_T33.get(key)
        lines.append(f"| {label} | {L.get('nfe', '–')} | {_fmt(d)} | {f'{ms:.2f}' if ms else '–'} | {speed} | "
                     f"{p[0] if p else '–'} | {p[1] if p else '–'} |")
    lines += ["", "Paper timings are on a V100 and the paper counts the teacher as 80 NFE; its Heun solver makes 158 "
              "network evaluations (docs/algorithm.md §3.6), which is what we count.", ""]

    # Network latency, paper vs cpu size (benchmarks/latency.py --out results/report/latency_networks.json)
    net_path = out / "latency_networks.json"
    if net_path.exists():
        net = json.loads(net_path.read_text())
        params = net.get("parameters", {})
        lines += ["## Latency of paper-size vs cpu-size hopper networks (`benchmarks/latency.py`)", "",
                  f"Untrained networks from the presets (parameters: {json.dumps(params)}), 1 thread, CPU-time "
                  "medians (the machine was shared; the paper rows' wall-clock medians are in the JSON). ≈: "
                  "extrapolated as NFE × the measured forward (too slow to run)."
                  + "".join(f" The {size} rows were re-measured on {r['date']}, {r['why']}."
                            for size, r in sorted(net.get("remeasured", {}).items())), "",
                  "| size | sampler | NFE | batch | ms / call | speed-up vs teacher | overhead vs NFE × forward |",
                  "|---|---|---|---|---|---|---|"]
        for r in net["rows"]:
            sp, ov = r.get("speedup_vs_teacher"), r.get("overhead_vs_forward")
            sampler = f"bare forward ({r['network']} net)" if r["sampler"] == "forward" else r["sampler"]
            lines.append(f"| {r['model']} | {sampler} | {r['nfe']} | {r['batch']} | "
                         f"{'' if r.get('measured', True) else '≈'}{r['ms_per_call']:.2f} | "
                         f"{f'{sp:.1f}×' if sp else '–'} | {f'{ov:.3f}×' if ov else '–'} |")
        lines.append("")
        for sm in net.get("summary", []):
            lines.append(f"- {sm['model']}, batch {sm['batch']}: student/teacher {sm['student_over_teacher']:.1f}× "
                         f"(goal ≥ 150×: {'met' if sm['speedup_goal_met'] else 'not met'}), planner/bare forward "
                         f"{sm['planner_over_forward']:.3f}× (goal ≤ 1.10×: "
                         f"{'met' if sm['overhead_goal_met'] else 'not met'})")
        lines.append("")

    # Table 3.4
    lines += ["## Reward-aware distillation (thesis Table 3.4), hopper-medium-replay", "",
              "| | unconditioned teacher | reward-aware teacher |", "|---|---|---|"]
    for label, (a, b) in (("unconditioned student (CTD)", ("ctd", "rteacher_ctd")),
                          ("reward-aware student (RACTD)", ("student", "rteacher_ractd"))):
        cells = []
        for run, teacher in ((a, "teacher"), (b, "rteacher")):
            d = _load(out, task, f"{run}-one_step-tracking")
            cells.append(f"{_fmt(d)} (paper {PAPER_T34[(teacher, run)]})")
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    teachers = [_fmt(_load(out, task, f"{t}-heun-tracking")) for t in ("teacher", "rteacher")]
    lines += [f"| the teacher itself (Heun, 158 NFE) | {teachers[0]} (paper {PAPER_T33['heun'][0]}) | "
              f"{teachers[1]} |", "",
              "The reward-aware teacher adds σ·(−R(D(x_σ, σ))) to its EDM loss (`teacher.reward_guidance=1.0`; the "
              "reference code has no config for it, docs/algorithm.md §8). Here it is a better planner than the plain "
              "teacher, yet "
              "its one-step CTD student stays at the plain CTD level: reward on the teacher side does not survive "
              "distillation in 400 steps.", ""]

    def final_reward(run: str) -> str:  # −L_reward at the last step = R(s, â) on the student's samples
        r = (runs.get(f"{task}/{run}", {}).get("metrics") or {}).get("reward")
        return f"{-r:.2f}" if r is not None else "–"

    lines += ["Where the reward loss is applied (docs/algorithm.md §8 item 3; same teacher, reward model, σ_r = 1 "
              "and step budget). Last column: the reward model's prediction on the samples the loss scores at the "
              "end of training; the data's normalized returns-to-go lie in [−1, 1], so a value above 1 is a sample the "
              "reward model over-rates off the data.", "",
              "| reward loss on | RACTD one-step score | mean episode length | R(s, â) at the end of training |",
              "|---|---|---|---|"]
    for label, run in (("the DSM prediction as the `cpu` preset makes it: g(x_σ, σ, σ) (`dsm_on=denoiser`, "
                        "`reward_on=dsm_pred`)", "student"),
                       ("the released code's DSM prediction G(x_σ, σ, σ_min) (`dsm_on=jump_to_sigma_min`, "
                        "`reward_on=dsm_pred`)", "ractd_code_dsm"),
                       ("a fresh one-step sample G(x_T, T, σ_min) (paper Eq. 3.8, `reward_on=\"one_step\"`)",
                        "ractd_one_step_reward")):
        d = _load(out, task, f"{run}-one_step-tracking")
        length = f"{np.mean(d['lengths']):.0f}" if d else "–"
        lines.append(f"| {label} | {_fmt(d)} | {length} | {final_reward(run)} |")
    lines.append("")

    # Maze2d
    geo = json.loads((out / "maze_plans.json").read_text()) if (out / "maze_plans.json").exists() else {}
    lines += ["## Maze2d (thesis Table 3.2)", "", "| task | method | tracking controller | inverse dynamics | "
              "NFE | ms / plan | plan step ‖Δxy‖ | plan start − agent | paper |", "|---" * 9 + "|"]
    for mtask, papers in PAPER_MAZE.items():
        for run, sampler, label in (("teacher", "heun", "teacher (Heun)"), ("ctd", "one_step", "CTD"),
                                    ("student", "one_step", "RACTD"),
                                    ("student_long", "one_step", "RACTD, 1,600 student steps (4×)")):
            t = _load(out, mtask, f"{run}-{sampler}-tracking")
            if t is None and run == "student_long":
                continue
            i = _load(out, mtask, f"{run}-{sampler}-inverse_dynamics")
            L = lat.get(f"{mtask}/{run}-{sampler}-tracking", {})
            ms = L.get("ms_per_action")
            g = geo.get(f"{mtask}/{run}-{sampler}", {})
            shape = [f"{g[k]:.3f}" if k in g else "–" for k in ("mean_step", "start_offset")]
            lines.append(f"| {mtask} | {label} | {_fmt(t)} | {_fmt(i)} | {L.get('nfe', '–')} | "
                         f"{f'{ms:.1f}' if ms else '–'} | {shape[0]} | {shape[1]} | "
                         f"{papers.get(run.replace('_long', '')) or '–'} |")
    data_steps = ", ".join(f"{t} {geo[f'{t}/dataset']['mean_step']:.3f}" for t in PAPER_MAZE if f"{t}/dataset" in geo)
    lines += ["", "Horizons: umaze 64, medium 128 (the `cpu` presets plan half the paper's horizon). The teacher "
              "makes one 158-NFE plan per episode; 'ms / plan' is batch 1. Plan shape, on the 50 evaluation "
              "start/goal pairs: the mean distance between consecutive waypoints (the dataset's controller moves "
              f"{data_steps or '–'} per step) and how far the first waypoint lies from the agent. The one-step "
              "students' plans are several times rougher than the teacher's; on maze2d-medium they also start far "
              "from the agent, and the tracking controller, which chases the next waypoint, then runs into walls. "
              "maze2d-large is generated (`ractd data generate`) but not trained here: see 'Not reproduced'.", ""]

    # Evaluation bug
    lines += ["## The evaluation bug's size (docs/algorithm.md §8 item 1)", "",
              "Same episodes, two metrics: the true return Σ r_t and the reference code's Σ_t max_{τ≤t} r_τ.", "",
              "| task | run | true score | reference-code metric | inflation |", "|---|---|---|---|---|"]
    for tdir in sorted((out / "eval").glob("*")) if (out / "eval").exists() else []:
        if tdir.name.startswith("maze"):
            continue
        for p in sorted(tdir.glob("*.json")):
            d = json.loads(p.read_text())
            if d.get("legacy_running_max_normalized_scores") is None:
                continue
            true = np.mean(d["normalized_scores"])
            legacy = np.mean(d["legacy_running_max_normalized_scores"])
            run = p.stem.removesuffix("-tracking")  # a locomotion policy acts directly: no controller
            lines.append(f"| {tdir.name} | {run} | {true:.1f} | {legacy:.1f} | {legacy - true:+.1f} |")
    lines.append("")

    # Locomotion in the paper's layout
    lines += ["## Locomotion (thesis Table 3.1 layout)", "",
              "| task | our dataset (mean per episode) | teacher Heun (ours) | CTD (ours) | "
              "RACTD (ours, cpu preset unless noted) | RACTD (paper) | why they differ |",
              "|---|---|---|---|---|---|---|"]
    for t, paper in PAPER_RACTD.items():
        s, c = _load(out, t, "student-one_step-tracking"), _load(out, t, "ctd-one_step-tracking")
        card = run_datasets.get(t) if s else datasets.get(t)
        data_mean = (card.get("normalized_return") or {}).get("mean") if card else None
        if s:
            why = "generated data; [16,32,64] U-Net, 400 student steps; true return (paper: running-max sum)"
            weight = runs.get(f"{t}/student", {}).get("reward_weight")
            if weight is not None:
                from ractd.presets import preset

                default = preset(t, "cpu").student.ctm.reward_weight
                why += f"; σ_r = {weight:g}" + ("" if weight == default else f" (overrides the preset's {default:g})")
        elif card:
            why = "dataset generated from the shipped behaviour policies, not trained yet (session time)"
        else:
            why = "no dataset generated here yet (`ractd data generate`)"
        lines.append(f"| {t} | {f'{data_mean:.1f}' if data_mean is not None else '–'} | "
                     f"{_fmt(_load(out, t, 'teacher-heun-tracking'))} | {_fmt(c)} | {_fmt(s)} | {paper} | {why} |")
    lines.append("")

    # Distillation budget (sections <task>/long): the seed-0 RACTD student with 4× the student steps
    long_rows = [(t, _load(out, t, "student_long-one_step-tracking")) for t in LONG_STUDENT_TASKS]
    if any(d for _, d in long_rows):
        lines += ["### Distillation budget", "",
                  "The `cpu` preset distils for 400 optimizer steps. The same seed-0 teacher and reward model, "
                  "RACTD distilled for 1,600 steps (`student.train.epochs=32`, section `<task>/long`), each student "
                  "sampled in one step (NFE 1) and in four (`multistep:4`, NFE 4):", "",
                  "| task | teacher Heun (NFE 158) | CTD, 400 steps, NFE 1 | RACTD, 400 steps, NFE 1 | NFE 4 | "
                  "RACTD, 1,600 steps, NFE 1 | NFE 4 | 1,600-step training |", "|---|---|---|---|---|---|---|---|"]
        for t, d in long_rows:
            wall = timings.get(f"{t}/student_long")
            cells = [_fmt(_load(out, t, stem)) for stem in (
                "teacher-heun-tracking", "ctd-one_step-tracking", "student-one_step-tracking",
                "student-multistep4-tracking")]
            cells += [_fmt(d), _fmt(_load(out, t, "student_long-multistep4-tracking"))]
            lines.append(f"| {t} | " + " | ".join(cells) + f" | {f'{wall / 60:.0f} min' if wall else '–'} |")
        lines.append("")
        for t, _ in long_rows:  # the reading, where every cell of a row ran
            got = {stem: _load(out, t, stem) for stem in (
                "teacher-heun-tracking", "student-one_step-tracking", "student-multistep4-tracking",
                "student_long-one_step-tracking", "student_long-multistep4-tracking")}
            if not all(got.values()):
                continue
            m = {k: v["normalized_score"]["mean"] for k, v in got.items()}
            lines += [f"On {t}, four steps of the same students score {m['student-multistep4-tracking']:.1f} "
                      f"(400 steps) and {m['student_long-multistep4-tracking']:.1f} (1,600) against the teacher's "
                      f"{m['teacher-heun-tracking']:.1f}, while one step scores {m['student-one_step-tracking']:.1f} "
                      f"and {m['student_long-one_step-tracking']:.1f}: "
                      + ("the teacher and the multistep consistency map are fine, the one-step map is what fails, "
                         "and four times the distillation steps do not fix it." if
                         m["student_long-multistep4-tracking"] > 2 * m["student_long-one_step-tracking"] and
                         m["student_long-one_step-tracking"] < 0.5 * m["teacher-heun-tracking"] else
                         "no single stage stands out."), ""]

    # Training-seed spread (sections <task>/seed<k>): the whole pipeline retrained with seed k
    lines += ["## Training seeds", "",
              "Teacher, reward model and both students retrained per seed, evaluated on the same 50 seeded episodes. "
              "The ± of a cell is over episodes; the one-step policies are nearly deterministic, so it leaves out the "
              "training-seed spread, which the last column measures (mean ± SE over the seeds that ran).", ""]
    for t, extra in SEEDS.items():
        seeds = [0, *extra]
        lines += [f"| {t}, NFE 1 | " + " | ".join(f"seed {k}" for k in seeds) + " | over seeds |",
                  "|---|" + "---|" * (len(seeds) + 1)]
        for label, run in (("CTD", "ctd"), ("RACTD", "student")):
            ds = [_load(out, t, f"{run}{seed_suffix(k)}-one_step-tracking") for k in seeds]
            means = [d["normalized_score"]["mean"] for d in ds if d]
            over = ("{:.1f} ± {:.1f}".format(*mean_and_standard_error(means)) + f" (n = {len(means)})"
                    if len(means) > 1 else "–")
            lines.append(f"| {label} | " + " | ".join(_fmt(d) for d in ds) + f" | {over} |")
        qs = _read(out / f"quickstart-{t}.json")
        if qs:  # the quickstart of the same task: other training runs, on a smaller dataset
            runs_ = {f"quickstart-{t}": qs, **{p.stem: json.loads(p.read_text())
                                              for p in sorted(out.glob(f"quickstart-{t}-seed*.json"))}}
            full = run_datasets.get(t, {}).get("steps")
            lines += ["", f"Which is which: the table's seed 0 is the report's pipeline on the dataset of 'Datasets "
                      f"generated here' ({f'{full:,} steps' if full else 'not recorded'}; the headline numbers of this "
                      f"report). `ractd quickstart --task {t}` (top of this report) is a separate run of the same "
                      f"`cpu` preset on its own generated {qs['dataset_steps']:,}-step dataset — more draws from the "
                      "same spread, not a contradiction of the table:", "",
                      "| quickstart `--seed` | teacher (Heun) | CTD | RACTD | RACTD − CTD | wall time |",
                      "|---|---|---|---|---|---|"]
            for stem, q in runs_.items():
                by = {r["method"].split(" (")[0]: r["score_mean"] for r in q["rows"]}  # "CTD student (σ_r = 0)"
                ctd, ractd = by.get("CTD student"), by.get("RACTD student")
                gap = f"{ractd - ctd:+.1f}" if ctd is not None and ractd is not None else "–"
                lines.append(f"| {q['seed']} | " + " | ".join(f"{by[m]:.1f}" if m in by else "–" for m in
                                                             ("teacher", "CTD student", "RACTD student"))
                             + f" | {gap} | {q['total_seconds'] / 60:.1f} min "
                             f"({QUICKSTART_TIMING.get(stem, 'conditions not recorded')}) |")
        lines.append("")

    lines += seed_statistics_lines(out, SEEDS, seed_suffix)
    lines += study_lines(out, STUDY_TASKS, STUDY, STUDY_SEEDS, seed_suffix, earlier_data=sorted(trained_on))

    # Mode selection figure (thesis Fig. 3.3): dataset episodes vs teacher vs CTD vs RACTD rollouts
    fig = out / "mode_selection.png"
    runs_me = {label: _load(out, "hopper-medium-expert", stem) for label, stem in
               (("teacher (Heun)", "teacher-heun-tracking"), ("CTD", "ctd-one_step-tracking"),
                ("RACTD", "student-one_step-tracking"))}
    dataset_returns = run_datasets.get("hopper-medium-expert", {}).get("episode_returns")
    if any(runs_me.values()):
        if dataset_returns is not None:  # else the committed figure stays as it is
            from ractd.evaluate.plots import plot_return_histograms

            returns = {"dataset episodes": np.asarray(dataset_returns)}
            returns.update({k: np.asarray(v["returns"]) for k, v in runs_me.items() if v})
            plot_return_histograms(returns, fig, title="hopper-medium-expert: episode returns")
        lines += ["## Mode selection (thesis Fig. 3.3), hopper-medium-expert", "",
                  f"![returns](../{fig.relative_to(out.parent.parent)})", "",
                  "| returns of | episodes | normalized score (mean ± SE) |", "|---|---|---|"]
        for label, d in runs_me.items():
            lines.append(f"| {label} | {d['n_episodes'] if d else '–'} | {_fmt(d) if d else 'not run (time)'} |")
        lines += ["", "Training seed 0. Which mode a one-step student lands on changes with the training seed, for CTD "
                  "as well as RACTD: see 'Training seeds' above before reading this figure as the reward's doing.", ""]

    lines += ["## Training runs (this machine, 1 thread, cores shared with other jobs)", "",
              "Conventions. Scores are D4RL normalized ×100 of the true return; a dataset's 'normalized return' "
              "is the same formula per dataset episode (Maze2d: per goal-to-goal segment, not on the evaluation "
              "scale). `reward` is the logged L_reward = −mean R_ψ(x̂), in min–max-normalized return-to-go units "
              "([−1, 1] per scored state): negative when the reward model rates the student's samples above the "
              "midpoint of the data's returns-to-go. Locomotion scores one (state, first action) pair, so its "
              "value lies in [−1, 1] (hopper: ≈ −0.6); Maze2d sums R over every planned state (128 on "
              "maze2d-medium), and most states of a sparse-reward maze sit at the normalized minimum, so its value "
              "is near +H (≈ +119) — with σ_r = 1e-4 the term is ≈ 0.01 of the loss.", "",
              "| run | steps | wall seconds | s / step | parameters | final losses |", "|---|---|---|---|---|---|"]
    for name, m in sorted(runs.items(), key=lambda kv: kv[0].split("/")):
        if m.get("status") != "finished":
            continue
        losses = ", ".join(f"{k} {v:.4g}" for k, v in sorted((m.get("metrics") or {}).items()) if k != "lr")
        steps, wall = m.get("step", 0), m.get("wall_time_s", float("nan"))
        per_step = m.get("seconds_per_step", wall / max(steps, 1))
        lines.append(f"| {name} | {steps} | {wall:.0f} | {per_step:.2f} | {m.get('parameters', 0):,} | {losses} |")
    lines += ["", "| evaluation | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in sorted(timings.items()) if "/eval/" in k]
    lines += ["", *ooc_lines(out), *roundabout_lines(out)]
    lines += ["## Not reproduced, and why", "",
              "- Paper-size models (248 M-parameter U-Nets, 1000 teacher epochs at batch 1024): no GPU here; the "
              "`paper` presets are the same code path (`--size paper`).",
              "- The D4RL datasets themselves: not downloadable here; ours follow D4RL's recipe with our own "
              "behaviour policies (PPO), so score levels differ.",
              *_missing_evaluations(out),
              "- maze2d-large: dataset generated, not trained (session time).",
              *([f"- The {', '.join(older)} runs of this report were trained on datasets rolled out from earlier, "
                 "unshipped PPO policies (their sizes and returns are recorded in results/report/datasets.json "
                 "under `trained_on` and used in the run tables); the 'Datasets generated here' table shows "
                 "today's, rolled out from the shipped policies. Retraining those sections uses today's."]
                if (older := sorted(set(trained_on) & set(PAPER_RACTD))) else []),
              "- On this machine a student optimizer step costs 5–9× a teacher step at equal batch at the cpu "
              "presets (docs/performance.md: the CTM loss runs the student twice, the target net three times and "
              "the teacher's Heun solver), so with the cores shared a 400-step student took 3.5–16 min depending "
              "on the load (see the training table).",
              "- The maze2d-umaze teacher, reward and student runs were trained by an earlier invocation with the "
              "same config (the saved config.json predates two naming fields, `student.teacher_run`/`reward_run`, "
              "whose defaults are what it used) and copied into `results/report/runs/`; the script skips finished "
              "stages, so rerunning it retrains them identically.", ""]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + "\n")
    print(f"wrote {target}")
