"""`LoopConfig`: the optimization and bookkeeping settings of `train`, validated on construction (torch-free)."""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import MISSING, dataclass, fields
from typing import Any

from ractd import schema

_DEVICE_RE = re.compile(r"cpu|mps|cuda(:\d+)?")


def _is_int(v: Any) -> bool:
    """An integer that is not a bool (numpy integers count: they register as numbers.Integral)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    """A finite real number that is not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


@dataclass
class LoopConfig:
    """Optimization and bookkeeping knobs of `train`. Validated on construction.

    Units: `checkpoint_every` and `log_every` count optimizer steps (checkpoint_every = 0: only at the
    end of training); `val_every` and `callback_every` count epochs (the last epoch always runs
    both). `max_steps` stops early without changing the schedule (which spans epochs ×
    steps_per_epoch), so a run stopped at max_steps is an exact prefix of the full run and can be
    resumed to it. `export` picks which weights become model.safetensors (the file the next stage
    reads): "online" (the reference code's choice, docs/algorithm.md §3.5) or "ema"; ema.safetensors is
    written whenever `ema` is on, and online.safetensors when export = "ema". `select_metric` (a logged
    scalar, e.g. "val_loss" or a callback's score) keeps the best epoch-end weights in best/, by
    `select_mode` "min" or "max".
    """

    epochs: int
    batch_size: int
    lr: float = 1e-4
    betas: tuple[float, float] = (0.95, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-6
    warmup_steps: int = 500
    grad_clip: float | None = None
    ema: bool = True
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    checkpoint_every: int = 1000
    log_every: int = 10
    val_every: int = 1
    callback_every: int = 1
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    max_steps: int | None = None
    export: str = "online"
    select_metric: str | None = None
    select_mode: str = "min"
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "ractd"

    def __post_init__(self) -> None:
        def fail(name: str, expected: str) -> None:
            raise ValueError(f"LoopConfig.{name}: expected {expected}, got {getattr(self, name)!r}")

        for name in ("epochs", "batch_size", "log_every", "val_every", "callback_every"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                fail(name, "a positive integer")
        for name in ("warmup_steps", "checkpoint_every", "seed"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
                fail(name, "a non-negative integer")
        if self.max_steps is not None and (not _is_int(self.max_steps) or self.max_steps < 1):
            fail("max_steps", "a positive integer or null")
        for name in ("lr", "eps", "ema_power"):
            if not _is_num(getattr(self, name)) or getattr(self, name) <= 0:
                fail(name, "a positive number")
        if not _is_num(self.weight_decay) or self.weight_decay < 0:
            fail("weight_decay", "a non-negative number")
        if not _is_num(self.ema_max_decay) or not 0 <= self.ema_max_decay < 1:
            fail("ema_max_decay", "a number in [0, 1)")
        if self.grad_clip is not None and (not _is_num(self.grad_clip) or self.grad_clip <= 0):
            fail("grad_clip", "a positive number or null (no clipping)")
        if (not isinstance(self.betas, list | tuple) or len(self.betas) != 2
                or not all(_is_num(b) and 0 <= b < 1 for b in self.betas)):
            fail("betas", "two numbers in [0, 1)")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        for name in ("ema", "amp", "tensorboard", "wandb"):
            if not isinstance(getattr(self, name), bool):
                fail(name, "true or false")
        if not isinstance(self.device, str) or not _DEVICE_RE.fullmatch(self.device):
            fail("device", "'cpu', 'cuda', 'cuda:N' or 'mps'")
        if self.export not in ("online", "ema"):
            fail("export", "'online' or 'ema'")
        if self.export == "ema" and not self.ema:
            raise ValueError("LoopConfig.export: 'ema' needs LoopConfig.ema = true")
        if self.select_mode not in ("min", "max"):
            fail("select_mode", "'min' or 'max'")
        if self.select_metric is not None and not (isinstance(self.select_metric, str)
                                                   and self.select_metric):
            fail("select_metric", "a scalar name or null")
        if not isinstance(self.wandb_project, str):
            fail("wandb_project", "a string")
        for name in ("lr", "eps", "weight_decay", "ema_power", "ema_max_decay"):
            setattr(self, name, float(getattr(self, name)))
        if self.grad_clip is not None:
            self.grad_clip = float(self.grad_clip)

    @classmethod
    def from_dict(cls, d: Any, where: str = "LoopConfig") -> LoopConfig:
        """Build from a plain dict (e.g. JSON) with `ractd.schema.from_dict`; errors name `where.field`."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a mapping of settings, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [f.name for f in fields(cls)
                   if f.default is MISSING and f.default_factory is MISSING and f.name not in d]
        if missing and all(key in names for key in d):  # an unknown key is reported first, by the parser
            raise ValueError(f"{where}: missing required key(s) {', '.join(map(repr, missing))}")
        try:
            return schema.from_dict(cls, d)  # without a prefix every message starts with the field's name
        except (TypeError, ValueError) as e:
            raise type(e)(f"{where}.{e}" if where else str(e)) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (from_dict round-trips it)."""
        return schema.to_dict(self)


# Fields a resumed run must share with its checkpoint (the others only change bookkeeping).
RESUME_FIELDS = ("epochs", "batch_size", "lr", "betas", "eps", "weight_decay", "warmup_steps", "grad_clip",
                 "ema", "ema_power", "ema_max_decay", "seed", "amp")
