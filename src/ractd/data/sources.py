"""One entry point for every dataset source: a D4RL file, a local Minari id, or a generated name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ractd.data.d4rl import load_d4rl
from ractd.data.dataset import OfflineDataset
from ractd.data.errors import DatasetError
from ractd.data.minari_io import list_minari_datasets, load_minari, minari_data_path


def generated_dataset_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where ``ractd data generate NAME`` writes the D4RL file: ``<data_root>/NAME/NAME.hdf5``."""
    from ractd.paths import data_root

    base = Path(root).expanduser() if root is not None else data_root()
    return base / name / f"{name}.hdf5"


def resolve_source(
    source: str, root: str | os.PathLike | None = None, minari_root: str | os.PathLike | None = None
) -> tuple[str, str | Path]:
    """Decide what ``source`` names: ``("d4rl", path)`` or ``("minari", dataset_id)``.

    Tried in order: an existing file (D4RL hdf5); an id under the Minari root; a generated dataset
    ``<root>/NAME/NAME.hdf5``. Otherwise a DatasetError listing what was tried.
    """
    path = Path(source).expanduser()
    if path.is_file():
        return "d4rl", path
    tried = [f"a file at {path.resolve()}"]
    if path.is_dir() and (path / "data" / "metadata.json").is_file():  # a Minari dataset folder
        return "minari_path", path
    mpath = minari_data_path(source, minari_root)
    if (mpath / "metadata.json").is_file():
        return "minari", source
    tried.append(f"a Minari dataset at {mpath.parent}")
    gen = generated_dataset_path(source, root)
    if gen.is_file():
        return "d4rl", gen
    tried.append(f"a generated dataset at {gen}")
    raise DatasetError(_not_found(source, path, mpath, gen, minari_root))


def _not_found(source: str, path: Path, mpath: Path, gen: Path, minari_root: str | os.PathLike | None) -> str:
    """One line saying what `source` looked like and the real remedy: a missing file, a folder, a Minari id that
    is not on this machine, or a dataset name `ractd data generate` can create."""
    if path.is_dir():
        return (f"{path}: is a directory, not a D4RL hdf5 file or a Minari dataset folder (one holding "
                "data/metadata.json)")
    if path.suffix in (".hdf5", ".h5", ".hdf") or source.startswith(("/", ".", "~")):
        return f"{path}: file not found"
    if "/" in source:  # a Minari id, e.g. mujoco/hopper/medium-v0
        local = list_minari_datasets(minari_root)
        have = f"; datasets there: {', '.join(local)}" if local else ""
        return (f"Minari dataset {source!r} not found: expected its folder at {mpath.parent} (download it with "
                f"minari where there is internet and copy it there, or set MINARI_DATASETS_PATH){have}")
    try:
        from ractd.envs.registry import get_task

        generatable = get_task(source).dataset == source
    except (KeyError, ValueError):
        generatable = False
    if generatable:
        return f"{source}: dataset not generated yet (looked for {gen}); create it with `ractd data generate {source}`"
    return (f"{source}: dataset not found (no file {path}, no Minari dataset at {mpath.parent}, no generated "
            f"dataset at {gen}); pass a D4RL hdf5 path, a local Minari id or a dataset `ractd data generate` makes")


def load_dataset(
    source: str,
    root: str | os.PathLike | None = None,
    minari_root: str | os.PathLike | None = None,
    **kw: Any,
) -> OfflineDataset:
    """Load a dataset from a D4RL hdf5 path, a local Minari id, or a generated dataset name.

    Args:
        source: a file path, a Minari id (``mujoco/hopper/medium-v0``) or a generated name
            (``maze2d-umaze``).
        root: ractd's dataset root for generated names (default ``ractd.paths.data_root()``).
        minari_root: Minari's root (default ``ractd.paths.minari_root()``).
        **kw: passed to ``load_d4rl`` (``OfflineDataset.from_arrays`` options such as
            ``keep_partial``) or ``load_minari`` (``next_observations``).
    """
    kind, where = resolve_source(source, root, minari_root)
    if kind == "d4rl":
        return load_d4rl(where, **kw)
    if kind == "minari_path":
        p = Path(where)
        return load_minari(p.name, root=p.parent, **kw)
    return load_minari(str(where), root=minari_root, **kw)
