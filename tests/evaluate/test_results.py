"""EvalResult JSON round-trip and errors; top-k checkpoint selection."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ractd.evaluate import CheckpointEntry, EvalResult, TopKCheckpoints


def make_result(n: int = 3, **overrides) -> EvalResult:
    returns = np.array([1234.5678901234567, -0.1, 3e-17, 42.0][:n])
    fields = dict(
        returns=returns, lengths=np.arange(n) + 10, seeds=np.arange(n) + 7, terminated=np.arange(n) % 2 == 0,
        max_episode_steps=1000, wall_seconds=2.0, policy_seconds=0.5, policy_description="student nfe=1",
        env_id="Hopper-v5", mode="vectorized", max_parallel=n, ref_scores=(-20.272305, 3234.3),
        normalized_scores=100 * (returns + 20.272305) / (3234.3 + 20.272305),
        legacy_returns=returns + 1.0, legacy_normalized_scores=None,
    )
    fields.update(overrides)
    return EvalResult(**fields)


def test_json_round_trip_is_exact(tmp_path):
    r = make_result()
    r.to_json(tmp_path / "eval.json")
    back = EvalResult.from_json(tmp_path / "eval.json")
    for name in ("returns", "lengths", "seeds", "terminated", "normalized_scores", "legacy_returns"):
        np.testing.assert_array_equal(getattr(back, name), getattr(r, name))
    assert back.legacy_normalized_scores is None
    assert back.ref_scores == r.ref_scores and back.policy_description == r.policy_description
    d = json.loads((tmp_path / "eval.json").read_text())
    assert d["env_steps"] == 10 + 11 + 12 and d["steps_per_second"] == 33 / 2.0
    assert d["return"]["mean"] == pytest.approx(np.mean(r.returns))
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temp file


def test_single_episode_se_is_null_in_json(tmp_path):
    r = make_result(n=1)
    assert math.isnan(r.return_mean_se[1])
    r.to_json(tmp_path / "one.json")
    d = json.loads((tmp_path / "one.json").read_text())  # strict JSON: no NaN token
    assert d["return"]["se"] is None
    assert "seed 7" in r.summary()


def test_from_json_names_file_and_key(tmp_path):
    make_result().to_json(tmp_path / "eval.json")
    d = json.loads((tmp_path / "eval.json").read_text())
    del d["seeds"]
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"bad\.json: missing key 'seeds'"):
        EvalResult.from_json(tmp_path / "bad.json")
    d = json.loads((tmp_path / "eval.json").read_text())
    d["max_episode_steps"] = "1000"
    (tmp_path / "bad2.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"bad2\.json: key 'max_episode_steps': expected int, got str"):
        EvalResult.from_json(tmp_path / "bad2.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not an evaluation result"):
        EvalResult.from_json(tmp_path / "other.json")
    with pytest.raises(ValueError, match="lengths: expected shape"):
        make_result(lengths=np.arange(2))


def test_summary_states_the_numbers():
    r = make_result(n=4)
    s = r.summary()
    m, se = r.return_mean_se
    assert f"{m:.2f} ± {se:.2f}" in s and "seeds 7–10" in s and "legacy running-max" in s
    assert "normalized score" in s and "Hopper-v5" in s


def test_topk_keeps_the_best_and_says_what_to_delete():
    top = TopKCheckpoints(k=2)
    assert top.update(10.0, 1, "a") == []
    assert top.update(30.0, 2, "b") == []
    assert top.update(20.0, 3, "c") == ["a"]  # evicts the worst
    assert top.update(5.0, 4, "d") == ["d"]  # not good enough: delete the new one
    assert top.update(20.0, 5, "e") == ["e"]  # a tie keeps the earlier checkpoint
    assert top.update(float("nan"), 6, "f") == ["f"]
    assert [e.path for e in top.entries] == ["b", "c"]
    assert top.best == CheckpointEntry(30.0, 2, "b") and top.is_best("b") and not top.is_best("c")
    assert top.would_keep(25.0) and not top.would_keep(20.0)
    with pytest.raises(ValueError, match="already tracked"):
        top.update(99.0, 7, "b")


def test_topk_min_mode_and_json_round_trip(tmp_path):
    top = TopKCheckpoints(k=2, mode="min")
    for score, step in [(3.0, 1), (1.0, 2), (2.0, 3)]:
        top.update(score, step, f"ckpt{step}")
    assert [e.score for e in top.entries] == [1.0, 2.0]
    top.to_json(tmp_path / "topk.json")
    back = TopKCheckpoints.from_json(tmp_path / "topk.json")
    assert back == top
    assert back.update(1.5, 4, "ckpt4") == ["ckpt3"]
    no_entries = {"format": "ractd.topk_checkpoints", "k": 2, "mode": "max"}
    (tmp_path / "bad.json").write_text(json.dumps(no_entries))
    with pytest.raises(ValueError, match=r"bad\.json: malformed top-k state \(key 'entries'"):
        TopKCheckpoints.from_json(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        TopKCheckpoints(k=0)
