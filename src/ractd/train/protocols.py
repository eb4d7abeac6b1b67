"""What plugs into `train` (`Objective`, `BatchSource`, callbacks) and what it returns (`TrainResult`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

Scalar = float | int | torch.Tensor
Callback = Callable[[int, int, nn.Module, "nn.Module | None", Path], "dict[str, Scalar] | None"]


@runtime_checkable
class Objective(Protocol):
    """A training objective. Optional extras, used when present:

    - `validation_loss(model, batch) -> Tensor`: scalar validation loss (default: `loss(...)[0]`);
    - `on_epoch_start(epoch) -> None`: called before the first step of every epoch (and when a run
      resumes inside an epoch), e.g. to set train/eval modes of frozen networks (docs/algorithm.md §4.11);
    - `extra_state() -> dict[str, Tensor]` / `load_extra_state(tensors)`: state outside the trainable
      module that must survive a resume (e.g. a target network), saved in the checkpoint;
    - `to(device)`: move frozen networks; otherwise only `trainable()` is moved.
    """

    def trainable(self) -> nn.Module:
        """The module optimized (and EMA'd); frozen networks live in the objective."""
        ...

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int
             ) -> tuple[torch.Tensor, dict[str, Scalar]]:
        """Scalar loss and scalars to log. `model` may be a DDP wrapper: call it as `model(...)`."""
        ...

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        """Hook after each optimizer step (e.g. target-network update); `model` is the plain module."""
        ...


@runtime_checkable
class BatchSource(Protocol):
    """Indexable training items (e.g. windows); batches are numpy arrays keyed by name."""

    def __len__(self) -> int: ...

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]: ...


def check_objective(objective: Any) -> None:
    """Refuse an object without the three methods every `Objective` has."""
    for name in ("trainable", "loss", "after_optimizer_step"):
        if not callable(getattr(objective, name, None)):
            raise TypeError(f"objective of type {type(objective).__name__} has no method {name!r} "
                            "(see ractd.train.Objective)")


def to_float(name: str, value: Scalar) -> float:
    """A logged scalar (number or one-element tensor) as a python float."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"logged scalar {name!r} has shape {tuple(value.shape)}, expected one element")
        return float(value.detach().float().cpu())
    return float(value)


@dataclass
class TrainResult:
    """What `train` did: final step, last logged scalars, wall time and where things are."""

    step: int
    epoch: int
    total_steps: int
    last_scalars: dict[str, float]
    wall_time_s: float
    run_dir: Path
    model_path: Path
    ema_path: Path | None
    checkpoint_path: Path | None
    csv_path: Path
    meta_path: Path
    best: dict[str, Any] | None = None
    resumed_from: int | None = None
    finished: bool = True  # False if stopped by max_steps before the end of the schedule
    extra: dict[str, Any] = field(default_factory=dict)
