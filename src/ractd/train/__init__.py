"""Training: the one generic loop (`train`) and what plugs into it (`Objective`, `BatchSource`).

The names below are imported on first use (importing the package costs nothing until one is used). The loop's
settings, `LoopConfig`, live outside the package in `ractd.loop_config` (torch-free), so a run config and
inference never import the training package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ractd.loop_config import LoopConfig
    from ractd.train.distributed import unwrap
    from ractd.train.ema import EMA, ema_decay
    from ractd.train.loop import train
    from ractd.train.order import batch_indices, epoch_permutation, steps_per_epoch
    from ractd.train.protocols import BatchSource, Objective, TrainResult
    from ractd.train.schedule import cosine_warmup_factor, cosine_warmup_lr

_HOME = {  # exported name → the submodule defining it
    "EMA": "ema",
    "BatchSource": "protocols",
    "LoopConfig": "ractd.loop_config",
    "Objective": "protocols",
    "TrainResult": "protocols",
    "batch_indices": "order",
    "cosine_warmup_factor": "schedule",
    "cosine_warmup_lr": "schedule",
    "ema_decay": "ema",
    "epoch_permutation": "order",
    "steps_per_epoch": "order",
    "train": "loop",
    "unwrap": "distributed",
}

__all__ = [
    "EMA",
    "BatchSource",
    "LoopConfig",
    "Objective",
    "TrainResult",
    "batch_indices",
    "cosine_warmup_factor",
    "cosine_warmup_lr",
    "ema_decay",
    "epoch_permutation",
    "steps_per_epoch",
    "train",
    "unwrap",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = _HOME[name]
    value = getattr(importlib.import_module(home if "." in home else f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
