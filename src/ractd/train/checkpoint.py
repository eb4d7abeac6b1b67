"""Training checkpoints and weight files without pickle: safetensors for tensors, JSON for the rest.

A checkpoint is the folder `run_dir/checkpoint/`:

    model.safetensors      online weights of the trainable module
    ema.safetensors        EMA weights (if EMA is on)
    optimizer.safetensors  optimizer state tensors, keys "state.<param index>.<name>"
    rng.safetensors        RNG states of every rank, one uint8 tensor per rank ("rank0", ...)
    objective.safetensors  the objective's extra_state() (if it has one)
    state.json             written last: step, epoch, optimizer param groups and non-tensor state,
                           RNG layout, EMA update count, loop config, logger/selection state, ...

It is written into a fresh temporary folder which is then swapped in by renames
(checkpoint → .checkpoint.old, tmp → checkpoint, delete .checkpoint.old), so a crash at any point
leaves either the previous or the new checkpoint complete; `find_checkpoint` knows where to look.
Every safetensors file carries the step in its metadata and loading checks it against state.json.
Loading reads tensors with safetensors and JSON with `json`: nothing is ever unpickled.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ractd.io import read_json, write_json
from ractd.weights import load_tensors, save_tensors, tensor_file_metadata

CHECKPOINT_DIR = "checkpoint"
OLD_CHECKPOINT_DIR = ".checkpoint.old"
STATE_FILE = "state.json"
FORMAT = "ractd.train.checkpoint/1"


# --- safetensors files -------------------------------------------------------------------------

# --- optimizer state -----------------------------------------------------------------------------

def _jsonable(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v, where) for v in value]
    raise TypeError(f"{where}: cannot store a value of type {type(value).__name__} in JSON")


def optimizer_state_to_tensors(optimizer: torch.optim.Optimizer
                               ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten optimizer.state_dict() into tensors ("state.<i>.<name>") and a JSON-able structure."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in sd["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = _jsonable(value, f"optimizer state {index}.{name}")
    groups = [{k: _jsonable(v, f"optimizer param_group {k}") for k, v in g.items()}
              for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "state_scalars": scalars}


def optimizer_state_from_tensors(tensors: dict[str, torch.Tensor], structure: dict[str, Any]
                                 ) -> dict[str, Any]:
    """Inverse of `optimizer_state_to_tensors`: a dict for optimizer.load_state_dict."""
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = t
    for index, entries in structure.get("state_scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    groups = []
    for g in structure["param_groups"]:
        # JSON turned tuples (e.g. betas) into lists; `params` stays a list of indices.
        groups.append({k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()})
    return {"state": state, "param_groups": groups}


# --- RNG states ------------------------------------------------------------------------------------

def _u8(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a).view(np.uint8).copy())


def rng_state(device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """This process's torch (CPU + `device`), numpy (legacy global) and python RNG states as uint8 tensors."""
    out = {"torch_cpu": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        out["torch_cuda"] = torch.cuda.get_rng_state(device)
    if device is not None and device.type == "mps":
        out["torch_mps"] = torch.mps.get_rng_state()
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global stream objectives may use)
    if kind != "MT19937":
        raise ValueError(f"unsupported numpy bit generator {kind!r}")
    out["numpy"] = torch.cat([_u8(np.asarray(keys, dtype="<u4")),
                              _u8(np.array([pos, has_gauss], dtype="<i8")),
                              _u8(np.array([cached], dtype="<f8"))])
    version, internal, gauss_next = random.getstate()
    out["python"] = torch.cat([_u8(np.asarray(internal, dtype="<u8")),
                               _u8(np.array([version, gauss_next is not None], dtype="<i8")),
                               _u8(np.array([gauss_next or 0.0], dtype="<f8"))])
    return out


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device | None = None) -> None:
    """Restore the states produced by `rng_state`."""
    torch.set_rng_state(state["torch_cpu"].cpu())
    if device is not None and device.type == "cuda" and "torch_cuda" in state:
        torch.cuda.set_rng_state(state["torch_cuda"].cpu(), device)
    if device is not None and device.type == "mps" and "torch_mps" in state:
        torch.mps.set_rng_state(state["torch_mps"].cpu())
    b = state["numpy"].numpy().tobytes()
    keys = np.frombuffer(b[:2496], dtype="<u4")
    pos, has_gauss = np.frombuffer(b[2496:2512], dtype="<i8")
    cached = np.frombuffer(b[2512:2520], dtype="<f8")[0]
    np.random.set_state(("MT19937", keys.astype(np.uint32), int(pos), int(has_gauss), float(cached)))  # noqa: NPY002
    b = state["python"].numpy().tobytes()
    internal = tuple(int(x) for x in np.frombuffer(b[:5000], dtype="<u8"))
    version, has_next = (int(x) for x in np.frombuffer(b[5000:5016], dtype="<i8"))
    gauss = float(np.frombuffer(b[5016:5024], dtype="<f8")[0])
    random.setstate((version, internal, gauss if has_next else None))


def pack_rng(state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[list[Any]]]:
    """Concatenate an RNG state dict into one uint8 tensor (for gathering across ranks) + its layout."""
    names = sorted(state)
    parts = [state[n].reshape(-1).to(torch.uint8).cpu() for n in names]
    return torch.cat(parts), [[n, int(p.numel())] for n, p in zip(names, parts, strict=True)]


def unpack_rng(flat: torch.Tensor, layout: list[list[Any]]) -> dict[str, torch.Tensor]:
    """Inverse of `pack_rng`."""
    out, offset = {}, 0
    for name, size in layout:
        out[name] = flat[offset:offset + size].clone()
        offset += size
    if offset != flat.numel():
        raise ValueError(f"RNG state has {flat.numel()} bytes, layout describes {offset}")
    return out


# --- the checkpoint folder ---------------------------------------------------------------------------

@dataclass
class Checkpoint:
    """A loaded checkpoint: its folder, state.json contents and tensor files by stem ("model", ...)."""

    path: Path
    state: dict[str, Any]
    tensors: dict[str, dict[str, torch.Tensor]]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def _is_complete(path: Path) -> bool:
    return (path / STATE_FILE).is_file()


def find_checkpoint(run_dir: str | Path) -> Path | None:
    """The last complete checkpoint folder of a run (checkpoint/, or .checkpoint.old after a crash
    between the two renames of a swap), or None."""
    run_dir = Path(run_dir)
    for name in (CHECKPOINT_DIR, OLD_CHECKPOINT_DIR):
        if _is_complete(run_dir / name):
            return run_dir / name
    return None


def _swap_in(tmp: Path, run_dir: Path) -> Path:
    """Make `tmp` the run's checkpoint folder by renames; the old one survives until the new one is in."""
    final, old = run_dir / CHECKPOINT_DIR, run_dir / OLD_CHECKPOINT_DIR
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final


def save_checkpoint(run_dir: str | Path, files: dict[str, dict[str, torch.Tensor]], state: dict[str, Any]
                    ) -> Path:
    """Write a checkpoint (tensor files by stem + state.json) into run_dir/checkpoint/ crash-safely.

    `state` must contain an integer "step"; it is stamped into every tensor file's metadata.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    step = int(state["step"])
    tmp = run_dir / f".checkpoint.tmp-{step}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        for stem, tensors in files.items():
            save_tensors(tmp / f"{stem}.safetensors", tensors, metadata={"step": str(step), "format": FORMAT})
        write_json(tmp / STATE_FILE, {**state, "format": FORMAT, "files": sorted(files)})
        return _swap_in(tmp, run_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    """Load the last complete checkpoint of a run, or None if there is none. Never unpickles."""
    path = find_checkpoint(run_dir)
    if path is None:
        return None
    state = read_json(path / STATE_FILE)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path / STATE_FILE}: key 'format' is {state.get('format')!r}, expected {FORMAT!r}")
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    for stem in state.get("files", []):
        file = path / f"{stem}.safetensors"
        stamped = tensor_file_metadata(file).get("step")
        if stamped != str(state["step"]):
            raise ValueError(f"{file}: metadata step {stamped!r} does not match {path / STATE_FILE} "
                             f"step {state['step']} (mixed checkpoint files)")
        tensors[stem] = load_tensors(file)
    return Checkpoint(path, state, tensors)


def remove_checkpoint(run_dir: str | Path) -> None:
    """Delete a run's checkpoint folders (used when a run is restarted from scratch)."""
    run_dir = Path(run_dir)
    for name in (CHECKPOINT_DIR, OLD_CHECKPOINT_DIR):
        if (run_dir / name).exists():
            shutil.rmtree(run_dir / name)
