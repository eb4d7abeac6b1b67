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
) -> SavedDataset:
    """Write `<out_dir>/<name>.hdf5`, the Minari dataset `ractd/<name>-v0` (unless `minari=False`) and
    `<out_dir>/card.json`.

    Every file is written to a temporary name and renamed into place, so a reader never sees half a file;
    an existing Minari dataset of the same id is replaced. `metadata` goes into the hdf5 file,
    `ref` = (ref_min_score, ref_max_score) normalizes the card's returns and is recorded in Minari,
    `card_extra` adds sections to the card.
    """
    from ractd.data.card import dataset_card
    from ractd.data.d4rl import write_d4rl_hdf5
    from ractd.data.dataset import OfflineDataset
    from ractd.io import write_json

    out_dir = Path(out_dir)
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
