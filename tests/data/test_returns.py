"""Discounted returns-to-go within episodes (spec §2.1) against hand-computed values and a loop."""

from __future__ import annotations

import numpy as np
import pytest

from ractd.data import returns_to_go


def naive_rtg(rewards, ends, discount):
    out = np.zeros(len(rewards))
    start = 0
    for end in ends:
        acc = 0.0
        for t in range(end - 1, start - 1, -1):
            acc = rewards[t] + discount * acc
            out[t] = acc
        start = end
    return out


def test_three_ones_half_discount():
    np.testing.assert_allclose(returns_to_go(np.ones(3), np.array([3]), discount=0.5), [1.75, 1.5, 1.0])


def test_episodes_do_not_leak_into_each_other():
    rtg = returns_to_go(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([3, 5]), discount=0.9)
    # episode 1: 3, 2 + 0.9·3 = 4.7, 1 + 0.9·4.7 = 5.23; episode 2: 5, 4 + 0.9·5 = 8.5
    np.testing.assert_allclose(rtg, [5.23, 4.7, 3.0, 8.5, 5.0], rtol=1e-6)
    assert rtg.dtype == np.float32


def test_termination_penalty_only_on_terminated_episodes():
    rewards = np.ones(5)
    ends = np.array([2, 5])
    terminals = np.array([False, True, False, False, False])  # episode 1 terminates, episode 2 times out
    rtg = returns_to_go(rewards, ends, discount=0.5, termination_penalty=-100.0, terminals=terminals)
    # episode 1: r = [1, -99] → [1 + 0.5·(−99), −99]; episode 2 unchanged: [1.75, 1.5, 1]
    np.testing.assert_allclose(rtg, [-48.5, -99.0, 1.75, 1.5, 1.0])
    with pytest.raises(ValueError, match="terminals"):
        returns_to_go(rewards, ends, termination_penalty=-100.0)


def test_matches_a_loop_on_long_random_episodes():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 3000, size=40)
    ends = np.cumsum(lengths)
    rewards = rng.normal(size=ends[-1])
    for discount in (0.99, 0.997, 1.0):
        np.testing.assert_allclose(
            returns_to_go(rewards, ends, discount=discount), naive_rtg(rewards, ends, discount),
            rtol=1e-5, atol=1e-3,
        )


def test_discount_one_is_a_reverse_cumsum():
    r = np.arange(1.0, 6.0)
    np.testing.assert_allclose(returns_to_go(r, np.array([5]), discount=1.0), [15, 14, 12, 9, 5])


def test_rejects_bad_episode_ends():
    with pytest.raises(ValueError, match="episode_ends"):
        returns_to_go(np.ones(4), np.array([2, 3]))
    with pytest.raises(ValueError, match="episode_ends"):
        returns_to_go(np.ones(4), np.array([2, 2, 4]))
