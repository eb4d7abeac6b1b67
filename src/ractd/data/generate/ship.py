"""Train the behaviour policies the package ships, and record them and the datasets for the report.

    python -m ractd.data.generate.ship Hopper-v5 [--seed 0] [--max-minutes 30] [--results FILE]

Trains `RECIPES[env]` into `shipped_policy_dir(env)` (replacing what is there) and merges the curve
(steps, evaluated return, wall time), the recipe and the selected snapshots into the results file
(default `results/report/behaviour_policies.json`). Needs the `generate` extra.
`record_datasets` folds generated locomotion datasets (size, return distribution, wall time) into
`results/report/datasets.json` (`scripts/generate_locomotion.sh` calls it).
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path
from typing import Any

from ractd.data.generate.ppo import CURVE, shipped_policy_dir, train_behaviour_policies
from ractd.io import read_json, write_json


def curve_record(policy_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The results-file entry of one trained folder: recipe, timings, curve and the selected snapshots."""
    with open(policy_dir / CURVE) as f:
        rows = list(csv.DictReader(f))
    entries = manifest["policies"]
    return {
        "recipe": manifest["recipe"],
        "seed": manifest["seed"],
        "trained_steps": manifest["trained_steps"],
        "train_seconds": manifest["train_seconds"],
        "steps_per_second": manifest["steps_per_second"],
        "stopped_early": manifest["stopped_early"],
        "curve": {
            "steps": [int(r["steps"]) for r in rows],
            "seconds": [float(r["seconds"]) for r in rows],
            "eval_return_mean": [float(r["eval_return_mean"]) for r in rows],
            "eval_return_std": [float(r["eval_return_std"]) for r in rows],
        },
        "selected": {
            level: {k: entries[level][k] for k in ("timesteps", "eval_return_mean", "eval_return_std")}
            for level in ("medium", "expert")
        },
        "learner_snapshots": len(manifest["medium_replay"]),
        "versions": manifest["versions"],
    }


def dataset_record(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report entries of one generated locomotion dataset folder: the summary every dataset has
    (steps, episodes, normalized return mean/std, seconds) and the locomotion details (normalized-return
    quantiles and histogram, timings, behaviour returns, which policies)."""
    import numpy as np

    from ractd.data.d4rl import read_d4rl_hdf5
    from ractd.data.dataset import OfflineDataset
    from ractd.envs.locomotion import REF_MAX_SCORE, REF_MIN_SCORE

    gen = read_json(folder / "generation.json")
    name = gen["name"]
    robot = name.split("-")[0]
    ref_min, ref_max = REF_MIN_SCORE[robot], REF_MAX_SCORE[robot]
    returns = OfflineDataset.from_arrays(read_d4rl_hdf5(folder / f"{name}.hdf5")).episode_returns()
    normalized = 100 * (returns - ref_min) / (ref_max - ref_min)
    summary = {"name": name, "steps": gen["steps"], "episodes": gen["episodes"],
               "normalized_return": {"mean": round(gen["normalized_mean"], 1), "std": round(gen["normalized_std"], 1)},
               "seconds": gen["seconds"]}
    edges = np.arange(np.floor(normalized.min() / 10) * 10, normalized.max() + 10, 10)
    counts, _ = np.histogram(normalized, bins=edges)
    policies = gen.get("policies") or {}
    detail = {
        "normalized_quantiles": {f"p{q}": round(float(np.percentile(normalized, q)), 1)
                                 for q in (0, 10, 25, 50, 75, 90, 100)},
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
        "rollout_seconds": gen["rollout_seconds"],
        "behaviour_return": gen["behaviour_return"],
        "seed": gen["seed"],
        "policies_trained_steps": policies.get("trained_steps"),
        "policies_recipe_env": policies.get("env_id"),
        "versions": gen.get("versions"),
    }
    return summary, detail


def record_datasets(folders: list[Path], results: Path = Path("results/report/datasets.json")) -> None:
    """Fold the named generated locomotion datasets into the report's dataset file (other entries kept)."""
    data = read_json(results) if results.exists() else {"datasets": {}}
    for folder in folders:
        if not (folder / "generation.json").exists():
            continue
        summary, detail = dataset_record(folder)
        data["datasets"][summary["name"]] = summary
        data.setdefault("locomotion", {})[summary["name"]] = detail
    write_json(results, data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("env_id")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float, default=30.0, help="stop training after this long")
    parser.add_argument("--results", type=Path, default=Path("results/report/behaviour_policies.json"))
    args = parser.parse_args(argv)
    target = shipped_policy_dir(args.env_id)
    staging = target.with_name(target.name + ".training")
    shutil.rmtree(staging, ignore_errors=True)
    manifest = train_behaviour_policies(args.env_id, staging, args.seed, progress=False,
                                        max_seconds=60 * args.max_minutes)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    results = read_json(args.results) if args.results.exists() else {}
    results.setdefault("policies", {})[args.env_id] = curve_record(target, manifest)
    results["note"] = "written by `python -m ractd.data.generate.ship ENV` (the shipped behaviour policies)"
    write_json(args.results, results)


if __name__ == "__main__":
    main()
