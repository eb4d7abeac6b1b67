"""D4RL hdf5: bit-identical round trips, errors naming file and key, nothing written on failure."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ractd.data import (
    DatasetError,
    OfflineDataset,
    load_d4rl,
    read_d4rl_hdf5,
    read_d4rl_metadata,
    write_d4rl_hdf5,
)
from tests.data.test_dataset import make_arrays


def full_arrays(n: int = 60) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    arrays = make_arrays(n=n, obs_dim=4, terminal_at=(19,), timeout_at=(39, 59))
    arrays["next_observations"] = rng.normal(size=(n, 4)).astype(np.float32)
    arrays["infos/qpos"] = rng.normal(size=(n, 3))  # float64 stays float64
    arrays["infos/qvel"] = rng.normal(size=(n, 3)).astype(np.float32)
    return arrays


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_round_trip_is_bit_identical(tmp_path, compression):
    arrays = full_arrays()
    meta = {"name": "toy", "env_id": "Hopper-v5", "seed": 3, "ref_min_score": -20.27, "none": None,
            "goal_cell": [1, 2], "policy": {"algorithm": "PPO", "steps": 1000}}
    path = write_d4rl_hdf5(tmp_path / "toy.hdf5", arrays, meta, compression=compression)
    back = read_d4rl_hdf5(path)
    assert set(back) == set(arrays)
    for key, value in arrays.items():
        assert back[key].dtype == value.dtype and back[key].shape == value.shape
        assert back[key].tobytes() == value.tobytes(), key
    assert read_d4rl_metadata(path) == meta
    with h5py.File(path) as f:  # the D4RL layout: infos/* is a group, metadata/* description
        assert set(f["infos"]) == {"goal", "qpos", "qvel"} and "metadata/policy/algorithm" in f


def test_load_d4rl_equals_from_arrays(tmp_path):
    arrays = full_arrays()
    path = write_d4rl_hdf5(tmp_path / "toy.hdf5", arrays, {"name": "toy"})
    ds = load_d4rl(path)
    assert ds.fingerprint() == OfflineDataset.from_arrays(arrays).fingerprint()
    assert ds.metadata["name"] == "toy" and ds.metadata["source"] == str(path)
    np.testing.assert_array_equal(ds.episode_ends, [20, 40, 60])
    # dataset → to_arrays → file → dataset is the identity
    write_d4rl_hdf5(tmp_path / "again.hdf5", ds.to_arrays())
    assert load_d4rl(tmp_path / "again.hdf5").fingerprint() == ds.fingerprint()


def test_d4rl_style_file_with_float_flags_and_policy_weights(tmp_path):
    """Files as D4RL shipped them: float32 terminals, big policy arrays under metadata/."""
    arrays = full_arrays()
    path = tmp_path / "d4rl.hdf5"
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v.astype(np.float32) if k in ("terminals",) else v
        f["metadata/algorithm"] = b"SAC"
        f["metadata/policy/fc0/weight"] = np.zeros((256, 17), dtype=np.float32)
    ds = load_d4rl(path)
    np.testing.assert_array_equal(ds.episode_ends, [20, 40, 60])
    meta = read_d4rl_metadata(path)
    assert meta["algorithm"] == "SAC" and meta["skipped_arrays"] == ["metadata/policy/fc0/weight"]


# ---------------------------------------------------------------- write failures
def _bad(kind: str) -> dict[str, np.ndarray]:
    arrays = full_arrays()
    if kind == "missing":
        del arrays["rewards"]
    elif kind == "length":
        arrays["infos/qvel"] = arrays["infos/qvel"][:-3]
    elif kind == "nan":
        arrays["actions"][5, 0] = np.nan
    elif kind == "empty":
        arrays = {k: v[:0] for k, v in arrays.items()}
    elif kind == "dtype":
        arrays["rewards"] = arrays["rewards"].astype(str)
    elif kind == "1d_obs":
        arrays["observations"] = arrays["observations"][:, 0]
    return arrays


@pytest.mark.parametrize(
    "kind,key",
    [("missing", "rewards"), ("length", "infos/qvel"), ("nan", "actions"), ("empty", "observations"),
     ("dtype", "rewards"), ("1d_obs", "observations")],
)
def test_failed_write_names_file_and_key_and_leaves_nothing(tmp_path, kind, key):
    path = tmp_path / "out.hdf5"
    with pytest.raises(DatasetError) as info:
        write_d4rl_hdf5(path, _bad(kind))
    assert str(path) in str(info.value) and f"'{key}'" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = write_d4rl_hdf5(tmp_path / "out.hdf5", full_arrays())
    before = path.read_bytes()
    with pytest.raises(DatasetError):
        write_d4rl_hdf5(path, _bad("nan"))
    with pytest.raises(DatasetError, match="metadata key"):  # failure in the middle of writing
        write_d4rl_hdf5(path, full_arrays(), {"a/b": 1})
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


# ---------------------------------------------------------------- read failures
def _write_raw(path, arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v


@pytest.mark.parametrize("kind,key", [("missing", "rewards"), ("length", "infos/qvel"), ("nan", "actions"),
                                      ("empty", "observations"), ("1d_obs", "observations")])
def test_malformed_file_names_file_and_key(tmp_path, kind, key):
    path = tmp_path / "bad.hdf5"
    _write_raw(path, _bad(kind))
    with pytest.raises(DatasetError) as info:
        load_d4rl(path)
    assert str(path) in str(info.value) and f"'{key}'" in str(info.value)


def test_missing_or_non_hdf5_file(tmp_path):
    with pytest.raises(DatasetError, match="nothere.hdf5: file not found"):
        load_d4rl(tmp_path / "nothere.hdf5")
    text = tmp_path / "notes.hdf5"
    text.write_text("hello")
    with pytest.raises(DatasetError, match="notes.hdf5: not a readable HDF5 file"):
        read_d4rl_hdf5(text)
