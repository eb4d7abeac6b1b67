"""Multi-process training under `torchrun`: process group, DDP wrapping, batch sharding, reductions.

Nothing here launches processes: `torchrun` (or `python -m torch.distributed.run`) sets RANK,
WORLD_SIZE and LOCAL_RANK, and `init_distributed` joins the group it describes (gloo on CPU, nccl on
CUDA). Without those variables everything degrades to a single process (rank 0 of 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ractd.devices import check_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global rank, number of processes, rank on this node, torch device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False  # True if init_distributed created the process group

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, checkpoints and writes artifacts."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected an integer") from None


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """'cpu' | 'cuda' | 'cuda:N' | 'mps' → torch.device this machine has (`ractd.devices.check_device`).

    Plain 'cuda' under torchrun means this process's GPU, cuda:LOCAL_RANK.
    """
    dev = check_device(device)
    if dev.type != "cuda" or dev.index is not None:
        return dev
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: torchrun's LOCAL_RANK {local_rank} needs cuda:{local_rank}, but this "
                         f"machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", local_rank)


def init_distributed(device: str = "cpu") -> DistInfo:
    """Join the torchrun process group if WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA) and pick the device."""
    world_size = _env_int("WORLD_SIZE") or 1
    rank = _env_int("RANK") or 0
    local_rank = _env_int("LOCAL_RANK") or 0
    dev = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistInfo(0, 1, 0, dev, False)
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world_size} but this torch build has no torch.distributed")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    initialized_here = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        initialized_here = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, initialized_here)


def wrap_ddp(module: nn.Module, info: DistInfo) -> nn.Module:
    """DistributedDataParallel(module) when running with several processes, else `module` itself."""
    if not info.distributed:
        return module
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DistributedDataParallel (or DataParallel) wrapper; identity otherwise."""
    while isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        model = model.module
    return model


def shard(indices: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This rank's strided share of a global batch, indices[rank::world_size].

    The global batch is first padded (wrapping around to its start) to a multiple of world_size, so
    all ranks get equally many items and DDP's gradient average equals the mean over the padded batch.
    """
    if world_size <= 1:
        return indices
    if len(indices) == 0:
        raise ValueError("cannot shard an empty batch")
    pad = (-len(indices)) % world_size
    if pad:
        indices = np.concatenate([indices, np.resize(indices, pad)])
    return indices[rank::world_size]


def barrier(info: DistInfo) -> None:
    """Wait for all processes (no-op in a single process)."""
    if info.distributed:
        dist.barrier()


def all_reduce_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average a dict of scalars over all processes (every rank must call it with the same keys)."""
    if not info.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= info.world_size
    return dict(zip(keys, t.tolist(), strict=True))


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over all processes (in place; returned for convenience)."""
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather_to_main(t: torch.Tensor, info: DistInfo) -> list[torch.Tensor]:
    """All ranks' copies of an equally shaped tensor (every rank gets the list; rank order)."""
    if not info.distributed:
        return [t]
    dev_t = t.to(info.device)
    out = [torch.empty_like(dev_t) for _ in range(info.world_size)]
    dist.all_gather(out, dev_t)
    return [o.cpu() for o in out]


def cleanup(info: DistInfo) -> None:
    """Barrier, then destroy the process group if init_distributed created it."""
    if info.distributed and dist.is_initialized():
        dist.barrier()
        if info.initialized_here:
            dist.destroy_process_group()
