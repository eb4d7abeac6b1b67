"""Training: the one generic loop (`train`) and what plugs into it (`Objective`, `BatchSource`)."""

from ractd.train.distributed import unwrap
from ractd.train.ema import EMA, ema_decay
from ractd.train.loop import (
    BatchSource,
    LoopConfig,
    Objective,
    TrainResult,
    batch_indices,
    epoch_permutation,
    steps_per_epoch,
    train,
)
from ractd.train.schedule import cosine_warmup_factor, cosine_warmup_lr

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
