"""load_dataset: a file path, a local Minari id, a generated name, or a helpful error."""

from __future__ import annotations

import numpy as np
import pytest

from ractd.data import (
    DatasetError,
    OfflineDataset,
    load_dataset,
    resolve_source,
    write_d4rl_hdf5,
    write_minari,
)
from tests.data.test_dataset import make_arrays


@pytest.fixture
def roots(tmp_path, monkeypatch):
    data, minari = tmp_path / "data", tmp_path / "minari"
    monkeypatch.setenv("RACTD_DATA_DIR", str(data))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari))
    return data, minari


def test_file_path(roots, tmp_path):
    arrays = make_arrays()
    path = write_d4rl_hdf5(tmp_path / "mine.hdf5", arrays)
    ds = load_dataset(str(path))
    assert ds.fingerprint() == OfflineDataset.from_arrays(arrays).fingerprint()
    assert load_dataset(str(path), keep_partial=True).num_episodes == 4  # kwargs reach from_arrays


def test_generated_name_under_the_data_root(roots):
    data, _ = roots
    write_d4rl_hdf5(data / "maze2d-toy" / "maze2d-toy.hdf5", make_arrays(obs_dim=4))
    assert resolve_source("maze2d-toy") == ("d4rl", data / "maze2d-toy" / "maze2d-toy.hdf5")
    assert load_dataset("maze2d-toy").obs_dim == 4


def test_minari_id_and_folder(roots):
    _, minari = roots
    ds = OfflineDataset.from_arrays(make_arrays(obs_dim=11, act_dim=3))
    write_minari("test/hopper/toy-v0", ds, "Hopper-v5")  # default root = $MINARI_DATASETS_PATH
    assert resolve_source("test/hopper/toy-v0")[0] == "minari"
    assert load_dataset("test/hopper/toy-v0").fingerprint() == load_dataset(
        str(minari / "test/hopper/toy-v0")).fingerprint()
    np.testing.assert_array_equal(load_dataset("test/hopper/toy-v0").actions, ds.actions)


def test_unknown_source_lists_what_was_tried(roots):
    data, minari = roots
    with pytest.raises(DatasetError) as info:
        load_dataset("hopper-medium")
    msg = str(info.value)
    assert "hopper-medium: dataset not found" in msg
    assert str(minari / "hopper-medium") in msg and str(data / "hopper-medium" / "hopper-medium.hdf5") in msg
    assert "ractd data generate hopper-medium" in msg
