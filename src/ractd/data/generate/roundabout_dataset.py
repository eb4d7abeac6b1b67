"""`ractd data generate roundabout-experts`: train (or reuse) one PPO expert per training combination, then keep
their successful episodes as one dataset (docs/roundabout.md, "Experts and their data").

The experts are saved next to the dataset folder (`<data root>/roundabout-policies/<traffic>` by default) and
reused when one with the same recipe and seed is there, so an interrupted run resumes at the expert it was on and
more data from the same experts costs no training. An expert whose no-crash check misses its recipe's threshold
stops the run before any data is collected (its data would teach crashing).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ractd.data.generate.roundabout import (
    TRAINING_COMBINATIONS,
    expert_recipe,
    generate_roundabout_expert_data,
    train_expert,
)

DATASET = "roundabout-experts"
POLICIES = "roundabout-policies"  # folder of the experts, next to the dataset folder


class ExpertsBelowThresholdError(RuntimeError):
    """An expert's no-crash rate missed its recipe's threshold: its data is not collected."""


def recipe_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings → keyword arguments of `ExpertRecipe.with_overrides`.

    VALUE is JSON (`64`, `0.9`, `"dummy"`, `[128, 128]`) or, if it does not parse, a plain string; `ppo.KEY`,
    `net.KEY` and `env_config.KEY` set one key of that dict field.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"recipe override {pair!r}: expected KEY=VALUE, e.g. ppo.n_steps=64")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        head, dot, sub = key.partition(".")
        if dot:
            if head not in ("ppo", "net", "env_config"):
                raise ValueError(f"recipe override {pair!r}: only ppo.*, net.* and env_config.* take a sub-key")
            out.setdefault(head, {})[sub] = value
        else:
            out[key] = value
    return out


def generate_roundabout(
    out_dir: str | Path,
    *,
    seed: int = 0,
    scale: str = "cpu",
    train_steps: int | None = None,
    episodes: int = 1000,
    overrides: Sequence[str] = (),
    policies_dir: str | Path | None = None,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Experts for the training combinations (car, bicycle), then `episodes` successful episodes of each; returns
    a summary (dataset path, steps, episodes, per-expert no-crash rates and training seconds)."""
    out_dir = Path(out_dir)
    policies = Path(policies_dir) if policies_dir is not None else out_dir.parent / POLICIES
    fields = recipe_overrides(overrides)
    if train_steps is not None:
        fields["total_steps"] = train_steps
    try:
        recipes = {}
        for t in TRAINING_COMBINATIONS:
            base = expert_recipe(t, scale)  # net.KEY / env_config.KEY replace one key, as ppo.KEY does
            merged = {k: getattr(base, k) | v if k in ("net", "env_config") else v for k, v in fields.items()}
            recipes[t] = base.with_overrides(**merged)
    except TypeError as e:  # an unknown recipe field
        raise ValueError(f"recipe override: {e}") from None
    infos = {}
    for traffic, recipe in recipes.items():
        log(f"expert {traffic}: {recipe.total_steps:,d} PPO steps ({policies / traffic}; reused if trained)")
        infos[traffic] = train_expert(recipe, policies / traffic, seed=seed, workers=workers, progress=progress,
                                      log=log)
    failed = [t for t, info in infos.items() if not info["passed"]]
    if failed:
        rates = ", ".join(f"{t} {infos[t]['evaluation']['no_crash_rate']:.2f}" for t in failed)
        threshold = recipes[failed[0]].min_no_crash
        raise ExpertsBelowThresholdError(
            f"expert(s) below the no-crash threshold {threshold}: {rates} (saved in {policies}); their data is not "
            "used. Train longer (--train-steps) or change the recipe, after deleting those experts' files")
    saved = generate_roundabout_expert_data(out_dir, DATASET, {t: policies / t for t in recipes},
                                            episodes_per_combination=episodes, seed=seed, workers=workers,
                                            overwrite=overwrite, log=log)
    ds = saved.dataset
    return {"dataset": str(saved.hdf5), "steps": int(len(ds.observations)), "episodes": int(ds.num_episodes),
            "policies": str(policies),
            "experts": {t: f"no-crash {info['evaluation']['no_crash_rate']:.2f} after {info['trained_steps']:,d} "
                        f"PPO steps ({info['train_seconds']:.0f} s)" for t, info in infos.items()},
            "card": saved.card}
