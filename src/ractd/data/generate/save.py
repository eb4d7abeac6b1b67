"""Write a generated dataset: D4RL hdf5, its Minari copy and its card, each file atomically; record versions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ractd.data.dataset import OfflineDataset


@dataclass
class SavedDataset:
    """Where a generated dataset was written, the dataset as read from its arrays, and its card."""

    hdf5: Path
    dataset: OfflineDataset
    minari_id: str | None
    card: dict[str, Any]


def existing_dataset(out_dir: Path, name: str, minari: bool = True) -> Path | None:
    """The file or folder of an earlier generated dataset `name` that writing it again would replace: its hdf5
    file, or (when `minari`) its Minari dataset `ractd/<name>-v0`; None if there is none."""
    from ractd.data.minari_io import minari_data_path

    hdf5 = Path(out_dir) / f"{name}.hdf5"
    if hdf5.exists():
        return hdf5
    minari_dir = minari_data_path(f"ractd/{name}-v0").parent
    return minari_dir if minari and minari_dir.exists() else None


def refuse_to_replace(out_dir: Path, name: str, minari: bool = True) -> None:
    """Refuse to replace a generated dataset: runs trained on it are fingerprinted on its contents, and a new one
    under the same name would no longer match them."""
    from ractd.data.errors import DatasetError

    found = existing_dataset(out_dir, name, minari)
    if found is not None:
        raise DatasetError(f"{found}: dataset {name} already exists (runs trained on it would no longer match its "
                           "contents); pass --overwrite to replace it")


def save_generated_dataset(
    out_dir: Path,
    name: str,
    arrays: dict[str, np.ndarray],
    metadata: dict[str, Any],
    *,
    env_id: str,
    ref: tuple[float, float],
    algorithm_name: str,
    minari: bool = True,
    description: str | None = None,
    card_extra: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> SavedDataset:
    """Write `<out_dir>/<name>.hdf5`, the Minari dataset `ractd/<name>-v0` (unless `minari=False`) and
    `<out_dir>/card.json`.

    Every file is written to a temporary name and renamed into place, so a reader never sees half a file.
    An existing dataset of the same name (hdf5 file or Minari id) is replaced, or refused with
    `overwrite=False` (`refuse_to_replace`; `ractd data generate` without `--overwrite`). `metadata` goes
    into the hdf5 file, `ref` = (ref_min_score, ref_max_score) normalizes the card's returns and is recorded
    in Minari, `card_extra` adds sections to the card.
    """
    from ractd.data.card import dataset_card
    from ractd.data.d4rl import write_d4rl_hdf5
    from ractd.data.dataset import OfflineDataset
    from ractd.io import write_json

    out_dir = Path(out_dir)
    if not overwrite:
        refuse_to_replace(out_dir, name, minari)
    hdf5_path = write_d4rl_hdf5(out_dir / f"{name}.hdf5", arrays, metadata)
    dataset = OfflineDataset.from_arrays(arrays, metadata=metadata, source=str(hdf5_path))

    minari_id = None
    if minari:
        from ractd.data.minari_io import write_minari

        minari_id = f"ractd/{name}-v0"
        write_minari(
            minari_id,
            dataset,
            env_id,
            ref_min_score=ref[0],
            ref_max_score=ref[1],
            algorithm_name=algorithm_name,
            description=description,
            overwrite=True,
        )

    card = dataset_card(dataset, *ref) | dict(card_extra or {})
    write_json(out_dir / "card.json", card)
    return SavedDataset(hdf5_path, dataset, minari_id, card)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that determine generated data."""
    import importlib.metadata as md

    out = {}
    for pkg in ("ractd", "gymnasium", "mujoco", "stable-baselines3", "torch", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
