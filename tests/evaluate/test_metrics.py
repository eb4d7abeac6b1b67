"""Metric definitions against hand-computed values and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ractd.evaluate import episode_return, mean_and_standard_error, normalized_score, running_max_return


def test_running_max_return_on_hand_values():
    rewards = [1.0, 3.0, 2.0, -1.0, 4.0, 0.5]
    # running max: 1, 3, 3, 3, 4, 4 -> 18; true return 9.5
    assert running_max_return(rewards) == 18.0
    assert episode_return(rewards) == 9.5


def test_running_max_equals_return_only_for_non_decreasing_rewards():
    assert running_max_return([0.5, 1.0, 1.0, 2.0]) == episode_return([0.5, 1.0, 1.0, 2.0]) == 4.5
    rng = np.random.default_rng(0)
    for _ in range(20):
        r = rng.normal(size=rng.integers(1, 50))
        assert running_max_return(r) >= episode_return(r)
    # all-negative rewards: the metric carries the first (largest) reward forward
    assert running_max_return([-1.0, -2.0, -3.0]) == -3.0 and episode_return([-1.0, -2.0, -3.0]) == -6.0
    assert running_max_return([]) == 0.0 == episode_return([])
    with pytest.raises(ValueError, match="1-D"):
        running_max_return([[1.0, 2.0]])


def test_mean_and_standard_error_closed_form():
    mean, se = mean_and_standard_error([1.0, 2.0, 3.0, 4.0])
    # sample variance = ((1.5² + 0.5²)·2)/3 = 5/3; SE = sqrt(5/3)/2
    assert mean == 2.5
    assert se == pytest.approx(math.sqrt(5 / 3) / 2, rel=1e-15)
    assert mean_and_standard_error([7.0, 7.0, 7.0]) == (7.0, 0.0)
    m, se1 = mean_and_standard_error([3.0])
    assert m == 3.0 and math.isnan(se1)
    with pytest.raises(ValueError, match="at least one"):
        mean_and_standard_error([])


def test_normalized_score_times_100():
    # D4RL hopper references: random -20.272305, expert 3234.3
    np.testing.assert_allclose(normalized_score([-20.272305, 3234.3, 1607.0138475], -20.272305, 3234.3),
                               [0.0, 100.0, 50.0], rtol=0, atol=1e-12)
    assert normalized_score(5.0, 0.0, 10.0) == 50.0
    with pytest.raises(ValueError, match="distinct"):
        normalized_score([1.0], 2.0, 2.0)
