"""Weight files without pickle: safetensors read/write (atomic) and strict loading into a module.

The one place ractd reads and writes tensors to disk; artifacts (`ractd.artifact`) and training checkpoints
(`ractd.train.checkpoint`) both use it. Loading never unpickles anything.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .io import atomic_path


def _storable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors; tensors sharing storage (tied weights) are cloned apart."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensor file entry {name!r}: expected a torch.Tensor, got {type(t).__name__}")
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            t = t.clone()
        elif t.numel():
            seen.add(ptr)
        out[name] = t
    return out


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> Path:
    """Write tensors to a safetensors file atomically (temp file + rename)."""
    path = Path(path)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(_storable(tensors), str(tmp), metadata=metadata)
    return path


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file (CPU tensors) with a clear error if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None


def tensor_file_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata stored in a safetensors header ({} if none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None


def save_state_dict(module: torch.nn.Module, path: str | Path,
                    metadata: dict[str, str] | None = None) -> Path:
    """Save a module's state_dict as safetensors (atomic)."""
    return save_tensors(path, module.state_dict(), metadata)


def load_state_dict_into(module: torch.nn.Module, path: str | Path) -> None:
    """Load a safetensors weight file into `module` (strict), naming the file and keys on mismatch."""
    path = Path(path)
    tensors = load_tensors(path)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match the model: missing keys {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
                         f"{'...' if len(unexpected) > 5 else ''}")
    for k, want in expected.items():  # in the model's order, so the first mismatch is reported
        if tuple(tensors[k].shape) != tuple(want.shape):
            raise ValueError(f"{path}: key {k!r} has shape {tuple(tensors[k].shape)}, "
                             f"the model expects {tuple(want.shape)}")
    module.load_state_dict(tensors, strict=True)
