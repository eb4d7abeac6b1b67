"""Offline RL data: D4RL/Minari readers, `OfflineDataset`, returns-to-go, normalizers, windows.

Typical use (docs/algorithm.md §1, §2.1)::

    ds = load_dataset("maze2d-umaze")                       # file path | Minari id | generated name
    rtg = returns_to_go(ds.rewards, ds.episode_ends, discount=0.99)
    norms = NormalizerSet.fit({"observations": ds.observations, "actions": ds.actions, "returns": rtg})
    train, val = split_episodes(ds.num_episodes, val_ratio=0.1)
    windows = WindowDataset(ds, WindowSpec(horizon=16), norms, episodes=train, rtg=rtg)
    batch = windows.get_batch(np.arange(64))                # x, cond, obs, rtg

Maze2d (docs/algorithm.md §1.1): ``resegment_at_goal_departures`` on the arrays before ``from_arrays``, then
returns-to-go, then ``drop_last_step_per_episode`` with the returns carried as an extra.
Importing this package loads numpy only; h5py, minari, torch and matplotlib load on use.
"""

from ractd.data.card import dataset_card, format_card, normalized_score, plot_return_histogram
from ractd.data.d4rl import load_d4rl, read_d4rl_hdf5, read_d4rl_metadata, write_d4rl_hdf5
from ractd.data.dataset import (
    REQUIRED_KEYS,
    OfflineDataset,
    drop_last_step_per_episode,
    resegment_at_goal_departures,
    validate_arrays,
)
from ractd.data.errors import DatasetError
from ractd.data.minari_io import list_minari_datasets, load_minari, minari_data_path, write_minari
from ractd.data.normalizer import MinMaxNormalizer, NormalizerSet
from ractd.data.returns import returns_to_go
from ractd.data.sources import generated_dataset_path, load_dataset, resolve_source
from ractd.data.windows import WindowDataset, WindowSpec, condition_vector, split_episodes, window_starts

__all__ = [
    "REQUIRED_KEYS",
    "DatasetError",
    "MinMaxNormalizer",
    "NormalizerSet",
    "OfflineDataset",
    "WindowDataset",
    "condition_vector",
    "WindowSpec",
    "dataset_card",
    "drop_last_step_per_episode",
    "format_card",
    "generated_dataset_path",
    "list_minari_datasets",
    "load_d4rl",
    "load_dataset",
    "load_minari",
    "minari_data_path",
    "normalized_score",
    "plot_return_histogram",
    "read_d4rl_hdf5",
    "read_d4rl_metadata",
    "resegment_at_goal_departures",
    "resolve_source",
    "returns_to_go",
    "split_episodes",
    "validate_arrays",
    "window_starts",
    "write_d4rl_hdf5",
    "write_minari",
]
