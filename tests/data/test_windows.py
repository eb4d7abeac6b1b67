"""Windows (docs/algorithm.md §1.4), the train/val split (§1.3) and model inputs x / cond (§1.6)."""

from __future__ import annotations

import numpy as np
import pytest

from ractd.data import (
    MinMaxNormalizer,
    NormalizerSet,
    OfflineDataset,
    WindowDataset,
    WindowSpec,
    split_episodes,
    window_starts,
)
from ractd.data.windows import index_dtype


def test_window_starts_include_the_last_full_window():
    ep, start = window_starts(np.array([5]), horizon=3)
    np.testing.assert_array_equal(ep, [0, 0, 0])
    np.testing.assert_array_equal(start, [0, 1, 2])  # the reference's range(0, 2) misses start 2


def test_window_starts_over_several_episodes_skip_short_ones():
    ep, start = window_starts(np.array([5, 2, 3]), horizon=3)
    np.testing.assert_array_equal(ep, [0, 0, 0, 2])
    np.testing.assert_array_equal(start, [0, 1, 2, 0])
    ep, start = window_starts(np.array([4, 1]), horizon=1)
    np.testing.assert_array_equal(ep, [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(start, [0, 1, 2, 3, 0])


def test_window_starts_with_padding():
    ep, start = window_starts(np.array([5]), horizon=3, pad_before=1, pad_after=1)
    np.testing.assert_array_equal(start, [-1, 0, 1, 2, 3])
    ep, start = window_starts(np.array([2]), horizon=3, pad_after=1)  # short episode allowed by padding
    np.testing.assert_array_equal(start, [0])
    ep, start = window_starts(np.array([1]), horizon=3, pad_after=1)
    assert start.size == 0


def test_window_indices_are_int32_until_they_need_int64():
    ep, start = window_starts(np.array([5, 4]), horizon=3, pad_before=2)
    assert ep.dtype == start.dtype == np.int32
    np.testing.assert_array_equal(start, [-2, -1, 0, 1, 2, -2, -1, 0, 1])
    # an episode of more than 2^31 steps: starts past int32, computed (not allocated) through the int64 path
    ep, start = window_starts(np.array([2**31 + 5]), horizon=2**31)
    assert start.dtype == np.int64
    np.testing.assert_array_equal(start, np.arange(6))
    assert index_dtype(2**31 - 2) == np.int32 and index_dtype(2**31) == np.int64


def test_split_episodes_follows_the_reference_get_val_mask():
    train, val = split_episodes(10, 0.1, seed=42)
    expected = np.random.default_rng(seed=42).choice(10, size=1, replace=False)
    np.testing.assert_array_equal(val, np.sort(expected))
    np.testing.assert_array_equal(np.sort(np.r_[train, val]), np.arange(10))
    assert split_episodes(2, 0.9)[1].size == 1  # at least one training episode kept
    assert split_episodes(100, 0.02)[1].size == 2
    assert split_episodes(7, 0.0)[1].size == 0 and split_episodes(7, 0.0)[0].size == 7
    assert split_episodes(1, 0.5)[1].size == 0
    np.testing.assert_array_equal(split_episodes(50, 0.1, seed=3)[1], split_episodes(50, 0.1, seed=3)[1])


# ---------------------------------------------------------------- WindowDataset
def counting_dataset(lengths=(6, 2, 4)) -> OfflineDataset:
    """obs[t] = (t, 10 t), act[t] = −t: values name their global step index."""
    n = sum(lengths)
    t = np.arange(n, dtype=np.float32)
    timeouts = np.zeros(n, dtype=bool)
    timeouts[np.cumsum(lengths) - 1] = True
    return OfflineDataset.from_arrays({
        "observations": np.stack([t, 10 * t], axis=1), "actions": -t[:, None], "rewards": np.ones(n),
        "terminals": np.zeros(n, dtype=bool), "timeouts": timeouts,
    })


def identity(dim: int) -> MinMaxNormalizer:
    return MinMaxNormalizer(np.ones(dim), np.zeros(dim), np.zeros(dim), np.ones(dim))


IDENTITY = NormalizerSet({"observations": identity(2), "actions": identity(1)})


def test_history_conditioning_with_action_x():
    ds = counting_dataset()
    w = WindowDataset(ds, WindowSpec(horizon=3, n_obs_steps=2, x_key="actions", cond="history"), IDENTITY)
    # episode 0 (steps 0..5): starts 0..3; episode 1 (len 2) none; episode 2 (steps 8..11): starts 8, 9
    assert len(w) == 6
    np.testing.assert_array_equal(w.steps(np.arange(6))[:, 0], [0, 1, 2, 3, 8, 9])
    b = w.get_batch(np.array([3, 5]))
    np.testing.assert_array_equal(b["x"][..., 0], [[-3, -4, -5], [-9, -10, -11]])
    assert b["x"].shape == (2, 3, 1) and b["x"].dtype == np.float32
    np.testing.assert_array_equal(b["obs"], [[[3, 30], [4, 40]], [[9, 90], [10, 100]]])
    np.testing.assert_array_equal(b["cond"], [[3, 30, 4, 40], [9, 90, 10, 100]])
    assert WindowSpec(horizon=3, n_obs_steps=2).cond_dim(2) == 4


def test_first_last_conditioning_with_state_x():
    ds = counting_dataset()
    spec = WindowSpec(horizon=4, n_obs_steps=2, x_key="observations", cond="first_last")
    w = WindowDataset(ds, spec, IDENTITY)
    b = w.get_batch(np.array([2]))  # episode 0, start 2: steps 2..5
    np.testing.assert_array_equal(b["x"][0, :, 0], [2, 3, 4, 5])
    np.testing.assert_array_equal(b["cond"], [[2, 20, 5, 50]])
    assert spec.cond_dim(2) == 4


def test_episode_subset_and_rtg_with_returns_normalizer():
    ds = counting_dataset()
    rtg = np.arange(ds.num_steps, dtype=np.float32) * 2
    norms = NormalizerSet({**IDENTITY, "returns": MinMaxNormalizer.fit(rtg)})  # [0, 22] → [−1, 1]
    w = WindowDataset(ds, WindowSpec(horizon=2), norms, episodes=np.array([2]), rtg=rtg)
    assert len(w) == 3  # only episode 2 (steps 8..11)
    b = w.get_batch(np.arange(3))
    np.testing.assert_array_equal(b["x"][:, 0, 0], [-8, -9, -10])
    np.testing.assert_allclose(b["rtg"], (np.array([[16, 18], [18, 20], [20, 22]]) / 11.0) - 1.0, atol=1e-6)


def test_padding_repeats_edge_steps():
    ds = counting_dataset()
    spec = WindowSpec(horizon=3, pad_before=1, pad_after=1)
    w = WindowDataset(ds, spec, IDENTITY, episodes=np.array([1]))  # episode 1 = steps 6, 7
    steps = w.steps(np.arange(len(w)))
    np.testing.assert_array_equal(steps, [[6, 6, 7], [6, 7, 7]])


def test_fitted_normalizers_put_x_and_cond_in_unit_box():
    ds = counting_dataset()
    norms = NormalizerSet.fit({"observations": ds.observations, "actions": ds.actions})
    w = WindowDataset(ds, WindowSpec(horizon=2, x_key="actions"), norms)
    b = w.get_batch(np.arange(len(w)))
    assert b["x"].min() == pytest.approx(-1) and b["x"].max() <= 1 + 1e-6
    assert np.abs(b["cond"]).max() <= 1 + 1e-6


def test_batches_cover_every_window_once():
    ds = counting_dataset()
    w = WindowDataset(ds, WindowSpec(horizon=1), IDENTITY)
    firsts = np.concatenate([b["obs"][:, 0, 0] for b in w.batches(5, rng=np.random.default_rng(0))])
    # H = 1: every step, the last one of each episode included
    np.testing.assert_array_equal(np.sort(firsts), np.arange(ds.num_steps))
    assert sum(1 for _ in w.batches(5, drop_last=True)) == ds.num_steps // 5


def test_spec_and_dataset_errors():
    with pytest.raises(ValueError, match="cond"):
        WindowSpec(horizon=4, cond="middle")
    with pytest.raises(ValueError, match="n_obs_steps"):
        WindowSpec(horizon=2, n_obs_steps=3)
    ds = counting_dataset()
    with pytest.raises(KeyError, match="x_key"):
        WindowDataset(ds, WindowSpec(horizon=2, x_key="infos/goal"), IDENTITY)
    with pytest.raises(KeyError, match="normalizer"):
        WindowDataset(ds, WindowSpec(horizon=2), NormalizerSet({"observations": identity(2)}))
    with pytest.raises(ValueError, match="rtg"):
        WindowDataset(ds, WindowSpec(horizon=2), IDENTITY, rtg=np.zeros(3))


def test_steps_match_the_definition_on_a_subset_of_padded_episodes():
    # start s of episode [lo, hi]: steps clip(lo + s + j, lo, hi), j < H, s = −pad_before … L − H + pad_after
    lengths = (9, 1, 3, 12, 5, 2)
    ds = counting_dataset(lengths)
    episodes = np.array([0, 2, 3, 5])
    spec = WindowSpec(horizon=4, pad_before=2, pad_after=3)
    w = WindowDataset(ds, spec, IDENTITY, episodes=episodes)
    expected = []
    for e in episodes:
        lo, hi = int(ds.episode_starts[e]), int(ds.episode_ends[e]) - 1
        for s in range(-2, lengths[e] - 4 + 3 + 1):
            expected.append(np.clip(lo + s + np.arange(4), lo, hi))
    assert len(w) == len(expected)
    order = np.random.default_rng(0).permutation(len(w))
    steps = w.steps(order)
    assert steps.dtype == np.int64
    np.testing.assert_array_equal(steps, np.array(expected)[order])
    np.testing.assert_array_equal(w.get_batch(order)["x"][..., 0], -np.array(expected)[order])


def test_windows_keep_two_int32_per_window():
    # what a WindowDataset holds is 8 bytes per window, whatever the horizon (no per-window int64 arrays), and
    # building it never needs more than 16 (int64 arrays took 24 kept and 48 at the peak)
    import tracemalloc

    ds = counting_dataset((1000,) * 200)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        w = WindowDataset(ds, WindowSpec(horizon=16), IDENTITY)
        kept, peak = (m - before for m in tracemalloc.get_traced_memory())
    finally:
        tracemalloc.stop()
    assert len(w) == 200 * 985
    assert kept < 8 * len(w) + 64 * 1024, f"{kept / len(w):.1f} bytes per window kept"
    assert peak < 16 * len(w), f"{peak / len(w):.1f} bytes per window at the peak"
