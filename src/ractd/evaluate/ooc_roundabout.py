"""Roundabout evaluation (docs/roundabout.md, "Evaluating a driver"): a driving policy over test traffics ×
evaluation seeds, crashes per 100 episodes, success (no crash) and return, mean ± SE over the seeds.

Any object with the experts' `act(observations, rng, deterministic)` is a driver: a trained diffusion planner
(`ractd.planning.driving.DiffusionDriver`), a PPO expert or baseline, a BC policy. Evaluation seed k drives the
episodes whose reset seeds come from (k, EVAL_STREAM), a stream the data-collection seeds never use.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ractd.data.generate.roundabout import Policy, evaluate_no_crash
from ractd.envs.roundabout_traffic import check_traffic
from ractd.evaluate.metrics import mean_se

DEFAULT_TRAFFICS = ("mixed", "test-2")  # the main mixed test, and the bicycle-heavy mixture (three bicycles)
EVAL_STREAM = 20_251_130  # second entry of every evaluation episode's seed sequence


def evaluate_driver(policy: Policy, traffics: Sequence[str] = DEFAULT_TRAFFICS, episodes: int = 100,
                    seeds: Sequence[int] = (0, 1, 2), workers: int = 1, batch: int = 1, say: Any = None
                    ) -> dict[str, Any]:
    """{traffic: {"per_seed": [evaluate_no_crash result + seconds, ...], "crashes_per_100", "success", "return":
    mean ± SE over seeds, "action_fractions": how often each action was chosen over all seeds' steps}} for
    `episodes` episodes per traffic and seed, `batch` episodes stepped together in each of `workers` processes (the
    episodes do not depend on either)."""
    for t in traffics:
        check_traffic(t)
    if not seeds:
        raise ValueError("at least one evaluation seed is needed")
    out: dict[str, Any] = {}
    for traffic in traffics:
        per_seed = []
        for k in seeds:
            start = time.perf_counter()
            r = evaluate_no_crash(policy, traffic, episodes, [int(k), EVAL_STREAM], workers=workers, batch=batch)
            r["seed"], r["seconds"] = int(k), round(time.perf_counter() - start, 2)
            per_seed.append(r)
            if say:
                say(f"{traffic}, seed {k}: {r['crashes']} crashes in {episodes} episodes, return "
                    f"{r['return_mean']:.2f} ({r['seconds']:.0f} s)")
        actions = {name: sum(r["action_counts"][name] for r in per_seed) for name in per_seed[0]["action_counts"]}
        total = max(sum(actions.values()), 1)
        out[traffic] = {"per_seed": per_seed, "action_fractions": {k: v / total for k, v in actions.items()},
                        "crashes_per_100": mean_se([100.0 * r["crashes"] / r["episodes"] for r in per_seed]),
                        "success": mean_se([r["no_crash_rate"] for r in per_seed]),
                        "return": mean_se([r["return_mean"] for r in per_seed])}
    return out
