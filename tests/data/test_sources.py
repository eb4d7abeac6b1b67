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


def test_an_unknown_source_gets_the_remedy_that_fits_what_it_looks_like(roots, tmp_path):
    data, minari = roots
    cases = {  # source -> (what the one line must say, what it must not)
        "hopper-medium": (f"dataset not generated yet (looked for {data / 'hopper-medium' / 'hopper-medium.hdf5'}); "
                          "create it with `ractd data generate hopper-medium`", None),
        str(tmp_path / "d4rl" / "hopper.hdf5"): ("hopper.hdf5: file not found", "ractd data generate"),
        str(tmp_path): ("is a directory", "ractd data generate"),
        "mujoco/hopper/medium-v0": (f"expected its folder at {minari / 'mujoco' / 'hopper' / 'medium-v0'}",
                                    "ractd data generate"),
        "no-such-thing": ("dataset not found", "ractd data generate no-such-thing"),
    }
    for source, (says, never) in cases.items():
        with pytest.raises(DatasetError) as info:
            load_dataset(source)
        msg = str(info.value)
        assert says in msg and "\n" not in msg, msg
        assert never is None or never not in msg, msg
