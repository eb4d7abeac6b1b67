"""scripts/roundabout_report.py: training seeds are grouped by model and the targets use their spread."""

import numpy as np
import pytest


@pytest.fixture
def rr(fresh_script):
    return fresh_script("roundabout_report")


def result(model: str, mixed: float, kind: str = "diffusion", se: float = 1.0, **traffic) -> dict:
    """A model's result file: per traffic, 3 evaluation seeds with crashes v − d, v, v + d (SE `se`)."""
    stats, d = {"mixed": mixed, **traffic}, se * np.sqrt(3)
    return {"model": model, "kind": kind, "traffic": {
        t: {"crashes_per_100": {"mean": v, "se": se}, "success": {"mean": 1 - v / 100, "se": 0.0},
            "return": {"mean": 8.0, "se": 0.1},
            "per_seed": [{"crashes": c, "episodes": 100} for c in (v - d, v, v + d)]} for t, v in stats.items()}}


def test_a_seed_suffix_names_the_model_and_its_training_seed(rr):
    assert rr.base_model("cross_attention_seed2:random") == ("cross_attention:random", 2)
    assert rr.base_model("cross_attention_seed1") == ("cross_attention", 1)
    assert rr.base_model("cross_attention:random") == ("cross_attention:random", 0)
    assert rr.base_model("bc_seed10") == ("bc", 10)


def test_models_with_several_training_seeds_are_grouped_in_seed_order(rr):
    rs = [result("none_seed2", 30.0), result("none", 40.0), result("none_seed1", 35.0), result("ppo", 34.0, "PPO"),
          result("cross_attention_seed1:random", 33.0), result("cross_attention:random", 31.0)]
    groups = rr.training_seed_groups(rs)
    assert list(groups) == ["none", "cross_attention:random"]  # ppo was trained once
    assert [r["model"] for r in groups["none"]] == ["none", "none_seed1", "none_seed2"]
    stat = rr.over_training_seeds(groups["none"], "mixed", "crashes_per_100")
    assert stat["mean"] == pytest.approx(35.0)
    assert stat["se"] == pytest.approx(np.std([40, 35, 30], ddof=1) / np.sqrt(3))
    pairs = [c + e for c in (40, 35, 30) for e in (-np.sqrt(3), 0, np.sqrt(3))]  # (training, evaluation) seeds
    assert stat["se_pooled"] == pytest.approx(np.std(pairs, ddof=1) / 3)
    assert rr.over_training_seeds(groups["none"], "test-2", "crashes_per_100") is None  # no seed has it


def test_targets_compare_over_training_seeds_where_a_model_has_them(rr):
    rs = [result("cross_attention", 20.0), result("cross_attention_seed1", 22.0), result("cross_attention_seed2", 24.0),
          result("none", 40.0), result("ppo", 21.0, "PPO", se=0.5)]
    lines = rr.target_lines([r for r in rs if "_seed" not in r["model"]], rr.training_seed_groups(rs))
    text = "\n".join(lines)
    # 22.0 ± 1.15 over three seeds vs PPO's 21.0 ± 0.5: missed, and within 2 SE
    assert "than the PPO baseline | missed: 22.0 ± 1.2 (3 training seeds) vs 21.0 ± 0.5 (1 training seed) — within" \
        in text
    # vs the single-seed unconditioned planner: 18 apart, SE √(1.15² + 1²) ≈ 1.5 → resolved
    assert "than the unconditioned planner | met: 22.0 ± 1.2 (3 training seeds) vs 40.0 ± 1.0 (1 training seed) |" \
        in text


def test_a_spread_over_few_training_seeds_that_is_small_by_chance_does_not_resolve_a_difference(rr):
    """Three seeds at 30, 30.1, 30.2 (SE 0.06) against 33 ± 0.5: 4.8 of its own SEs apart, but each seed's evaluation
    seeds spread by ±5.2 (pooled SE ≈ 1.5), so the difference is within 2 combined SEs."""
    rs = [result("cross_attention", 30.0, se=3.0), result("cross_attention_seed1", 30.1, se=3.0),
          result("cross_attention_seed2", 30.2, se=3.0), result("ppo", 33.0, "PPO", se=0.5)]
    groups = rr.training_seed_groups(rs)
    planner = rr.over_training_seeds(groups["cross_attention"], "mixed", "crashes_per_100")
    assert planner["se"] < 0.1 < 0.8 < planner["se_pooled"]
    assert rr.standard_errors_apart(planner, {"mean": 33.0, "se": 0.5}) < 2
    assert "not resolved" in "\n".join(rr.target_lines(rs[:1] + rs[3:], groups))


def test_the_other_traffics_table_has_a_column_only_for_traffics_some_model_ran(rr):
    rs = [result("ppo", 34.0, "PPO", **{"test-1": 50.0, "bicycles-2": 30.0}), result("none", 40.0, car=20.0)]
    rs[1].update(conditioning="none", inpaint="noised", kinds="true")
    text = "\n".join(rr.other_traffic_lines(rs))
    assert "| model | car (training) | test-1 | 2 bicycles |" in text
    assert "| PPO baseline (training mixture) | – | 50.0 ± 1.0 | 30.0 ± 1.0 |" in text
    assert "| diffusion, unconditioned, noised inpainting (`none`) | 20.0 ± 1.0 | – | – |" in text
    assert "k = 1, 2, 3 bicycles" in text


def test_the_reading_says_how_much_of_the_gain_over_the_unconditioned_planner_random_kinds_keep(rr):
    by = {"cross_attention": result("cross_attention", 30.0, car=20.0, **{"test-2": 50.0}),
          "none": result("none", 40.0, car=30.0, **{"test-2": 45.0}),
          "cross_attention:random": result("cross_attention:random", 38.0)}
    text = rr.against_unconditioned(by)
    assert "crashes less in 2 of the 3 traffics" in text and "test-2: 50.0 vs 45.0" in text
    assert "keeps 20 % of its mixed-traffic gain over the unconditioned planner." in text  # (40 − 38) / (40 − 30)
    by["cross_attention:random"] = result("cross_attention:random", 31.0)
    assert "keeps 90 %" in rr.against_unconditioned(by) and "not from the kinds" in rr.against_unconditioned(by)
