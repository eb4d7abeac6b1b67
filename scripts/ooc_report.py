"""The report's conditioned-diffusion section: Maze2d out-of-combination evaluations, from committed summaries.

    python scripts/ooc_report.py collect RUN_DIR [RUN_DIR ...]   # copy each run's `ractd eval` results (summaries)
    python scripts/ooc_report.py probe RUN_DIR [RUN_DIR ...]     # does the trained network follow its start?

`collect` copies every `ooc-eval-*.json` of a run folder into results/report/ooc/<task>/<run>/, keeping the
per-split and per-pair rates and dropping the per-plan arrays, with the run's training wall time; the report
(scripts/render_report.py) renders `ooc_lines` from those files only. `probe` writes binding.json next to them:
`ractd.diffusion.probe.start_response` on 128 windows of the run's dataset (its data directory, e.g.
RACTD_DATA_DIR=results/ooc/datasets).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

from ractd.evaluate.metrics import mean_se  # mean ± SE over seeds (SE 0 for one)

OUT = Path(__file__).resolve().parents[1] / "results" / "report"
DROP = ("per_plan", "task_first_step", "task_pairs")
METRICS = (("plan_success", "plan success"), ("collision_free", "collision-free"), ("continuous", "continuous"),
           ("mean_waypoint_hits", "waypoint hits (of 3)"), ("all_waypoints", "all 3 hit"),
           ("closed_loop_success", "closed-loop success"))


def summary(result: dict, meta: dict) -> dict:
    """An evaluation result without its per-plan arrays, with the run's training facts."""
    out = {k: v for k, v in result.items() if k != "tasks"}
    out["splits"] = {name: {k: v for k, v in split.items() if k not in DROP}
                     for name, split in result["splits"].items()}
    out["training"] = {"wall_time_s": meta.get("wall_time_s"), "total_steps": meta.get("total_steps"),
                       "seed": meta.get("seed"), "parameters": meta.get("parameters")}
    return out


def collect(run: Path, out: Path = OUT) -> list[Path]:
    meta = json.loads((run / "meta.json").read_text())
    written = []
    for path in sorted(run.glob("ooc-eval-*.json")):
        dest = out / "ooc" / meta["task"] / run.name / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(summary(json.loads(path.read_text()), meta), indent=1) + "\n")
        written.append(dest)
        figure = path.with_suffix(".png")
        result = json.loads(path.read_text())
        own = result["guidance"] in (None, json.loads((run / "config.json").read_text())["config"]["guidance"]["scale"])
        shown = result["waypoints"] == "true" and own  # true waypoints at the run's own λ
        if figure.exists() and shown and not SEED_SUFFIX.search(run.name):  # the plan figures of training seed 0
            shutil.copyfile(figure, dest.with_suffix(".png"))
            written.append(dest.with_suffix(".png"))
    return written


PROBE_LEVELS = (10, 30, 50, 70, 90)  # noise levels t of the start-response probe (T = 100)


def probe(run: Path, out: Path = OUT, windows: int = 128, seed: int = 0) -> Path:
    """binding.json: how far the run's denoised plans follow a moved start, per noise level (steps 1..5)."""
    import numpy as np
    import torch

    from ractd.data import load_dataset
    from ractd.diffusion.probe import start_response
    from ractd.planning.plan_diffusion import load_plan_planner

    torch.set_num_threads(1)
    meta = json.loads((run / "meta.json").read_text())
    planner = load_plan_planner(run, seed=seed)
    cfg, h, act_dim = planner.cfg, planner.horizon, planner.art.act_dim
    ds = load_dataset(cfg.data.dataset)
    first = np.random.default_rng(seed).integers(0, len(ds.observations) - h, windows)
    steps = first[:, None] + np.arange(h)
    x0 = np.concatenate([planner.act_norm.normalize(ds.actions[steps].astype(np.float32)),
                         planner.norm.normalize(ds.observations[steps].astype(np.float32))], axis=-1)
    x0 = torch.as_tensor(np.asarray(x0, np.float32))
    cond = None
    if planner.conditioned:
        from ractd.conditioning import condition_tokens
        from ractd.data.ooc_maze2d import waypoint_offsets

        cond = condition_tokens(x0[:, list(waypoint_offsets(h)), act_dim:], cfg.conditioning)
    response = start_response(planner.net, x0, cond, cfg.teacher.ddpm, PROBE_LEVELS,
                              prediction=cfg.teacher.ddpm.prediction, inpaint=cfg.planning.inpaint, act_dim=act_dim)
    dest = out / "ooc" / meta["task"] / run.name / "binding.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    command = meta.get("command", [])
    overrides = [arg for prev, arg in zip(command[:-1], command[1:], strict=True) if prev == "--set"]
    record = {"run": run.name, "horizon": h, "prediction": cfg.teacher.ddpm.prediction,
              "inpaint": cfg.planning.inpaint, "conditioning": cfg.conditioning.kind, "overrides": overrides,
              "windows": windows, "seed": seed, "shift": 0.3, "steps": "1..5",
              "response": {str(t): v for t, v in response.items()},
              "training": {"wall_time_s": meta.get("wall_time_s"), "total_steps": meta.get("total_steps")}}
    dest.write_text(json.dumps(record, indent=1) + "\n")
    return dest


def binding_lines(out: Path) -> list[str]:
    """Markdown: the start-response probe of every probed run."""
    files = sorted((out / "ooc").glob("*/*/binding.json"))
    if not files:
        return []
    lines = ["**Does a plan follow its start?** `python scripts/ooc_report.py probe RUN`: the trained network's "
             "denoised plan x̂0 at steps 1–5 after the start state's position is moved by 0.3 (normalized units), "
             "divided by 0.3 (1 = follows fully, 0 = ignores it); 128 windows of the training data, at noise level t "
             "of T = 100 (docs/ooc-maze2d.md).", "",
             "| run | H | prediction | inpainting | training steps | " +
             " | ".join(f"t = {t}" for t in PROBE_LEVELS) + " |", "|---|---|---|---|---|" + "---|" * len(PROBE_LEVELS)]
    for f in files:
        r = json.loads(f.read_text())
        cells = [f"{sum(r['response'][str(t)]) / len(r['response'][str(t)]):.2f}" for t in PROBE_LEVELS]
        lines.append(f"| {r['run']} | {r['horizon']} | {r['prediction']} | {r['inpaint']} | "
                     f"{r['training']['total_steps'] or '–'} | " + " | ".join(cells) + " |")
    lines += ["", "Runs' overrides of the `cpu` preset: " + "; ".join(
        f"{r['run']}: " + (", ".join(f"`{o}`" for o in r.get("overrides", [])) or "none")
        for r in map(lambda f: json.loads(f.read_text()), files)) + "."]
    return [*lines, ""]


def probe_reading(out: Path) -> list[str]:
    """The paragraph that reads the probe table, its numbers taken from the binding files."""
    probes = [json.loads(f.read_text()) for f in sorted((out / "ooc").glob("*/*/binding.json"))]
    noised = [max(max(v) for v in r["response"].values()) for r in probes if r["inpaint"] == "noised"]
    clean = [r for r in probes if r["inpaint"] == "clean"]
    if not (noised and clean):
        return []
    high = str(max(PROBE_LEVELS))

    def clean_run(r: dict) -> str:
        wall = r["training"]["wall_time_s"]
        return (f"{sum(r['response'][high]) / len(r['response'][high]):.2f} at H = {r['horizon']} after "
                f"{r['training']['total_steps']:,} steps" + (f" ({wall / 60:.0f} min)" if wall else ""))

    return ["What the probe says. With noised inpainting the start entry is, to the network, one more noisy entry "
            "among H: it carries no more evidence than its neighbours, so even a perfect denoiser would follow it "
            "little until the noise is low, and by then the rest of the plan is placed. Every noised model responds "
            f"≤ {max(noised):.2f} at every level. With clean inpainting (Diffuser: the start and goal clean in x_t in "
            "training and sampling) the entry is exact and the ideal response at high noise is near 1; the trained "
            f"models have begun to learn it ({'; '.join(clean_run(r) for r in clean)}; at t = {high}) but are far "
            "from it. A trained toy in the tests shows both effects in 400 steps "
            "(tests/diffusion/test_inpaint_binding.py: with clean inpainting the plans continue from the imposed "
            "start, with noised inpainting much less). So the detached plans come from (1) the noised inpainting "
            "of the thesis's Algorithm 1, which cannot bind a plan by itself, and (2) for clean inpainting, training "
            "far too short (Diffuser trains its Maze2d models for up to 2 M steps; these ran a few thousand on 2 "
            "CPU cores). The tables over training seeds above are of the thesis's models (noised inpainting, x₀); "
            "next: clean inpainting, ε prediction, many more steps (a GPU run), probed with the same command.", ""]


SEED_SUFFIX = re.compile(r"_seed(\d+)$")  # run folders of training seeds 1, 2, ...: <model>_seed<k>
SEED_MODELS = ("none", "concat", "cross_attention")  # the thesis's three models, tabled over training seeds


def model_of(run: str) -> str:
    return SEED_SUFFIX.sub("", run)


def seed_results(files: list[Path]) -> dict[str, list[dict]]:
    """{model: [its true-waypoint evaluation at the run's own λ, one per training seed]} for the three models."""
    by: dict[str, list[dict]] = {}
    for f in files:
        r = json.loads(f.read_text())
        model = model_of(f.parent.name)
        own_guidance = r["guidance"] is None or r["guidance"] == 1.3
        if model in SEED_MODELS and r["waypoints"] == "true" and own_guidance:
            by.setdefault(model, []).append(r)
    return {m: sorted(by[m], key=lambda r: r["training"]["seed"]) for m in SEED_MODELS if m in by}


def seed_table_lines(by: dict[str, list[dict]]) -> list[str]:
    metrics = [m for m in METRICS if m[0] != "continuous"]
    lines = ["| model | training seeds | split | " + " | ".join(label for _, label in metrics) + " | training |",
             "|---|---|---|" + "---|" * (len(metrics) + 1)]
    for model, results in by.items():
        seeds = ", ".join(str(r["training"]["seed"]) for r in results)
        walls = [r["training"]["wall_time_s"] for r in results if r["training"].get("wall_time_s")]
        for split in results[0]["splits"]:
            cells = []
            for key, _ in metrics:
                values = [r["splits"][split]["summary"][key] for r in results if key in r["splits"][split]["summary"]]
                digits = 2 if key == "mean_waypoint_hits" else 3
                stat = mean_se(values) if values else None
                cells.append("–" if stat is None else f"{stat['mean']:.{digits}f} ± {stat['se']:.{digits}f}")
            trained = f"{sum(walls) / len(walls) / 60:.0f} min" if walls else "–"
            lines.append(f"| {model} | {seeds} | {split.upper()} | " + " | ".join(cells) + f" | {trained} |")
    return [*lines, ""]


def ooc_lines(out: Path) -> list[str]:
    files = sorted((out / "ooc").glob("ooc-maze2d-*/*/ooc-eval-*.json"))
    if not files:
        return []
    by = seed_results(files)
    lines = ["## Conditioned diffusion: Maze2d out of combination (thesis ch. 2)", "",
             "`cpu` preset of `ooc-maze2d-medium` (H = 128, T = 100, U-Net [16, 32, 64], 8,000 steps × 64). 200 "
             "in-distribution (ID) and 200 held-out (OOC) tasks from a separately generated test run (seeded by the "
             "training seed + `ooc.test_seed_offset`, so every model of one training seed meets the same tasks and "
             "each seed its own); one plan per task; rates with 95 % Wilson intervals in the result files. "
             "Targets: the unconditioned model ≥ 0.7 plan success on ID and ≥ 0.15 lower on OOC; cross-attention + "
             "guidance ≥ the unconditioned model's OOC plan success + 0.20.", ""]
    if by:
        lines += ["The three models over training seeds (true waypoints; cross-attention with guidance λ = 1.3), "
                  "mean ± SE over the seeds:", "", *seed_table_lines(by)]
    lines += ["Variants, training seed 0:", "",
              "| run | waypoints | λ | split | " + " | ".join(label for _, label in METRICS) + " | training |",
              "|---|---|---|---|" + "---|" * (len(METRICS) + 1)]
    for f in files:
        if SEED_SUFFIX.search(f.parent.name):
            continue
        r = json.loads(f.read_text())
        wall = r.get("training", {}).get("wall_time_s")
        for split, s in r["splits"].items():
            cells = ["–" if k not in s["summary"] else  # closed loop not run (`--no-closed-loop`)
                     f"{s['summary'][k]:.2f}" if k == "mean_waypoint_hits" else f"{s['summary'][k]:.3f}"
                     for k, _ in METRICS]
            trained = f"{wall / 60:.0f} min" if wall else "–"
            guidance = "–" if r["guidance"] is None else f"{r['guidance']:g}"  # unconditioned: no guidance
            lines.append(f"| {f.parent.name} | {r['waypoints']} | {guidance} | {split.upper()} | "
                         + " | ".join(cells) + f" | {trained} |")
    lines += ["", *sweep_lines(files), *target_lines(by)]
    lines += ["Where plan success is 0, no plan passes the continuity check (largest step between consecutive "
              "plan positions ≤ 0.15, several times the behaviour controller's step). Two causes, read off the plan "
              "figures next to the result files: (1) the x₀-predicting models' positions jitter from step to step "
              "even at the lowest noise level; the ε-predicting model (`cross_attention_eps`, "
              "`--set teacher.ddpm.prediction=epsilon`) draws smooth paths along the corridors instead; (2) in every "
              "model the start and goal, inpainted by replacement with their noised values at each step "
              "(`planning.inpaint=noised`), do not bind the rest of the plan, which lies elsewhere in the maze and "
              "is joined to them by jumps (through walls, hence the low collision-free rates). The x₀ model with "
              "true waypoints is pinned by them (compare the random-waypoint rows), and the tracking controller, "
              "which chases the plan's states, then reaches the goal from most of its plans; on that closed-loop "
              "measure the unconditioned model drops out of combination and the waypoint-conditioned one does not, "
              "the thesis's qualitative claim.", "", *figure_lines(out), *binding_lines(out),
              *probe_reading(out)]
    return lines


def sweep_lines(files: list[Path]) -> list[str]:
    """The guidance sweep of the seed-0 cross-attention model, OOC split, in one line per metric."""
    sweep = {}
    for f in files:
        r = json.loads(f.read_text())
        if f.parent.name == "cross_attention" and r["waypoints"] == "true" and r["guidance"] is not None:
            sweep[r["guidance"]] = r["splits"]["ooc"]["summary"]
    if len(sweep) < 3:
        return []
    levels = sorted(sweep)
    cells = {k: ", ".join(f"{sweep[g][k]:.3f}" if k in sweep[g] else "–" for g in levels)
             for k in ("collision_free", "closed_loop_success")}
    lams = ", ".join(f"{g:g}" for g in levels)
    falls = sweep[levels[0]]["collision_free"] > sweep[levels[-1]]["collision_free"]
    return [f"Guidance sweep (`cross_attention`, training seed 0, OOC tasks, λ = {lams}): collision-free "
            f"{cells['collision_free']}; closed-loop success {cells['closed_loop_success']} (closed loop not run at "
            "λ = 0)." + (" Stronger guidance pulls more plans through walls." if falls else ""), ""]


FIGURE_RUNS = ("none", "concat", "cross_attention", "cross_attention_eps_clean")  # the plan figures shown in the report


def figure_lines(out: Path) -> list[str]:
    """The plan figures (thesis Figures 2.9/2.10): 8 ID and 8 OOC plans per run, drawn on the maze."""
    lines = []
    for run in FIGURE_RUNS:
        for png in sorted((out / "ooc").glob(f"ooc-maze2d-*/{run}/ooc-eval-*.png")):
            lines += [f"Plans of `{run}` (green: start, star: goal, crosses: the waypoints it is conditioned on, "
                      "colour: time along the plan; thin straight segments are jumps between consecutive plan "
                      "states):", "",
                      f"![plans of {run}](../{png.relative_to(out.parents[1]).as_posix()})", ""]
    return lines


def target_lines(by: dict[str, list[dict]]) -> list[str]:
    """The three targets, met or missed, on plan success (primary) and closed-loop success (secondary), on the
    means over training seeds."""
    none, xattn = by.get("none"), by.get("cross_attention")
    if not (none and xattn):
        return []

    def mean(results: list[dict], split: str, key: str) -> float:
        return mean_se([r["splits"][split]["summary"][key] for r in results])["mean"]

    counts = {len(none), len(xattn)}
    seeds = ("training seed 0" if counts == {1} else f"means over {len(none)} training seeds" if len(counts) == 1
             else f"means over training seeds: unconditioned {len(none)}, cross-attention {len(xattn)}")
    out = [f"| target ({seeds}) | plan success | closed-loop success |", "|---|---|---|"]

    def cell(ok: bool, text: str) -> str:
        return f"{'met' if ok else 'missed'}: {text}"

    def rows(k: str) -> dict[str, str]:
        n_id, n_ooc, x_ooc = mean(none, "id", k), mean(none, "ooc", k), mean(xattn, "ooc", k)
        return {"unconditioned ≥ 0.7 on ID": cell(n_id >= 0.7, f"{n_id:.3f}"),
                "unconditioned OOC ≥ 0.15 below ID": cell(n_id - n_ooc >= 0.15, f"{n_id:.3f} → {n_ooc:.3f}"),
                "cross-attention + guidance (λ = 1.3) OOC ≥ unconditioned OOC + 0.20":
                    cell(x_ooc >= n_ooc + 0.20, f"{x_ooc:.3f} vs {n_ooc:.3f}")}

    plan, closed = rows("plan_success"), rows("closed_loop_success")
    out += [f"| {label} | {plan[label]} | {closed[label]} |" for label in plan]
    return [*out, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["collect", "probe"])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    for run in args.runs:
        for path in collect(run) if args.command == "collect" else [probe(run)]:
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
