"""Per-dimension min–max normalization to [−1, 1] (docs/algorithm.md §1.5), for numpy arrays and torch tensors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ractd.data.errors import DatasetError

#: Dimensions whose range is below this get scale 1 and offset −min (docs/algorithm.md §1.5).
RANGE_EPS = 1e-7


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


class MinMaxNormalizer:
    """norm(x) = x·scale + offset with scale = 2/(max − min), offset = −1 − scale·min (docs/algorithm.md §1.5).

    Statistics are per feature: fitted over axis 0 of an (N, *feature_shape) array, applied to any
    array whose trailing dimensions are ``feature_shape`` (a 1-D (N,) fit gives scalar parameters
    that broadcast over anything). Dimensions with max − min < 1e−7 get scale 1 and offset −min,
    i.e. map to 0. No clipping. numpy in → numpy out; torch in → torch out on the same device and
    dtype (torch is imported only when a tensor is passed).
    """

    def __init__(self, scale: np.ndarray, offset: np.ndarray, min: np.ndarray, max: np.ndarray) -> None:
        self.scale = np.asarray(scale, dtype=np.float32)
        self.offset = np.asarray(offset, dtype=np.float32)
        self.min = np.asarray(min, dtype=np.float32)
        self.max = np.asarray(max, dtype=np.float32)
        shapes = {a.shape for a in (self.scale, self.offset, self.min, self.max)}
        if len(shapes) != 1:
            raise ValueError(f"normalizer parameters must share one shape, found {sorted(shapes)}")
        self._torch_cache: dict[tuple[Any, Any], tuple[Any, Any]] = {}

    @classmethod
    def fit(cls, x: np.ndarray) -> MinMaxNormalizer:
        """Fit per-feature min/max over axis 0 of ``x`` (N, *feature_shape)."""
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"cannot fit a normalizer on an empty array of shape {x.shape}")
        lo = x.min(axis=0).astype(np.float64)
        hi = x.max(axis=0).astype(np.float64)
        rng = hi - lo
        flat = rng < RANGE_EPS
        scale = np.where(flat, 1.0, 2.0 / np.where(flat, 1.0, rng))
        offset = np.where(flat, -lo, -1.0 - scale * lo)
        return cls(scale, offset, lo, hi)

    @property
    def shape(self) -> tuple[int, ...]:
        """Feature shape the parameters apply to."""
        return tuple(self.scale.shape)

    def _params(self, x: Any) -> tuple[Any, Any]:
        if _is_torch(x):
            key = (x.device, x.dtype)
            if key not in self._torch_cache:
                import torch

                self._torch_cache[key] = (
                    torch.as_tensor(self.scale, dtype=x.dtype, device=x.device),
                    torch.as_tensor(self.offset, dtype=x.dtype, device=x.device),
                )
            return self._torch_cache[key]
        dtype = x.dtype if x.dtype.kind == "f" else np.float32
        return self.scale.astype(dtype, copy=False), self.offset.astype(dtype, copy=False)

    def _check(self, x: Any) -> Any:
        if not _is_torch(x):
            x = np.asarray(x)
            if x.dtype.kind != "f":
                x = x.astype(np.float32)
        feat = self.shape
        if feat and tuple(x.shape[len(x.shape) - len(feat) :]) != feat:
            raise ValueError(f"normalizer for features of shape {feat} applied to an array of shape "
                             f"{tuple(x.shape)}")
        return x

    def normalize(self, x: Any) -> Any:
        """norm(x) = x·scale + offset, to [−1, 1] on the fitted data (docs/algorithm.md §1.5)."""
        x = self._check(x)
        scale, offset = self._params(x)
        return x * scale + offset

    def unnormalize(self, y: Any) -> Any:
        """x = (y − offset)/scale, the inverse of ``normalize``."""
        y = self._check(y)
        scale, offset = self._params(y)
        return (y - offset) / scale

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters as float32 arrays: ``scale``, ``offset``, ``min``, ``max``."""
        return {"scale": self.scale, "offset": self.offset, "min": self.min, "max": self.max}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray]) -> MinMaxNormalizer:
        """Rebuild from ``state_dict()`` output."""
        missing = {"scale", "offset", "min", "max"} - set(state)
        if missing:
            raise KeyError(f"normalizer state is missing {sorted(missing)}; found {sorted(state)}")
        return cls(state["scale"], state["offset"], state["min"], state["max"])

    def equals(self, other: MinMaxNormalizer, atol: float = 0.0) -> bool:
        """Same feature shape and parameters within ``atol``."""
        a, b = self.state_dict(), other.state_dict()
        return all(a[k].shape == b[k].shape and np.allclose(a[k], b[k], rtol=0.0, atol=atol) for k in a)

    def __repr__(self) -> str:
        return f"MinMaxNormalizer(shape={self.shape})"


class NormalizerSet(Mapping[str, MinMaxNormalizer]):
    """Named normalizers (``observations``, ``actions``, ``returns`` ...) saved together with a model."""

    def __init__(self, normalizers: Mapping[str, MinMaxNormalizer] | None = None) -> None:
        self._items: dict[str, MinMaxNormalizer] = dict(normalizers or {})
        for name in self._items:
            if "." in name:
                raise ValueError(f"normalizer name {name!r} must not contain '.'")

    @classmethod
    def fit(cls, arrays: Mapping[str, np.ndarray]) -> NormalizerSet:
        """Fit one ``MinMaxNormalizer`` per named array (statistics over axis 0)."""
        return cls({name: MinMaxNormalizer.fit(a) for name, a in arrays.items()})

    def __getitem__(self, name: str) -> MinMaxNormalizer:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"no normalizer named {name!r}; available: {sorted(self._items)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"NormalizerSet({ {k: v.shape for k, v in self._items.items()} })"

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat ``{"<name>.<param>": array}`` mapping."""
        return {f"{n}.{k}": v for n, norm in self._items.items() for k, v in norm.state_dict().items()}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray]) -> NormalizerSet:
        """Inverse of ``state_dict``."""
        grouped: dict[str, dict[str, np.ndarray]] = {}
        for key, value in state.items():
            name, _, param = key.rpartition(".")
            if not name:
                raise KeyError(f"normalizer key {key!r} is not of the form '<name>.<param>'")
            grouped.setdefault(name, {})[param] = np.asarray(value)
        return cls({name: MinMaxNormalizer.from_state_dict(p) for name, p in grouped.items()})

    def save(self, path: str | os.PathLike) -> None:
        """Write as safetensors (keys like ``observations.scale``), atomically."""
        from safetensors.numpy import save_file

        from ractd.io import atomic_path

        state = self.state_dict()
        # safetensors stores 0-d arrays as (1,): record the true shapes to restore them on load
        shapes = json.dumps({k: list(v.shape) for k, v in state.items()})
        with atomic_path(path) as tmp:
            save_file({k: np.ascontiguousarray(v).reshape(v.shape or (1,)) for k, v in state.items()},
                      str(tmp), metadata={"format": "ractd.NormalizerSet/1", "shapes": shapes})

    @classmethod
    def load(cls, path: str | os.PathLike) -> NormalizerSet:
        """Read a file written by ``save``."""
        from safetensors import safe_open
        from safetensors.numpy import load_file

        try:
            state = load_file(str(path))
            with safe_open(str(path), framework="numpy") as f:
                shapes = json.loads((f.metadata() or {}).get("shapes", "{}"))
            state = {k: v.reshape(shapes[k]) if k in shapes else v for k, v in state.items()}
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: normalizer file not found") from None
        except Exception as e:  # safetensors raises its own error types for corrupt files
            raise DatasetError(f"{path}: not a readable safetensors normalizer file ({e})") from None
        try:
            return cls.from_state_dict(state)
        except (KeyError, ValueError) as e:
            raise DatasetError(f"{path}: {e}") from None

    def equals(self, other: NormalizerSet, atol: float = 0.0) -> bool:
        """Same names and every normalizer equal within ``atol``."""
        return set(self) == set(other) and all(self[k].equals(other[k], atol) for k in self)
