"""OfflineDataset: validation errors, episode segmentation (docs/algorithm.md §1.1), selection, fingerprints."""

from __future__ import annotations

import numpy as np
import pytest

from ractd.data import (
    DatasetError,
    OfflineDataset,
    drop_last_step_per_episode,
    resegment_at_goal_departures,
    validate_arrays,
)


def make_arrays(
    n: int = 50, obs_dim: int = 3, act_dim: int = 2, terminal_at=(9, 29), timeout_at=(44,), seed: int = 0
) -> dict[str, np.ndarray]:
    """D4RL-layout arrays: episodes close at the flagged steps; steps after the last flag are partial."""
    rng = np.random.default_rng(seed)
    arrays = {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": np.zeros(n, dtype=bool),
        "timeouts": np.zeros(n, dtype=bool),
        "infos/goal": rng.normal(size=(n, 2)).astype(np.float32),
    }
    arrays["terminals"][list(terminal_at)] = True
    arrays["timeouts"][list(timeout_at)] = True
    return arrays


# ---------------------------------------------------------------- segmentation (docs/algorithm.md §1.1)
def test_segmentation_by_terminal_or_timeout_drops_trailing_partial():
    arrays = make_arrays()
    ds = OfflineDataset.from_arrays(arrays)
    np.testing.assert_array_equal(ds.episode_ends, [10, 30, 45])
    np.testing.assert_array_equal(ds.episode_starts, [0, 10, 30])
    np.testing.assert_array_equal(ds.episode_lengths, [10, 20, 15])
    assert (ds.num_episodes, ds.num_steps, ds.obs_dim, ds.act_dim) == (3, 45, 3, 2)
    # the closing transition belongs to its episode
    assert ds.episode(0)["terminals"][-1] and not ds.episode(0)["terminals"][:-1].any()
    assert ds.episode(2)["timeouts"][-1]
    np.testing.assert_array_equal(ds.episode(1)["observations"], arrays["observations"][10:30])
    np.testing.assert_array_equal(ds.extras["infos/goal"], arrays["infos/goal"][:45])


def test_keep_partial_keeps_the_trailing_steps_as_an_episode():
    ds = OfflineDataset.from_arrays(make_arrays(), keep_partial=True)
    np.testing.assert_array_equal(ds.episode_ends, [10, 30, 45, 50])
    # a dataset ending exactly on a flag gets no empty extra episode
    ds = OfflineDataset.from_arrays(make_arrays(timeout_at=(49,)), keep_partial=True)
    np.testing.assert_array_equal(ds.episode_ends, [10, 30, 50])


def test_episode_returns_and_step_episode_index():
    arrays = make_arrays()
    ds = OfflineDataset.from_arrays(arrays)
    r = arrays["rewards"].astype(np.float64)
    np.testing.assert_allclose(ds.episode_returns(), [r[:10].sum(), r[10:30].sum(), r[30:45].sum()])
    np.testing.assert_array_equal(ds.step_episode_index(), np.repeat([0, 1, 2], [10, 20, 15]))
    assert ds.episode(-1)["rewards"].shape == (15,)
    with pytest.raises(IndexError):
        ds.episode(3)


def test_dtypes_are_cast_and_float_flags_accepted():
    arrays = make_arrays()
    arrays["observations"] = arrays["observations"].astype(np.float64)
    arrays["terminals"] = arrays["terminals"].astype(np.float32)  # old D4RL files store 0./1.
    arrays["rewards"] = arrays["rewards"].reshape(-1, 1)
    ds = OfflineDataset.from_arrays(arrays)
    assert ds.observations.dtype == np.float32 and ds.terminals.dtype == bool
    assert ds.rewards.shape == (45,)
    np.testing.assert_array_equal(ds.episode_ends, [10, 30, 45])


def test_to_arrays_inverts_from_arrays_and_fingerprint_is_stable():
    ds = OfflineDataset.from_arrays(make_arrays())
    again = OfflineDataset.from_arrays({k: v.copy() for k, v in ds.to_arrays().items()})
    assert again.fingerprint() == ds.fingerprint()
    np.testing.assert_array_equal(again.episode_ends, ds.episode_ends)
    assert len(ds.fingerprint()) == 64
    changed = ds.to_arrays()
    changed["rewards"] = changed["rewards"].copy()
    changed["rewards"][3] += 1e-3
    assert OfflineDataset.from_arrays(changed).fingerprint() != ds.fingerprint()
    # metadata is description, not data
    described = OfflineDataset.from_arrays(ds.to_arrays(), metadata={"name": "x"})
    assert described.fingerprint() == ds.fingerprint()


def test_select_episodes_reorders_and_keeps_extras():
    arrays = make_arrays()
    ds = OfflineDataset.from_arrays(arrays).with_extras(step=np.arange(45))
    sub = ds.select_episodes([2, 0])
    np.testing.assert_array_equal(sub.episode_ends, [15, 25])
    np.testing.assert_array_equal(sub.extras["step"], np.r_[30:45, 0:10])
    np.testing.assert_array_equal(sub.observations, arrays["observations"][np.r_[30:45, 0:10]])
    assert sub.terminals[24] and sub.timeouts[14]
    mask = np.array([False, True, False])
    np.testing.assert_array_equal(ds.select_episodes(mask).extras["step"], np.arange(10, 30))
    np.testing.assert_array_equal(ds.longer_than(10).episode_lengths, [20, 15])
    with pytest.raises(ValueError, match="no episode selected"):
        ds.select_episodes([])
    with pytest.raises(IndexError):
        ds.select_episodes([3])
    with pytest.raises(DatasetError, match="key 'bad'"):
        ds.with_extras(bad=np.zeros(44))
    with pytest.raises(DatasetError, match="key 'scalar'"):
        ds.with_extras(scalar=np.float32(1.0))


# ---------------------------------------------------------------- validation errors
def _error(arrays, source="hopper-test.hdf5") -> str:
    with pytest.raises(DatasetError) as info:
        OfflineDataset.from_arrays(arrays, source=source)
    return str(info.value)


def test_missing_key_names_source_and_key():
    arrays = make_arrays()
    del arrays["timeouts"]
    msg = _error(arrays)
    assert "hopper-test.hdf5" in msg and "'timeouts'" in msg and "missing" in msg


def test_mismatched_length_names_key_and_both_lengths():
    arrays = make_arrays()
    arrays["actions"] = arrays["actions"][:-1]
    msg = _error(arrays)
    assert "hopper-test.hdf5" in msg and "'actions'" in msg and "50" in msg and "(49, 2)" in msg
    arrays = make_arrays()
    arrays["infos/goal"] = arrays["infos/goal"][:10]
    assert "'infos/goal'" in _error(arrays)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_names_key_and_step(bad):
    arrays = make_arrays()
    arrays["observations"][17, 1] = bad
    msg = _error(arrays)
    assert "'observations'" in msg and "NaN/inf" in msg and "step 17" in msg


def test_empty_dataset():
    arrays = {k: v[:0] for k, v in make_arrays().items()}
    msg = _error(arrays)
    assert "hopper-test.hdf5" in msg and "empty" in msg


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("rewards", np.array(["a"] * 50), "dtype"),
        ("actions", np.zeros((50, 2), dtype=np.complex64), "dtype"),
        ("actions", np.empty((50, 2), dtype=object), "dtype"),
        ("observations", np.zeros(50, dtype=np.float32), "2-D"),
        ("rewards", np.zeros((50, 2), dtype=np.float32), "1-D"),
        ("terminals", np.full(50, 2, dtype=np.int64), "0/1"),
    ],
)
def test_wrong_dtype_or_shape_names_key(key, value, expected):
    arrays = make_arrays()
    arrays[key] = value
    msg = _error(arrays)
    assert f"'{key}'" in msg and expected in msg and "hopper-test.hdf5" in msg


def test_no_flag_at_all_is_an_error_unless_keep_partial():
    arrays = make_arrays(terminal_at=(), timeout_at=())
    msg = _error(arrays)
    assert "no complete episode" in msg and "keep_partial" in msg
    assert OfflineDataset.from_arrays(arrays, keep_partial=True).num_episodes == 1


def test_validate_arrays_returns_length_and_ignores_metadata():
    arrays = make_arrays()
    arrays["metadata/algorithm"] = np.array("SAC")
    assert validate_arrays(arrays) == 50
    assert "metadata/algorithm" not in OfflineDataset.from_arrays(arrays).extras


# ---------------------------------------------------------------- Maze2d options (docs/algorithm.md §1.1)
def test_resegment_at_goal_departures_hand_computed():
    # x positions relative to goal (1, 1): at_goal = [F, T, T, F, T, F, T]
    xs = np.array([3.0, 1.1, 0.7, 2.0, 1.0, 1.6, 1.2])
    obs = np.stack([xs, np.ones_like(xs), np.zeros_like(xs), np.zeros_like(xs)], axis=1).astype(np.float32)
    arrays = make_arrays(n=7, obs_dim=4, terminal_at=(), timeout_at=(0, 1, 2, 3, 4, 5, 6))
    arrays["observations"] = obs
    out = resegment_at_goal_departures(arrays, goal_xy=(1.0, 1.0), radius=0.5)
    np.testing.assert_array_equal(out["timeouts"], [False, False, True, False, True, False, False])
    assert arrays["timeouts"].all()  # input untouched
    ds = OfflineDataset.from_arrays(out)
    np.testing.assert_array_equal(ds.episode_ends, [3, 5])  # trailing steps after the last departure dropped


def test_drop_last_step_per_episode():
    arrays = make_arrays(n=8, terminal_at=(2,), timeout_at=(3, 7))  # lengths 3, 1, 4
    ds = OfflineDataset.from_arrays(arrays).with_extras(returns_to_go=np.arange(8, dtype=np.float32))
    out = drop_last_step_per_episode(ds)
    np.testing.assert_array_equal(out.episode_ends, [2, 5])  # the 1-step episode disappears
    np.testing.assert_array_equal(out.extras["returns_to_go"], [0, 1, 4, 5, 6])
    np.testing.assert_array_equal(out.observations, arrays["observations"][[0, 1, 4, 5, 6]])
    np.testing.assert_array_equal(out.extras["next_observations"], arrays["observations"][[1, 2, 5, 6, 7]])
    np.testing.assert_array_equal(out.timeouts, [False, True, False, False, True])
    assert not out.terminals.any()
    # the flags still segment it the same way
    np.testing.assert_array_equal(OfflineDataset.from_arrays(out.to_arrays()).episode_ends, [2, 5])
