"""D4RL-format hdf5 files with plain h5py: read, validate, write atomically (docs/algorithm.md §1.1).

Layout: flat per-step datasets ``observations``, ``actions``, ``rewards``, ``terminals``,
``timeouts``, optionally ``next_observations`` and ``infos/*`` (``infos/goal``, ``infos/qpos``,
``infos/qvel`` ...); everything under ``metadata/`` is description, not data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ractd.data.dataset import OfflineDataset, validate_arrays
from ractd.data.errors import DatasetError

#: Metadata arrays larger than this (e.g. D4RL's stored policy weights) are not loaded into memory.
MAX_METADATA_ARRAY_SIZE = 64


def _open(path: str | os.PathLike) -> Any:
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (expected a D4RL-format .hdf5 file)")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file ({e})") from None


def _walk(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    import h5py

    out = []
    for name, item in group.items():
        key = f"{prefix}{name}"
        if isinstance(item, h5py.Group):
            out.extend(_walk(item, key + "/"))
        else:
            out.append((key, item))
    return out


def read_d4rl_hdf5(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every per-step dataset of a D4RL hdf5 file, keyed by its full path (``infos/goal``).

    ``metadata/*`` entries are left out (see ``read_d4rl_metadata``). Arrays are returned exactly as
    stored (dtype and bytes); validation happens in ``OfflineDataset.from_arrays``.
    """
    with _open(path) as f:
        return {key: item[()] for key, item in _walk(f) if not key.startswith("metadata/")}


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [_decode(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_d4rl_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The file's description: root attributes and ``metadata/*`` entries as a nested dict.

    Nested groups become nested dicts; numpy scalars become Python values; arrays with more than
    ``MAX_METADATA_ARRAY_SIZE`` elements (D4RL's stored policy weights) are not loaded: their keys
    are listed under ``"skipped_arrays"``.
    """
    meta: dict[str, Any] = {}
    skipped: list[str] = []
    with _open(path) as f:
        for k, v in f.attrs.items():
            meta[k] = _decode(v)
        if "metadata" in f:
            for key, item in _walk(f["metadata"]):
                if item.size > MAX_METADATA_ARRAY_SIZE:
                    skipped.append(f"metadata/{key}")
                    continue
                value = _decode(item[()])
                if item.attrs.get("json", False):
                    value = json.loads(value)
                node = meta
                *parents, leaf = key.split("/")
                for p in parents:
                    node = node.setdefault(p, {})
                node[leaf] = value
    if skipped:
        meta["skipped_arrays"] = skipped
    return meta


def load_d4rl(path: str | os.PathLike, **from_arrays_kwargs: Any) -> OfflineDataset:
    """Read and validate a D4RL hdf5 file into an ``OfflineDataset`` (kwargs go to ``from_arrays``)."""
    meta = read_d4rl_metadata(path)
    meta["source"] = str(path)
    meta.setdefault("name", Path(path).stem)
    return OfflineDataset.from_arrays(read_d4rl_hdf5(path), metadata=meta, source=str(path),
                                      **from_arrays_kwargs)


def _write_metadata(group: Any, meta: Mapping[str, Any]) -> None:
    for key, value in meta.items():
        key = str(key)
        if "/" in key:
            raise DatasetError(f"metadata key {key!r} must not contain '/'")
        if isinstance(value, Mapping):
            _write_metadata(group.create_group(key), value)
        elif isinstance(value, str | bytes | bool | int | float | np.generic) or (
            isinstance(value, np.ndarray) and value.dtype.kind in "biuf"
        ):
            group.create_dataset(key, data=value)
        else:  # None, lists, tuples ...: stored as JSON text
            ds = group.create_dataset(key, data=json.dumps(value, default=str))
            ds.attrs["json"] = True


def write_d4rl_hdf5(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any] | None = None,
    compression: str | None = None,
) -> Path:
    """Write arrays in the D4RL layout, atomically (temp file, then rename).

    The arrays are validated first (``validate_arrays``): on any error a DatasetError naming
    ``path`` and the key is raised and nothing is written. Arrays are stored with their own
    dtypes, so ``read_d4rl_hdf5`` returns them bit-identical. ``metadata`` goes under
    ``metadata/`` (nested dicts as groups). ``compression`` e.g. ``"gzip"``.
    """
    import h5py

    from ractd.io import atomic_path

    path = Path(path)
    validate_arrays(arrays, source=str(path))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in arrays.items():
            a = np.asarray(value)
            f.create_dataset(key, data=a, compression=compression if a.ndim > 0 else None)
        if metadata:
            _write_metadata(f.require_group("metadata"), metadata)
    return path
