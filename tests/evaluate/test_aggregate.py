"""Seed statistics: per-task mean ± SE, IQM / mean with stratified bootstrap intervals, P(improvement), profiles."""
# ruff: noqa: NPY002 -- rliable draws its bootstrap indices from the legacy global generator

import numpy as np
import pytest

from ractd.evaluate.aggregate import (
    aggregate_intervals,
    mean_and_se,
    performance_profiles,
    plot_performance_profiles,
    probability_of_improvement,
    score_matrix,
)


def test_score_matrix_is_runs_by_tasks_and_refuses_unequal_seeds():
    scores = {"a": {0: 1.0, 1: 2.0, 2: 3.0}, "b": {2: 30.0, 0: 10.0, 1: 20.0}}
    m = score_matrix(scores, ["a", "b"])
    np.testing.assert_array_equal(m, [[1, 10], [2, 20], [3, 30]])
    with pytest.raises(ValueError, match="'b' has seeds \\[0, 1\\]"):
        score_matrix({"a": {0: 1.0, 1: 2.0, 2: 3.0}, "b": {0: 1.0, 1: 2.0}}, ["a", "b"])
    with pytest.raises(ValueError, match="no scores for task 'c'"):
        score_matrix(scores, ["a", "c"])


def test_mean_and_se_closed_form():
    m = np.array([[1.0, 10.0], [2.0, 10.0], [6.0, 10.0]])
    mean, se = mean_and_se(m)
    np.testing.assert_allclose(mean, [3.0, 10.0])
    np.testing.assert_allclose(se, [np.sqrt(7.0) / np.sqrt(3), 0.0])  # sample var of 1,2,6 = 7


def test_iqm_is_the_mean_of_the_middle_half_and_intervals_contain_it():
    # 4 runs × 2 tasks = 8 scores: the IQM drops the 2 lowest and 2 highest, whatever the task
    m = np.array([[0.0, 100.0], [1.0, 5.0], [2.0, 6.0], [-50.0, 7.0]])
    out = aggregate_intervals({"x": m}, reps=500)["x"]
    assert out["iqm"].point == pytest.approx(np.mean([1.0, 2.0, 5.0, 6.0]))
    assert out["mean"].point == pytest.approx(m.mean())
    for iv in out.values():
        assert iv.low <= iv.point <= iv.high
    constant = aggregate_intervals({"c": np.full((3, 2), 7.0)}, reps=200)["c"]["iqm"]  # no spread: no width
    assert (constant.low, constant.point, constant.high) == pytest.approx((7.0, 7.0, 7.0))


def test_probability_of_improvement_closed_forms():
    x = np.array([[10.0, 10.0], [11.0, 12.0], [12.0, 14.0]])
    assert probability_of_improvement(x, x - 100).point == pytest.approx(1.0)  # always better
    assert probability_of_improvement(x - 100, x).point == pytest.approx(0.0)
    assert probability_of_improvement(x, x).point == pytest.approx(0.5)  # ties count half
    # task 1: x = (1, 3) vs y = (2, 2): 2 of 4 pairs win → 0.5; task 2: x all above y → 1; average 0.75
    pi = probability_of_improvement(np.array([[1.0, 5.0], [3.0, 6.0]]), np.array([[2.0, 0.0], [2.0, 1.0]]), reps=500)
    assert pi.point == pytest.approx(0.75)
    assert 0.0 <= pi.low <= pi.point <= pi.high <= 1.0


def test_performance_profile_is_the_fraction_of_runs_above_tau(tmp_path):
    m = np.array([[10.0, 50.0], [20.0, 60.0], [30.0, 70.0]])
    taus = np.array([0.0, 15.0, 55.0, 100.0])
    profiles, _ = performance_profiles({"x": m}, taus, reps=50)
    np.testing.assert_allclose(profiles["x"], [1.0, 5 / 6, 2 / 6, 0.0])
    path = plot_performance_profiles({"CTD": m, "RACTD": m + 5}, tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_intervals_and_the_global_numpy_state_is_left_alone():
    m = np.array([[35.3, 24.0, 35.3], [71.3, 27.4, 96.9], [29.2, 26.7, 88.3]])
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = aggregate_intervals({"x": m}, reps=300, seed=0)["x"]["mean"]
    assert np.array_equal(np.random.get_state()[1], before)
    np.random.rand()  # whatever the caller's generator did in between
    assert aggregate_intervals({"x": m}, reps=300, seed=0)["x"]["mean"] == a
    assert aggregate_intervals({"x": m}, reps=300, seed=1)["x"]["mean"] != a
