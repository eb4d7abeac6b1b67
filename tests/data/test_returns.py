"""Returns of concatenated episodes against hand-computed values, closed forms and a loop: returns-to-go within
episodes (docs/algorithm.md §2.1), per-episode returns and D4RL's normalized score."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ractd.data import returns_to_go
from ractd.data.returns import episode_returns, normalized_score


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


def test_episode_returns_on_hand_values_with_a_one_step_episode():
    rewards = np.array([1.0, 2.0, 3.0, -4.0, 0.5, 0.25], dtype=np.float32)
    # episodes [1, 2, 3], [-4] (one step), [0.5, 0.25]
    returns = episode_returns(rewards, np.array([3, 4, 6]))
    np.testing.assert_array_equal(returns, [6.0, -4.0, 0.75])
    assert returns.dtype == np.float64
    np.testing.assert_array_equal(episode_returns([7.0], [1]), [7.0])  # one episode of one step
    np.testing.assert_array_equal(episode_returns(np.ones(5), np.arange(1, 6)), np.ones(5))  # all of length 1
    assert episode_returns([], []).shape == (0,)


def test_episode_returns_closed_forms():
    # r_t = t within an episode of length L sums to L(L-1)/2; a constant c sums to c·L
    lengths = np.array([1, 2, 5, 100, 1, 37])
    ramp = np.concatenate([np.arange(n, dtype=np.float64) for n in lengths])
    np.testing.assert_array_equal(episode_returns(ramp, np.cumsum(lengths)), lengths * (lengths - 1) / 2)
    np.testing.assert_allclose(episode_returns(np.full(lengths.sum(), 0.1), np.cumsum(lengths)), 0.1 * lengths)


def test_episode_returns_are_the_discount_one_returns_to_go_at_each_start():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 200, size=30)
    ends = np.cumsum(lengths)
    rewards = rng.normal(size=ends[-1])
    starts = ends - lengths
    np.testing.assert_allclose(episode_returns(rewards, ends), returns_to_go(rewards, ends, discount=1.0)[starts],
                               rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(episode_returns(rewards, ends), [r.sum() for r in np.split(rewards, ends[:-1])],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ends", [[2, 3], [2, 2, 4], [3, 2, 4], [0, 4], [], [2, 5]])
def test_episode_returns_rejects_bad_episode_ends(ends):
    with pytest.raises(ValueError, match="episode_ends"):
        episode_returns(np.ones(4), np.array(ends, dtype=np.int64))


def test_normalized_score_closed_form():
    lo, hi = -20.272305, 3234.3  # D4RL's hopper references
    np.testing.assert_allclose(normalized_score([lo, hi, (lo + hi) / 2], lo, hi), [0.0, 100.0, 50.0], atol=1e-12)
    assert normalized_score(5.0, 0.0, 10.0) == 50.0
    assert normalized_score(5.0, 0.0, 10.0).shape == ()  # a scalar stays 0-d
    assert normalized_score(-10.0, 0.0, 10.0) == -100.0  # below random, above expert: not clipped
    assert normalized_score(30.0, 0.0, 10.0) == 300.0
    # linear: 100·(R − R_min)/(R_max − R_min)
    r = np.linspace(-50, 50, 11).reshape(11, 1)
    np.testing.assert_allclose(normalized_score(r, -3.0, 7.0), 100.0 * (r + 3.0) / 10.0)
    assert normalized_score(r, -3.0, 7.0).shape == (11, 1)
    assert normalized_score(np.int64(4), 2, 6) == 50.0


@pytest.mark.parametrize("ref", [(2.0, 2.0), (math.nan, 1.0), (0.0, math.inf), (-math.inf, 0.0)])
def test_normalized_score_needs_finite_distinct_references(ref):
    with pytest.raises(ValueError, match="finite and distinct"):
        normalized_score([1.0], *ref)


def test_every_normalized_score_is_this_one():
    """The dataset card, the task registry and the evaluator score with the same function."""
    from ractd.data import card
    from ractd.envs import get_task
    from ractd.envs import normalized_score as task_score
    from ractd.evaluate import metrics

    assert card.normalized_score is normalized_score and metrics.normalized_score is normalized_score
    spec = get_task("hopper-medium")
    assert task_score("hopper-medium", 1000.0) == float(normalized_score(1000.0, spec.ref_min_score,
                                                                         spec.ref_max_score))


def test_chunked_scan_is_bitwise_the_single_chunk_scan():
    # every value only involves its own episode, so chunks of whole episodes change nothing, not even rounding;
    # chunks smaller than an episode (1, 7) put each long episode in a chunk of its own
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 400, size=60)
    ends = np.cumsum(lengths)
    rewards = (10 * rng.normal(size=ends[-1])).astype(np.float32)
    terminals = rng.random(ends[-1]) < 0.5
    whole = returns_to_go(rewards, ends, 0.99, -100.0, terminals, chunk_steps=int(ends[-1]))
    assert whole.dtype == np.float32
    for chunk in (1, 7, 256, 1000, 1 << 16):
        chunked = returns_to_go(rewards, ends, 0.99, -100.0, terminals, chunk_steps=chunk)
        np.testing.assert_array_equal(chunked.view(np.uint32), whole.view(np.uint32))
    np.testing.assert_allclose(whole, naive_rtg(rewards.astype(np.float64) + np.where(
        np.isin(np.arange(ends[-1]), ends - 1) & terminals, -100.0, 0.0), ends, 0.99), rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="chunk_steps"):
        returns_to_go(rewards, ends, chunk_steps=0)


def test_working_memory_is_a_few_chunks_not_the_dataset():
    # the float64 scan over 1 M steps used to hold ~60 MiB of temporaries; chunked, the output (4 MB) dominates
    import tracemalloc

    n = 1_000_000
    lengths = np.full(n // 1000, 1000)
    rewards = np.ones(n, dtype=np.float32)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        rtg = returns_to_go(rewards, np.cumsum(lengths), discount=0.5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rtg.nbytes == 4 * n
    assert peak < rtg.nbytes + 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    np.testing.assert_allclose(rtg[:3], [2.0, 2.0, 2.0])  # 1 + 1/2 + 1/4 + … far from the episode's end
