"""The report's Roundabout section (thesis Table A.5): baselines, evaluations, and the table from committed summaries.

    python scripts/roundabout_report.py baselines [--workers 2]       # the PPO baseline and the BC-MLP baseline
    python scripts/roundabout_report.py evaluate MODEL [MODEL ...] [--episodes 100 --seeds 3 --workers 2]

`baselines` trains the PPO baseline (the experts' recipe on the training mixture, traffic `train`) into
<data root>/roundabout-policies/ppo-baseline and the BC-MLP (30 → 256 → 256 → 5) on the expert dataset into
results/ooc/runs/ooc-roundabout/bc. `evaluate` drives each MODEL over the test traffics (mixed, test-2) × evaluation
seeds 0..seeds−1 and writes results/report/ooc/ooc-roundabout/<MODEL>.json with the model's facts (parameters,
training time). A MODEL is `ppo`, `bc`, `expert-car`, `expert-bicycle`, or a planner run under
results/ooc/runs/ooc-roundabout/ (its name; `NAME:random` conditions it on random kinds, the control); a run
named `<model>_seed<k>` (BC: `bc_seed<k>`) is training seed k of <model>, and the report tables such models again
over their training seeds. The report (scripts/render_report.py) renders `roundabout_lines` from the summaries only.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "report"
RUNS = ROOT / "results" / "ooc" / "runs" / "ooc-roundabout"
THESIS = {"BC": (37.7, 0.5, 7.50, 0.03), "PPO": (36.0, 5.7, 8.19, 0.16), "Diffusion": (20.0, 2.5, 8.81, 0.2)}
BC_LOOP = {"epochs": 20, "batch_size": 256, "lr": 1e-3, "warmup_steps": 0, "weight_decay": 0.0, "ema": False,
           "checkpoint_every": 0, "log_every": 20}  # not stated in the thesis: a short Adam run to convergence


def policies_dir() -> Path:
    from ractd.data.generate.roundabout_dataset import POLICIES
    from ractd.paths import data_root

    return data_root() / POLICIES


def train_baselines(workers: int, bc_seeds: int) -> None:
    from ractd.data import load_d4rl
    from ractd.data.generate import roundabout as rb
    from ractd.loop_config import LoopConfig
    from ractd.paths import data_root
    from ractd.train.bc import train_bc_policy

    info = rb.train_expert(rb.expert_recipes("cpu")[rb.BASELINE_TRAFFIC], policies_dir() / "ppo-baseline", seed=0,
                           workers=workers, progress=False)  # reused once trained
    print(f"PPO baseline: {info['evaluation']['no_crash_rate']:.2f} no-crash on its training mixture, "
          f"{info['train_seconds']:.0f} s")
    data = load_d4rl(data_root() / "roundabout-experts" / "roundabout-experts.hdf5")
    for seed in range(bc_seeds):
        name = bc_name(seed)
        if (RUNS / name / "model.safetensors").exists():
            continue
        result = train_bc_policy(data.observations, data.actions, RUNS / name, LoopConfig(**BC_LOOP, seed=seed),
                                 run_meta={"dataset": "roundabout-experts", "transitions": len(data.observations)})
        print(f"BC: {result.total_steps} steps, {result.wall_time_s:.0f} s, loss {result.last_scalars['loss']:.3f}")


def bc_name(seed: int) -> str:
    return "bc" if seed == 0 else f"bc_seed{seed}"


def load_model(name: str) -> tuple[Any, dict[str, Any]]:
    """(driver, facts) of a MODEL name."""
    from ractd.data.generate import roundabout as rb
    from ractd.io import read_json
    from ractd.planning.driving import load_bc_driver, load_driver

    if name in ("ppo", "expert-car", "expert-bicycle"):
        stem = policies_dir() / {"ppo": "ppo-baseline", "expert-car": "car", "expert-bicycle": "bicycle"}[name]
        policy = rb.load_expert(stem)
        return policy, {"kind": "PPO", "parameters": policy.num_parameters,
                        "train_seconds": policy.info.get("train_seconds"),
                        "trained_on": policy.info["recipe"]["traffic"],
                        "no_crash_own_traffic": policy.info["evaluation"]["no_crash_rate"]}
    if name == "bc" or name.startswith("bc_seed"):
        meta = read_json(RUNS / name / "meta.json")
        driver = load_bc_driver(RUNS / name)
        return driver, {"kind": "BC", "parameters": driver.num_parameters, "train_seconds": meta.get("wall_time_s"),
                        "training_seed": meta.get("seed")}
    run, _, kinds = name.partition(":")
    driver = load_driver(RUNS / run, kinds=kinds or "true")
    meta = read_json(RUNS / run / "meta.json")
    return driver, {"kind": "diffusion", "planner": driver.describe(), "conditioning": driver.cfg.conditioning.kind,
                    "inpaint": driver.cfg.planning.inpaint, "kinds": kinds or "true",
                    "parameters": (meta.get("parameters") or {}).get("total"), "train_seconds": meta.get("wall_time_s"),
                    "train_steps": meta.get("total_steps")}


def evaluate(names: list[str], episodes: int, seeds: int, workers: int, batch: int,
             traffics: list[str] | None = None) -> None:
    import torch

    from ractd.evaluate.ooc_roundabout import DEFAULT_TRAFFICS, evaluate_driver
    from ractd.io import read_json, write_json

    torch.set_num_threads(1)
    for name in names:
        driver, facts = load_model(name)
        result = evaluate_driver(driver, traffics or DEFAULT_TRAFFICS, episodes=episodes, seeds=range(seeds),
                                 workers=workers, batch=batch,
                                 say=lambda line, n=name: print(f"{n}: {line}", flush=True))
        path = OUT / "ooc" / "ooc-roundabout" / f"{name.replace(':', '-')}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = read_json(path) if path.exists() else {}  # other traffics evaluated earlier are kept
        if record and (record["episodes"], record["seeds"]) != (episodes, list(range(seeds))):
            raise SystemExit(f"{path}: evaluated with {record['episodes']} episodes x seeds {record['seeds']}; "
                             "delete it to evaluate with other settings")
        seconds = dict(record.get("eval_seconds_per_traffic", {}))
        seconds.update({t: round(sum(r["seconds"] for r in result[t]["per_seed"]), 1) for t in result})
        write_json(path, {"model": name, **facts, "episodes": episodes, "seeds": list(range(seeds)),
                          "workers": workers, "batch": batch, "eval_seconds_per_traffic": seconds,
                          "traffic": {**record.get("traffic", {}), **result}})
        print(f"wrote {path}")


def standard_errors_apart(a: dict[str, float], b: dict[str, float]) -> float:
    """(b − a) in units of their combined standard error √(SE_a² + SE_b²); a side's SE is the larger of its own
    and, where given, `se_pooled` (a spread over 2–3 training seeds can be small by chance)."""
    def se(x: dict[str, float]) -> float:
        return max(x["se"], x.get("se_pooled", 0.0))

    return (b["mean"] - a["mean"]) / max((se(a) ** 2 + se(b) ** 2) ** 0.5, 1e-9)


def _cell(stat: dict[str, float], digits: int) -> str:
    return f"{stat['mean']:.{digits}f} ± {stat['se']:.{digits}f}"


SEED_SUFFIX = re.compile(r"_seed(\d+)(?=:|$)")  # a MODEL of training seed k ≥ 1: <run>_seed<k>[:random]


def base_model(name: str) -> tuple[str, int]:
    """("cross_attention:random", 2) for "cross_attention_seed2:random": the model and its training seed."""
    match = SEED_SUFFIX.search(name)
    return (SEED_SUFFIX.sub("", name), int(match.group(1))) if match else (name, 0)


def training_seed_groups(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """{model: its results, one per training seed, by seed} for the models evaluated on ≥ 2 training seeds."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(results, key=lambda r: base_model(r["model"])[1]):
        groups.setdefault(base_model(r["model"])[0], []).append(r)
    return {m: rs for m, rs in groups.items() if len(rs) > 1}


def over_training_seeds(group: list[dict[str, Any]], traffic: str, metric: str) -> dict[str, float] | None:
    """Mean ± SE over training seeds of each seed's mean over its evaluation seeds (None unless every seed has
    the traffic); for crashes also `se_pooled`, the SE over all (training seed, evaluation seed) pairs."""
    from ractd.evaluate.metrics import mean_se

    if not all(traffic in r["traffic"] for r in group):
        return None
    stat = mean_se([r["traffic"][traffic][metric]["mean"] for r in group])
    if metric == "crashes_per_100":
        pairs = [100 * s["crashes"] / s["episodes"] for r in group for s in r["traffic"][traffic]["per_seed"]]
        stat["se_pooled"] = mean_se(pairs)["se"]
    return stat


# table rows, baselines first; a model's training seeds after it
ORDER = ("ppo", "bc", "bc_seed1", "bc_seed2", "none", "concat", "cross_attention", "cross_attention:random",
         "cross_attention_clean", "cross_attention_clean:random", "expert-car", "expert-bicycle")
THESIS_ROW = {"ppo": "PPO", "bc": "BC", "cross_attention": "Diffusion"}


def _order(r: dict[str, Any]) -> tuple[int, int]:
    model, seed = base_model(r["model"])
    model = "bc" if r["kind"] == "BC" else model
    return (ORDER.index(model) if model in ORDER else len(ORDER), seed)


def label(r: dict[str, Any]) -> str:
    if r["kind"] == "PPO":
        return "PPO baseline (training mixture)" if r["model"] == "ppo" else \
            f"expert: {r['trained_on']} (its own traffic only; {r['no_crash_own_traffic']:.2f} no-crash there)"
    if r["kind"] == "BC":
        return f"BC-MLP (training seed {r.get('training_seed', 0)})"
    guided = {"none": "unconditioned", "concat": "concat + CFG", "cross_attention": "cross-attention + CFG"}
    return (f"diffusion, {guided[r['conditioning']]}, {r['inpaint']} inpainting"
            + (", random kinds" if r["kinds"] == "random" else "") + f" (`{r['model']}`)")


def _duration(seconds: float | None) -> str:
    if not seconds:
        return "–"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _actions(r: dict[str, Any], traffic: str) -> str:
    fractions = r["traffic"].get(traffic, {}).get("action_fractions")
    if not fractions:
        return "–"
    names = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")  # the env's action order, not JSON's sorted one
    return " / ".join(f"{100 * fractions[name]:.0f}" for name in names)


def roundabout_lines(out: Path) -> list[str]:
    files = sorted((out / "ooc" / "ooc-roundabout").glob("*.json"))
    if not files:
        return []
    every = sorted((json.loads(f.read_text()) for f in files), key=_order)
    results = [r for r in every if base_model(r["model"])[1] == 0 or r["kind"] == "BC"]  # seed 0 (BC: each)
    lines = ["## Conditioned diffusion: Roundabout (thesis Table A.5)", "",
             "Trained on the experts' successful episodes of the two training combinations (all cars, all bicycles: "
             "1,000 each, `ractd data generate roundabout-experts`), tested on traffics never seen in training: "
             "`mixed` (each of the four road users a car or a bicycle, both kinds present) and `test-2` (three "
             "bicycles and one car). Per model (training seed 0 here; over training seeds below): 100 episodes per "
             "traffic and evaluation seed, 3 evaluation seeds; crashes per 100 episodes and episode return, mean ± SE "
             "over the evaluation seeds; the actions chosen in mixed traffic (% LANE_LEFT / "
             "IDLE / LANE_RIGHT / FASTER / SLOWER). "
             "Planners replan every step with DDPM (T = 80, guidance λ = 1), H = 8, `cpu` preset "
             "(`python scripts/roundabout_report.py`). The experts are references, not baselines: each was trained "
             "in one training combination.", "",
             "| model | parameters | training | mixed: crashes / 100 | mixed: return | test-2: crashes / 100 | "
             "test-2: return | mixed: actions (%) | thesis, mixed: crashes / return |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        t = r["traffic"]
        params = f"{r['parameters']:,}" if r.get("parameters") else "–"
        cells = [f"{_cell(t[k]['crashes_per_100'], 1)} | {_cell(t[k]['return'], 2)}" if k in t else "– | –"
                 for k in ("mixed", "test-2")]
        thesis = THESIS.get(THESIS_ROW.get(r["model"], ""))
        paper = f"{thesis[0]:.1f} ± {thesis[1]} / {thesis[2]:.2f} ± {thesis[3]}" if thesis else "–"
        lines.append(f"| {label(r)} | {params} | {_duration(r.get('train_seconds'))} | {cells[0]} | {cells[1]} | "
                     f"{_actions(r, 'mixed')} | {paper} |")
    lines += ["", "The thesis's numbers come from its own data (320,000 expert episodes), a 13.5 M-parameter planner "
              "and 2e5-step PPO policies; ours from 2,000 episodes, the 1.3 M-parameter `cpu` planner and 5e4-step "
              "PPO policies.", ""]
    groups = training_seed_groups(every)
    return [*lines, *other_traffic_lines(results), *seed_lines(groups), *target_lines(results, groups), "",
            *reading_lines(results, every)]


def seed_lines(groups: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The models trained with several seeds: each seed's mixed-traffic crashes and their mean ± SE."""
    if not groups:
        return []
    lines = ["Over training seeds (each model retrained with seeds 0, 1, 2, … on the same data; each seed evaluated "
             "as above): mean ± SE over the training seeds of each seed's mean over its 3 evaluation seeds, and the "
             "seeds' own values.", "",
             "| model | training seeds | mixed: crashes / 100 | mixed: per training seed | mixed: return | "
             "test-2: crashes / 100 | car (training): success | bicycle (training): success |",
             "|---|---|---|---|---|---|---|---|"]
    for model, group in groups.items():
        seeds = ", ".join(str(base_model(r["model"])[1] if r["kind"] != "BC" else r.get("training_seed", 0))
                          for r in group)
        per_seed = ", ".join(f"{r['traffic']['mixed']['crashes_per_100']['mean']:.1f}" for r in group
                             if "mixed" in r["traffic"])
        cells = [_cell(s, digits) if (s := over_training_seeds(group, traffic, metric)) else "–"
                 for traffic, metric, digits in (("mixed", "crashes_per_100", 1), ("mixed", "return", 2),
                                                 ("test-2", "crashes_per_100", 1), ("car", "success", 3),
                                                 ("bicycle", "success", 3))]
        name = "BC-MLP" if group[0]["kind"] == "BC" else f"`{model}`"
        lines.append(f"| {name} | {seeds} | {cells[0]} | {per_seed} | {cells[1]} | {cells[2]} | {cells[3]} | "
                     f"{cells[4]} |")
    return [*lines, ""]


OTHER_TRAFFICS = (("car", "car (training)"), ("bicycle", "bicycle (training)"), ("test-1", "test-1"),
                  ("bicycles-1", "1 bicycle"), ("bicycles-2", "2 bicycles"), ("bicycles-3", "3 bicycles"))


def other_traffic_lines(results: list[dict[str, Any]]) -> list[str]:
    """Crashes per 100 episodes in the two training combinations and in test-1 (one bicycle, incoming)."""
    rows = [r for r in results if any(t in r["traffic"] for t, _ in OTHER_TRAFFICS)]
    if not rows:
        return []
    traffics = [(t, name) for t, name in OTHER_TRAFFICS if any(t in r["traffic"] for r in rows)]
    test1 = "`test-1` (the incoming road user a bicycle, the other three cars)"
    lines = [("The training combinations, " + test1 + " and k = 1, 2, 3 bicycles among the four road users (their "
              "places drawn uniformly)" if any(t.startswith("bicycles-") for t, _ in traffics) else
              "The training combinations and " + test1) + ", crashes per 100 episodes, same protocol:", "",
             "| model | " + " | ".join(name for _, name in traffics) + " |",
             "|---|" + "---|" * len(traffics)]
    for r in rows:
        cells = [_cell(r["traffic"][t]["crashes_per_100"], 1) if t in r["traffic"] else "–" for t, _ in traffics]
        lines.append(f"| {label(r)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def crashes_per_seed(r: dict[str, Any], traffic: str) -> list[int]:
    """A model's crash count per evaluation seed in `traffic` ([] if it was not evaluated there)."""
    return [s["crashes"] for s in r["traffic"].get(traffic, {}).get("per_seed", [])]


def reading_lines(results: list[dict[str, Any]], every: list[dict[str, Any]] | None = None) -> list[str]:
    """What the table says about the two driving modes, with its numbers (`every`: also other training seeds)."""
    by = {r["model"]: r for r in results}
    needed = ("expert-car", "expert-bicycle", "cross_attention", "cross_attention:random")
    if not all(m in by for m in needed):
        return []

    def crashes(model: str, traffic: str) -> str:
        return f"{by[model]['traffic'][traffic]['crashes_per_100']['mean']:.1f}"

    def share(model: str, traffic: str, action: str) -> str:
        fractions = by[model]["traffic"][traffic].get("action_fractions") or {}
        return f"{100 * fractions[action]:.0f} %" if action in fractions else "–"

    def slower(model: str, traffic: str) -> float:
        return (by[model]["traffic"][traffic].get("action_fractions") or {}).get("SLOWER", 0.0)

    def mode(model: str) -> str:
        fractions = by[model]["traffic"]["mixed"].get("action_fractions") or {}
        return "bicycle" if fractions.get("FASTER", 0) > fractions.get("SLOWER", 0) else "car"

    def edge(other: str, name: str) -> str:
        """The mixed-traffic difference to `other` in units of its standard error (both SEs combined)."""
        if other not in by:
            return ""
        a, b = (by[m]["traffic"]["mixed"]["crashes_per_100"] for m in ("cross_attention", other))
        z = standard_errors_apart(a, b)
        word = "fewer" if z >= 0 else "more"
        return (f"In mixed traffic it crashes {abs(b['mean'] - a['mean']):.1f} times per 100 {word} than {name} "
                f"({abs(z):.1f} combined standard errors of the evaluation seeds).")

    bicycle_test2 = crashes_per_seed(by["expert-bicycle"], "test-2")
    same = [r["model"] for r in every or results if r["kind"] == "diffusion" and r["kinds"] == "true"
            and bicycle_test2 and crashes_per_seed(r, "test-2") == bicycle_test2]
    text = ("What the table says. The two experts drive in two modes: the car expert slows down (SLOWER "
            f"{share('expert-car', 'mixed', 'SLOWER')} of its actions in mixed traffic) and crashes "
            f"{crashes('expert-car', 'mixed')} times per 100 in mixed traffic and {crashes('expert-car', 'test-2')} "
            "in test-2, although it never saw a bicycle; the bicycle expert speeds past (FASTER "
            f"{share('expert-bicycle', 'mixed', 'FASTER')}) and crashes {crashes('expert-bicycle', 'mixed')} and "
            f"{crashes('expert-bicycle', 'test-2')} times. "
            + (f"Which mode is safe depends on the kind of the incoming road user: with an incoming car (test-2) "
               f"the car mode ({crashes('expert-car', 'test-2')} against {crashes('expert-bicycle', 'test-2')}), "
               f"with an incoming bicycle (test-1) the bicycle mode ({crashes('expert-bicycle', 'test-1')} against "
               f"{crashes('expert-car', 'test-1')}); a planner that composes the two should pick by it. "
               if all("test-1" in by[m]["traffic"] for m in ("expert-car", "expert-bicycle")) else "")
            + f"The cross-attention planner mostly takes the {mode('cross_attention')} "
            f"mode (FASTER {share('cross_attention', 'mixed', 'FASTER')} and SLOWER "
            f"{share('cross_attention', 'mixed', 'SLOWER')} in mixed traffic; FASTER "
            f"{share('cross_attention', 'test-2', 'FASTER')} and SLOWER {share('cross_attention', 'test-2', 'SLOWER')} "
            "in test-2)")
    if "test-1" in by["cross_attention"]["traffic"]:
        none_test1 = "none" in by and "test-1" in by["none"]["traffic"]
        text += (f"; in test-1 it crashes {crashes('cross_attention', 'test-1')} times"
                 + (f" (unconditioned: {crashes('none', 'test-1')})" if none_test1 else ""))
    if all("car" in by[m]["traffic"] for m in ("cross_attention", "expert-car")):
        text += (f". In all-car traffic, a training combination, it crashes {crashes('cross_attention', 'car')} "
                 f"times against the car expert's {crashes('expert-car', 'car')} (SLOWER "
                 f"{share('cross_attention', 'car', 'SLOWER')} of its actions there, the car expert's "
                 f"{share('expert-car', 'car', 'SLOWER')})"
                 + (": it takes the car mode there, but its step-by-step choices (a fresh sampled plan per step, its "
                    "first action executed) crash far more often than the expert's, so part of the out-of-combination "
                    "crashes start in distribution"
                    if slower("cross_attention", "car") >= 0.8 * slower("expert-car", "car") else
                    ": it has not learned to pick the mode from the composition even in distribution, so the "
                    "out-of-combination misses start there"))
    if same:
        text += (f"; in test-2 {', '.join(f'`{m}`' for m in same)} crash exactly as often as the bicycle expert "
                 f"on every evaluation seed ({', '.join(map(str, bicycle_test2))})")
    text += (". Random kinds change its crashes little (mixed: "
             f"{crashes('cross_attention:random', 'mixed')} against {crashes('cross_attention', 'mixed')} with the "
             f"true kinds; test-2: {crashes('cross_attention:random', 'test-2')} against "
             f"{crashes('cross_attention', 'test-2')}), so the composition tokens steer this planner weakly. "
             f"{edge('none', 'the unconditioned planner')} {edge('ppo', 'the PPO baseline')}")
    text += against_unconditioned(by)
    if "cross_attention_clean" in by:
        text += (" With clean inpainting of the current observation (`cross_attention_clean`: the observation "
                 "exact in x_t in training and sampling, as on Maze2d where noised inpainting barely binds a plan "
                 f"to its start) it crashes {crashes('cross_attention_clean', 'mixed')} times in mixed traffic and "
                 f"{crashes('cross_attention_clean', 'test-2')} in test-2, its actions split between the two modes "
                 f"(mixed: FASTER {share('cross_attention_clean', 'mixed', 'FASTER')}, SLOWER "
                 f"{share('cross_attention_clean', 'mixed', 'SLOWER')}"
                 + (f"; with random kinds {crashes('cross_attention_clean:random', 'mixed')} in mixed traffic"
                    if "cross_attention_clean:random" in by else "")
                 + "): binding the plan to the current "
                 "observation does not by itself make the planner pick the car mode in scenes it never saw.")
    return [text, ""]


def against_unconditioned(by: dict[str, dict[str, Any]]) -> str:
    """Where the cross-attention planner crashes less than the unconditioned one, and how much of that gain random
    kinds keep (mixed traffic): is the gain the kinds' or the conditioned network's?"""
    if "none" not in by:
        return ""
    mine, theirs = by["cross_attention"]["traffic"], by["none"]["traffic"]
    both = [t for t in ("mixed", "test-2", *(t for t, _ in OTHER_TRAFFICS)) if t in mine and t in theirs]

    def crashes(traffic: dict[str, Any], t: str) -> float:
        return traffic[t]["crashes_per_100"]["mean"]

    fewer = [t for t in both if crashes(mine, t) < crashes(theirs, t)]
    text = (f" Against the unconditioned planner it crashes less in {len(fewer)} of the {len(both)} traffics both "
            "were evaluated on (" + ", ".join(f"{t}: {crashes(mine, t):.1f} vs {crashes(theirs, t):.1f}" for t in both)
            + ").")
    gain = crashes(theirs, "mixed") - crashes(mine, "mixed")
    if gain > 0 and "cross_attention:random" in by:
        kept = crashes(theirs, "mixed") - crashes(by["cross_attention:random"]["traffic"], "mixed")
        text += (f" With random kinds it keeps {100 * max(kept, 0) / gain:.0f} % of its mixed-traffic gain over the "
                 "unconditioned planner" + (": in mixed traffic, at this scale, the gain comes from the conditioned "
                                             "network (cross-attention, trained with condition dropout and sampled "
                                             "with guidance), not from the kinds it reads." if kept >= 0.5 * gain
                                             else "."))
    return text


def target_lines(results: list[dict[str, Any]], groups: dict[str, list[dict[str, Any]]]) -> list[str]:
    """On mixed traffic: fewer crashes than PPO and than the unconditioned planner; in the training combinations,
    success within 0.10 of the experts'. A model trained with several seeds enters as its mean ± SE over them, one
    trained once as its mean ± SE over evaluation seeds."""
    by_model = {r["model"]: r["traffic"] for r in results}

    def stat(model: str, traffic: str, metric: str) -> tuple[dict[str, float] | None, int]:
        if model in groups and (over := over_training_seeds(groups[model], traffic, metric)):
            return over, len(groups[model])
        t = by_model.get(model, {}).get(traffic)
        return (t[metric], 1) if t else (None, 0)

    def seeds(n: int) -> str:
        return f"{n} training seeds" if n > 1 else "1 training seed"

    planner, n = stat("cross_attention", "mixed", "crashes_per_100")
    if planner is None:
        return []
    out = ["| target | result |", "|---|---|"]
    for other, name in (("ppo", "PPO baseline"), ("none", "unconditioned planner"),
                        ("cross_attention:random", "same planner with random kinds")):
        theirs, m = stat(other, "mixed", "crashes_per_100")
        if theirs is None:
            continue
        z = standard_errors_apart(planner, theirs)
        noise = (" — within 2 combined standard errors (each side's the larger of its training-seed and pooled "
                 "evaluation-seed SE): not resolved" if abs(z) < 2 else "")
        out.append(f"| mixed traffic: cross-attention planner fewer crashes per 100 than the {name} | "
                   f"{'met' if planner['mean'] < theirs['mean'] else 'missed'}: {_cell(planner, 1)} ({seeds(n)}) vs "
                   f"{_cell(theirs, 1)} ({seeds(m)}){noise} |")
    for traffic in ("car", "bicycle"):
        expert, _ = stat(f"expert-{traffic}", traffic, "success")
        mine, k = stat("cross_attention", traffic, "success")
        if expert and mine:
            gap = expert["mean"] - mine["mean"]
            out.append(f"| {traffic} traffic (training): cross-attention planner's success within 0.10 of its "
                       f"expert's | {'met' if gap <= 0.10 else 'missed'}: {mine['mean']:.3f} ({seeds(k)}) vs "
                       f"{expert['mean']:.3f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["baselines", "evaluate"])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch", type=int, default=100, help="episodes stepped together in each worker")
    ap.add_argument("--traffic", action="append", help="test traffic (repeatable; default: mixed and test-2); "
                    "results of other traffics already in a model's file are kept")
    ap.add_argument("--bc-seeds", type=int, default=3, help="baselines: BC training seeds")
    args = ap.parse_args()
    if args.command == "baselines":
        train_baselines(args.workers, args.bc_seeds)
    else:
        evaluate(args.models, args.episodes, args.seeds, args.workers, args.batch, args.traffic)


if __name__ == "__main__":
    main()
