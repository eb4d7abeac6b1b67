"""Minari: write via create_dataset_from_buffers into a tmp root, read back identical; Dict observations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium import spaces

from ractd.data import DatasetError, OfflineDataset, list_minari_datasets, load_minari, write_minari
from tests.data.test_dataset import make_arrays


def hopper_dataset(next_obs: bool = True) -> OfflineDataset:
    arrays = make_arrays(n=120, obs_dim=11, act_dim=3, terminal_at=(29,), timeout_at=(79, 119))
    del arrays["infos/goal"]
    rng = np.random.default_rng(1)
    arrays["infos/qpos"] = rng.normal(size=(120, 6))
    if next_obs:
        arrays["next_observations"] = np.roll(arrays["observations"], -1, axis=0)
    return OfflineDataset.from_arrays(arrays, metadata={"name": "hopper-toy", "seed": 7})


def assert_same_episodes(a: OfflineDataset, b: OfflineDataset) -> None:
    for key in ("observations", "actions", "rewards", "terminals", "timeouts"):
        x, y = getattr(a, key), getattr(b, key)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), key
    np.testing.assert_array_equal(a.episode_ends, b.episode_ends)


def test_round_trip_on_hopper_v5_spaces(tmp_path):
    ds = hopper_dataset().with_extras(returns_to_go=np.linspace(0, 1, 120, dtype=np.float32))
    target = write_minari("test/hopper/toy-v0", ds, "Hopper-v5", root=tmp_path, ref_min_score=-20.272305,
                          ref_max_score=3234.3)
    assert target == tmp_path / "test/hopper/toy-v0"
    assert list_minari_datasets(tmp_path) == ["test/hopper/toy-v0"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp root cleaned up
    back = load_minari("test/hopper/toy-v0", root=tmp_path)
    assert_same_episodes(ds, back)
    assert set(back.extras) == {"next_observations", "infos/qpos", "returns_to_go"}
    for key in back.extras:
        np.testing.assert_array_equal(back.extras[key], ds.extras[key])
    assert back.fingerprint() == ds.fingerprint()
    assert back.metadata["env_id"] == "Hopper-v5" and back.metadata["seed"] == 7
    assert back.metadata["ref_max_score"] == 3234.3 and back.metadata["name"] == "hopper-toy"


def test_minari_sees_n_plus_one_observations(tmp_path):
    import minari
    from minari.dataset.minari_storage import MinariStorage

    ds = hopper_dataset()
    write_minari("test/hopper/toy-v0", ds, "Hopper-v5", root=tmp_path)
    storage = MinariStorage.read(tmp_path / "test/hopper/toy-v0/data")
    episodes = list(storage.get_episodes([0, 1]))
    assert episodes[0]["observations"].shape == (31, 11) and episodes[0]["actions"].shape == (30, 3)
    np.testing.assert_array_equal(episodes[1]["observations"][-1], ds.extras["next_observations"][79])
    assert episodes[0]["terminations"][-1] and episodes[1]["truncations"][-1]
    # Minari's own loader reads it too
    assert minari.MinariDataset(tmp_path / "test/hopper/toy-v0/data").total_steps == 120


def test_without_next_observations_the_padding_is_not_reported_as_data(tmp_path):
    ds = hopper_dataset(next_obs=False)
    write_minari("test/hopper/plain-v0", ds, "Hopper-v5", root=tmp_path)
    back = load_minari("test/hopper/plain-v0", root=tmp_path)
    assert_same_episodes(ds, back)
    assert "next_observations" not in back.extras


def test_point_maze_dict_observations(tmp_path):
    arrays = make_arrays(n=40, obs_dim=4, act_dim=2, terminal_at=(), timeout_at=(14, 39))
    ds = OfflineDataset.from_arrays(arrays)
    obs_space = spaces.Dict({
        "observation": spaces.Box(-np.inf, np.inf, (4,), np.float64),
        "achieved_goal": spaces.Box(-np.inf, np.inf, (2,), np.float64),
        "desired_goal": spaces.Box(-np.inf, np.inf, (2,), np.float64),
    })
    act_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    write_minari("test/pointmaze/toy-v0", ds, None, root=tmp_path, observation_space=obs_space,
                 action_space=act_space)
    back = load_minari("test/pointmaze/toy-v0", root=tmp_path)
    assert_same_episodes(ds, back)
    np.testing.assert_array_equal(back.extras["infos/goal"], arrays["infos/goal"][:40])
    # achieved_goal is the position (leading two state dims)
    np.testing.assert_array_equal(back.extras["observation/achieved_goal"], arrays["observations"][:40, :2])


def test_episode_without_flags_reads_as_a_timeout(tmp_path):
    arrays = make_arrays(n=60, obs_dim=11, act_dim=3, terminal_at=(29,), timeout_at=())
    ds = OfflineDataset.from_arrays(arrays, keep_partial=True)  # last episode (30..59) has no flag
    assert not ds.timeouts[-1] and not ds.terminals[-1]
    write_minari("test/hopper/partial-v0", ds, "Hopper-v5", root=tmp_path)
    back = load_minari("test/hopper/partial-v0", root=tmp_path)
    np.testing.assert_array_equal(back.episode_ends, [30, 60])
    assert back.timeouts[-1] and back.terminals[29]


def test_existing_id_overwrite_and_dimension_mismatch(tmp_path):
    ds = hopper_dataset()
    write_minari("test/hopper/toy-v0", ds, "Hopper-v5", root=tmp_path)
    with pytest.raises(DatasetError, match="already exists"):
        write_minari("test/hopper/toy-v0", ds, "Hopper-v5", root=tmp_path)
    smaller = ds.select_episodes([0])
    write_minari("test/hopper/toy-v0", smaller, "Hopper-v5", root=tmp_path, overwrite=True)
    assert load_minari("test/hopper/toy-v0", root=tmp_path).num_steps == 30
    # wrong dimensions: error naming the key, nothing new on disk
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    wrong = OfflineDataset.from_arrays(make_arrays(n=20, obs_dim=5, act_dim=3, terminal_at=(),
                                                   timeout_at=(19,)))
    with pytest.raises(DatasetError, match="'observations'.*expects shape \\(11,\\)"):
        write_minari("test/hopper/wrong-v0", wrong, "Hopper-v5", root=tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    with pytest.raises(ValueError, match="both"):
        write_minari("test/hopper/x-v0", ds, "Hopper-v5", root=tmp_path, ref_max_score=1.0)


def test_missing_dataset_lists_local_ids_and_never_downloads(tmp_path, monkeypatch):
    import minari.storage.hosting as hosting

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(hosting, "download_dataset", no_network)
    write_minari("test/hopper/toy-v0", hopper_dataset(), "Hopper-v5", root=tmp_path)
    with pytest.raises(DatasetError) as info:
        load_minari("mujoco/hopper/medium-v0", root=tmp_path)
    msg = str(info.value)
    assert "mujoco/hopper/medium-v0" in msg and "test/hopper/toy-v0" in msg and "never downloads" in msg


def test_corrupt_metadata_is_a_dataset_error(tmp_path):
    write_minari("test/hopper/toy-v0", hopper_dataset(), "Hopper-v5", root=tmp_path)
    meta_path = tmp_path / "test/hopper/toy-v0/data/metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["data_format"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="test/hopper/toy-v0.*unreadable Minari dataset"):
        load_minari("test/hopper/toy-v0", root=tmp_path)
