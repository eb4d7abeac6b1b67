"""The one generic training loop: any objective, any model, any task (spec §2.4, §3.5, §4.10).

An `Objective` says what is optimized and how its loss is computed; `train` does everything else:
AdamW with the cosine warm-up schedule, EMA, gradient clipping, deterministic data order, periodic
crash-safe checkpoints with exact resume, logging, validation, callbacks, model selection, DDP
under torchrun and the final artifacts.

Data order. Epoch e visits the items in the order `epoch_permutation(seed, e, n)` (a permutation
drawn from (seed, e) only), in consecutive batches of `batch_size`, the last one possibly smaller
(drop_last = False, as the reference DataLoaders). There are `steps_per_epoch = ceil(n / batch_size)`
optimizer steps per epoch, so global step g is batch g mod steps_per_epoch of epoch
g div steps_per_epoch: the data position is derived from the step, and resuming needs nothing else.

Step numbering. `step` counts completed optimizer steps. The objective's `loss(model, batch, k)` and
`after_optimizer_step(model, k)` get the 0-based index k of the step being taken; rows of train.csv,
TensorBoard points and checkpoints are labelled with the number of completed steps (k + 1).

Randomness. A fresh run seeds python, numpy and torch with `seed` (rank r > 0 of a DDP run: a seed
derived from (seed, r)); a resumed run restores every rank's RNG states from the checkpoint.
Validation and callbacks run with saved-and-restored RNG states (validation seeded with `seed`), so
they do not perturb the training stream: losses do not depend on how often one validates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import random
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ractd.io import read_json, write_json
from ractd.train import checkpoint as ckpt_io
from ractd.train.distributed import (
    DistInfo,
    all_reduce_mean,
    all_reduce_sum,
    cleanup,
    gather_to_main,
    init_distributed,
    shard,
    wrap_ddp,
)
from ractd.train.ema import EMA
from ractd.train.logging import CSV_NAME, TB_DIR, RunLogger, TrainProgress
from ractd.train.meta import count_parameters, run_metadata, utc_now
from ractd.train.schedule import cosine_warmup_lr

MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
ONLINE_FILE = "online.safetensors"
META_FILE = "meta.json"
BEST_DIR = "best"

Scalar = float | int | torch.Tensor
Callback = Callable[[int, int, nn.Module, "nn.Module | None", Path], "dict[str, Scalar] | None"]


# --- what plugs into the loop ---------------------------------------------------------------------

@runtime_checkable
class Objective(Protocol):
    """A training objective. Optional extras, used when present:

    - `validation_loss(model, batch) -> Tensor`: scalar validation loss (default: `loss(...)[0]`);
    - `on_epoch_start(epoch) -> None`: called before the first step of every epoch (and when a run
      resumes inside an epoch), e.g. to set train/eval modes of frozen networks (spec §4.11);
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


# --- configuration ------------------------------------------------------------------------------

_DEVICE_RE = re.compile(r"cpu|mps|cuda(:\d+)?")


@dataclass
class LoopConfig:
    """Optimization and bookkeeping knobs of `train`. Validated on construction.

    Units: `checkpoint_every` and `log_every` count optimizer steps (checkpoint_every = 0: only at the
    end of training); `val_every` and `callback_every` count epochs (the last epoch always runs
    both). `max_steps` stops early without changing the schedule (which spans epochs ×
    steps_per_epoch), so a run stopped at max_steps is an exact prefix of the full run and can be
    resumed to it. `export` picks which weights become model.safetensors (the file the next stage
    reads): "online" (the reference code's choice, spec §3.5) or "ema"; ema.safetensors is written
    whenever `ema` is on, and online.safetensors when export = "ema". `select_metric` (a logged
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

        def is_int(v: Any) -> bool:
            return isinstance(v, int | np.integer) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return (is_int(v) or isinstance(v, float | np.floating)) and math.isfinite(float(v))

        for name in ("epochs", "batch_size", "log_every", "val_every", "callback_every"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                fail(name, "a positive integer")
        for name in ("warmup_steps", "checkpoint_every", "seed"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 0:
                fail(name, "a non-negative integer")
        if self.max_steps is not None and (not is_int(self.max_steps) or self.max_steps < 1):
            fail("max_steps", "a positive integer or null")
        for name in ("lr", "eps", "ema_power"):
            if not is_num(getattr(self, name)) or getattr(self, name) <= 0:
                fail(name, "a positive number")
        if not is_num(self.weight_decay) or self.weight_decay < 0:
            fail("weight_decay", "a non-negative number")
        if not is_num(self.ema_max_decay) or not 0 <= self.ema_max_decay < 1:
            fail("ema_max_decay", "a number in [0, 1)")
        if self.grad_clip is not None and (not is_num(self.grad_clip) or self.grad_clip <= 0):
            fail("grad_clip", "a positive number or null (no clipping)")
        if (not isinstance(self.betas, list | tuple) or len(self.betas) != 2
                or not all(is_num(b) and 0 <= b < 1 for b in self.betas)):
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
    def from_dict(cls, d: dict[str, Any], where: str = "LoopConfig") -> LoopConfig:
        """Build from a plain dict (e.g. JSON), refusing unknown keys with a "did you mean" hint."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a mapping of settings, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"{where}: unknown key {key!r}{hint}; known keys: {', '.join(names)}")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.name not in d]
        if missing:
            raise ValueError(f"{where}: missing required key(s) {', '.join(map(repr, missing))}")
        try:
            return cls(**d)
        except ValueError as e:
            raise ValueError(str(e).replace("LoopConfig.", f"{where}.", 1)) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (from_dict round-trips it)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


# Fields a resumed run must share with its checkpoint (the others only change bookkeeping).
RESUME_FIELDS = ("epochs", "batch_size", "lr", "betas", "eps", "weight_decay", "warmup_steps", "grad_clip",
                 "ema", "ema_power", "ema_max_decay", "seed", "amp")


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


# --- pure helpers -------------------------------------------------------------------------------------

def steps_per_epoch(n_items: int, batch_size: int) -> int:
    """Optimizer steps per epoch with drop_last = False: ceil(n_items / batch_size)."""
    if n_items < 1:
        raise ValueError("the training data is empty (0 items); nothing to train on")
    return -(-n_items // batch_size)


def epoch_permutation(seed: int, epoch: int, n_items: int) -> np.ndarray:
    """Order in which epoch `epoch` visits the items: a permutation drawn from (seed, epoch) only."""
    return np.random.default_rng([seed, epoch]).permutation(n_items)


def batch_indices(seed: int, step: int, n_items: int, batch_size: int) -> np.ndarray:
    """Items of the global batch of optimizer step `step` (0-based)."""
    epoch, b = divmod(step, steps_per_epoch(n_items, batch_size))
    return epoch_permutation(seed, epoch, n_items)[b * batch_size:(b + 1) * batch_size]


def rank_seed(seed: int, rank: int) -> int:
    """Seed of process `rank`: `seed` itself on rank 0, else a 32-bit seed derived from (seed, rank)."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's (legacy global) and torch's (all devices) random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global stream)
    torch.manual_seed(seed)


def batch_to_tensors(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """numpy batch → tensors on `device` (float64 becomes float32)."""
    if not isinstance(batch, dict):
        raise TypeError("BatchSource.get_batch must return a dict of numpy arrays, "
                        f"got {type(batch).__name__}")
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            t = value
        elif isinstance(value, np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(value))
        else:
            raise TypeError(f"BatchSource.get_batch: key {key!r} is a {type(value).__name__}, "
                            "expected a numpy array")
        if t.dtype == torch.float64:
            t = t.float()
        out[key] = t.to(device, non_blocking=True)
    return out


@contextlib.contextmanager
def isolated_rng(device: torch.device, seed: int | None = None) -> Iterator[None]:
    """Run a block without touching the caller's RNG streams (optionally seeding it first)."""
    saved = ckpt_io.rng_state(device)
    try:
        if seed is not None:
            seed_everything(seed)
        yield
    finally:
        ckpt_io.set_rng_state(saved, device)


def _to_float(name: str, value: Scalar) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"logged scalar {name!r} has shape {tuple(value.shape)}, expected one element")
        return float(value.detach().float().cpu())
    return float(value)


def _amp(cfg: LoopConfig, device: torch.device) -> tuple[contextlib.AbstractContextManager, Any]:
    """(autocast context, GradScaler or None): bf16 autocast on CUDA when supported, else fp16 + scaler."""
    if not cfg.amp or device.type != "cuda":
        return contextlib.nullcontext(), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


def _check_objective(objective: Any) -> None:
    for name in ("trainable", "loss", "after_optimizer_step"):
        if not callable(getattr(objective, name, None)):
            raise TypeError(f"objective of type {type(objective).__name__} has no method {name!r} "
                            "(see ractd.train.Objective)")


# --- the loop -------------------------------------------------------------------------------------------

class _Run:
    """State of one `train` call (kept in one place so checkpointing sees all of it)."""

    def __init__(self, objective: Objective, data: BatchSource, cfg: LoopConfig, run_dir: Path,
                 info: DistInfo, val_data: BatchSource | None, callbacks: Sequence[Callback]) -> None:
        self.objective, self.data, self.cfg, self.run_dir, self.info = objective, data, cfg, run_dir, info
        self.val_data, self.callbacks = val_data, list(callbacks)
        self.n_items = len(data)
        self.steps_per_epoch = steps_per_epoch(self.n_items, cfg.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.stop_step = min(self.total_steps, cfg.max_steps or self.total_steps)
        self.device = info.device

        model = objective.trainable()
        if not isinstance(model, nn.Module):
            raise TypeError(f"objective.trainable() returned {type(model).__name__}, "
                            "expected a torch.nn.Module")
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("objective.trainable() has no parameters with requires_grad=True")
        if callable(getattr(objective, "to", None)):
            objective.to(self.device)  # type: ignore[attr-defined]
        self.plain = model.to(self.device)
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                           weight_decay=cfg.weight_decay)
        self.ema = EMA(self.plain, cfg.ema_power, cfg.ema_max_decay) if cfg.ema else None
        self.autocast, self.scaler = _amp(cfg, self.device)
        self.step = 0
        self.best: dict[str, Any] | None = None
        self.wall_time = 0.0
        self.last_scalars: dict[str, float] = {}
        self.resumed_from: int | None = None

    # -- checkpoints --

    def checkpoint_state(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
        """Tensor files and JSON state of a checkpoint at the current step (collective under DDP)."""
        packed, layout = ckpt_io.pack_rng(ckpt_io.rng_state(self.device))
        all_rng = gather_to_main(packed, self.info)
        opt_tensors, opt_structure = ckpt_io.optimizer_state_to_tensors(self.optimizer)
        files = {"model": self.plain.state_dict(), "optimizer": opt_tensors,
                 "rng": {f"rank{r}": t for r, t in enumerate(all_rng)}}
        if self.ema is not None:
            files["ema"] = self.ema.averaged.state_dict()
        if callable(getattr(self.objective, "extra_state", None)):
            files["objective"] = self.objective.extra_state()  # type: ignore[attr-defined]
        state = {
            "step": self.step, "epoch": self.step // self.steps_per_epoch, "n_items": self.n_items,
            "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
            "world_size": self.info.world_size, "loop_config": self.cfg.to_dict(),
            "optimizer": opt_structure, "rng_layout": layout,
            "ema_updates": self.ema.updates if self.ema is not None else None,
            "grad_scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "best": self.best, "wall_time_s": self.wall_time, "last_scalars": self.last_scalars,
            "saved_at": utc_now(),
        }
        return files, state

    def save_checkpoint(self) -> None:
        files, state = self.checkpoint_state()
        if self.info.is_main:
            ckpt_io.save_checkpoint(self.run_dir, files, state)

    def restore(self, ck: ckpt_io.Checkpoint) -> None:
        """Load everything a checkpoint holds, refusing one from a different configuration or dataset."""
        where = ck.path / ckpt_io.STATE_FILE
        saved_cfg = ck.state.get("loop_config", {})
        current = self.cfg.to_dict()
        diff = [f"{k}: checkpoint {saved_cfg.get(k)!r} vs now {current[k]!r}" for k in RESUME_FIELDS
                if saved_cfg.get(k) != current[k]]
        if diff:
            raise ValueError(f"{where}: cannot resume, the loop config changed ({'; '.join(diff)}); "
                             "restore these settings or start over with resume=False")
        if ck.state["n_items"] != self.n_items:
            raise ValueError(f"{where}: cannot resume, the checkpoint was trained on n_items="
                             f"{ck.state['n_items']} items but the data now has {self.n_items}")
        ckpt_io.load_state_dict_into(self.plain, ck.path / "model.safetensors")
        if self.ema is not None:
            ckpt_io.load_state_dict_into(self.ema.averaged, ck.path / "ema.safetensors")
            self.ema.updates = int(ck.state["ema_updates"])
        try:
            self.optimizer.load_state_dict(ckpt_io.optimizer_state_from_tensors(
                ck.tensors["optimizer"], ck.state["optimizer"]))
        except (ValueError, KeyError) as e:
            raise ValueError(f"{ck.path / 'optimizer.safetensors'}: does not fit the optimizer "
                             f"({e})") from None
        if self.scaler is not None and ck.state.get("grad_scaler"):
            self.scaler.load_state_dict(ck.state["grad_scaler"])
        if "objective" in ck.tensors:
            if not callable(getattr(self.objective, "load_extra_state", None)):
                raise ValueError(f"{ck.path / 'objective.safetensors'}: the checkpoint holds objective state "
                                 f"but {type(self.objective).__name__} has no load_extra_state()")
            self.objective.load_extra_state(ck.tensors["objective"])  # type: ignore[attr-defined]
        self.step = ck.step
        self.best = ck.state.get("best")
        self.wall_time = float(ck.state.get("wall_time_s", 0.0))
        self.last_scalars = dict(ck.state.get("last_scalars") or {})
        self.resumed_from = ck.step
        key = f"rank{self.info.rank}"
        if ck.state.get("world_size") == self.info.world_size and key in ck.tensors["rng"]:
            ckpt_io.set_rng_state(ckpt_io.unpack_rng(ck.tensors["rng"][key], ck.state["rng_layout"]),
                                  self.device)
        else:
            warnings.warn(f"{where}: saved with world_size={ck.state.get('world_size')}, resuming with "
                          f"{self.info.world_size}; RNG streams are reseeded (resume is not bit-exact)",
                          stacklevel=2)
            seed_everything(rank_seed(self.cfg.seed + ck.step, self.info.rank))

    # -- one epoch-end --

    def validate(self, model: nn.Module) -> float:
        """Mean validation loss of the online model over all of val_data (seeded, no grad, eval mode)."""
        assert self.val_data is not None
        n = len(self.val_data)
        fn = getattr(self.objective, "validation_loss", None)
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        was_training = model.training
        model.eval()
        with isolated_rng(self.device, self.cfg.seed), torch.no_grad(), self.autocast:
            for start in range(0, n, self.cfg.batch_size):
                idx = np.arange(start, min(n, start + self.cfg.batch_size))
                idx = idx[self.info.rank::self.info.world_size]  # this rank's share, no padding
                if len(idx) == 0:
                    continue
                batch = batch_to_tensors(self.val_data.get_batch(idx), self.device)
                loss = fn(model, batch) if callable(fn) else self.objective.loss(model, batch, self.step)[0]
                total[0] += loss.detach().double() * len(idx)
                total[1] += len(idx)
        model.train(was_training)
        all_reduce_sum(total, self.info)
        return float(total[0] / total[1])

    def run_callbacks(self, epoch: int) -> dict[str, float]:
        out: dict[str, float] = {}
        if not self.info.is_main:
            return out
        ema_model = self.ema.averaged if self.ema is not None else None
        for cb in self.callbacks:
            with isolated_rng(self.device):
                result = cb(self.step, epoch, self.plain, ema_model, self.run_dir)
            self.plain.train()
            for k, v in (result or {}).items():
                out[k] = _to_float(k, v)
        return out

    def exported_weights(self) -> dict[str, nn.Module]:
        files = {MODEL_FILE: self.ema.averaged if self.cfg.export == "ema" else self.plain}
        if self.ema is not None:
            files[EMA_FILE] = self.ema.averaged
            if self.cfg.export == "ema":
                files[ONLINE_FILE] = self.plain
        return files

    def update_best(self, epoch: int, scalars: dict[str, float]) -> None:
        metric = self.cfg.select_metric
        if metric is None or metric not in scalars or not math.isfinite(scalars[metric]):
            return
        value = scalars[metric]
        if self.best is not None:
            old = self.best["value"]
            if not (value < old if self.cfg.select_mode == "min" else value > old):
                return
        self.best = {"metric": metric, "mode": self.cfg.select_mode, "value": value, "step": self.step,
                     "epoch": epoch}
        if self.info.is_main:
            best_dir = self.run_dir / BEST_DIR
            for name, module in self.exported_weights().items():
                ckpt_io.save_state_dict(module, best_dir / name, {"step": str(self.step)})
            write_json(best_dir / "best.json", self.best)


def train(objective: Objective, data: BatchSource, cfg: LoopConfig, run_dir: str | Path, *,
          val_data: BatchSource | None = None, resume: bool = True, callbacks: Sequence[Callback] = (),
          progress: bool = True, run_meta: dict[str, Any] | None = None) -> TrainResult:
    """Optimize `objective.trainable()` on `data`; write checkpoints, logs and artifacts to `run_dir`.

    resume=True continues from run_dir/checkpoint if there is one (same losses as an uninterrupted
    run). Otherwise (resume=False, or no checkpoint yet) the run starts over, deleting the folder's
    checkpoint, train.csv, TensorBoard events and best/.
    `callbacks` (rank 0 only, every `cfg.callback_every` epochs) get
    (step, epoch, model, ema_model_or_None, run_dir) and may return scalars to log. `run_meta`
    (e.g. dataset fingerprint) is merged into meta.json. Under torchrun the process group is joined
    here and left at the end; only rank 0 logs and writes files.
    """
    _check_objective(objective)
    if not isinstance(cfg, LoopConfig):
        raise TypeError(f"cfg must be a LoopConfig, got {type(cfg).__name__}")
    run_dir = Path(run_dir)
    info = init_distributed(cfg.device)
    try:
        result = _train(objective, data, cfg, run_dir, info, val_data, resume, callbacks, progress, run_meta)
    except BaseException:
        if info.initialized_here and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        raise
    cleanup(info)
    return result


def _train(objective: Objective, data: BatchSource, cfg: LoopConfig, run_dir: Path, info: DistInfo,
           val_data: BatchSource | None, resume: bool, callbacks: Sequence[Callback], progress: bool,
           run_meta: dict[str, Any] | None) -> TrainResult:
    if cfg.select_metric == "val_loss" and val_data is None:
        raise ValueError("LoopConfig.select_metric is 'val_loss' but train() got no val_data")
    run = _Run(objective, data, cfg, run_dir, info, val_data, callbacks)
    ck = ckpt_io.load_checkpoint(run_dir) if resume else None
    if ck is not None:
        run.restore(ck)
    else:
        if info.is_main:  # a fresh start owns the run folder's training artifacts
            run_dir.mkdir(parents=True, exist_ok=True)
            ckpt_io.remove_checkpoint(run_dir)
            for old in (run_dir / TB_DIR).glob("events.out.tfevents.*"):
                old.unlink()
            if (run_dir / BEST_DIR).is_dir():
                shutil.rmtree(run_dir / BEST_DIR)
        seed_everything(rank_seed(cfg.seed, info.rank))
    model = wrap_ddp(run.plain, info)
    model.train()

    logger = meta = None
    if info.is_main:
        logger = RunLogger(run_dir, resume_step=run.resumed_from, tensorboard=cfg.tensorboard,
                           wandb=cfg.wandb, wandb_project=cfg.wandb_project, config=cfg.to_dict())
        meta = _initial_meta(run, run_meta)
        write_json(run_dir / META_FILE, meta)

    spe, epochs = run.steps_per_epoch, cfg.epochs
    perm_epoch, perm = -1, np.empty(0, dtype=np.int64)
    session_start = time.perf_counter()
    try:
        with TrainProgress(run.stop_step, run.step, enabled=progress and info.is_main) as bar:
            while run.step < run.stop_step:
                k = run.step  # index of the optimizer step being taken
                epoch, b = divmod(k, spe)
                if epoch != perm_epoch:
                    perm, perm_epoch = epoch_permutation(cfg.seed, epoch, run.n_items), epoch
                    if callable(getattr(objective, "on_epoch_start", None)):
                        objective.on_epoch_start(epoch)  # type: ignore[attr-defined]
                idx = shard(perm[b * cfg.batch_size:(b + 1) * cfg.batch_size], info.rank, info.world_size)
                batch = batch_to_tensors(data.get_batch(idx), run.device)

                lr = cosine_warmup_lr(k, cfg.lr, cfg.warmup_steps, run.total_steps)  # §2.4: per batch
                for group in run.optimizer.param_groups:
                    group["lr"] = lr
                with run.autocast:
                    loss, scalars = objective.loss(model, batch, k)
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise TypeError(f"objective.loss must return a scalar tensor first, got "
                                    f"{type(loss).__name__} {tuple(getattr(loss, 'shape', ()))}")
                run.optimizer.zero_grad(set_to_none=True)
                grad_norm = None
                if run.scaler is not None:
                    run.scaler.scale(loss).backward()
                    if cfg.grad_clip is not None:
                        run.scaler.unscale_(run.optimizer)
                        grad_norm = nn.utils.clip_grad_norm_(run.plain.parameters(), cfg.grad_clip)
                    run.scaler.step(run.optimizer)
                    run.scaler.update()
                else:
                    loss.backward()
                    if cfg.grad_clip is not None:
                        grad_norm = nn.utils.clip_grad_norm_(run.plain.parameters(), cfg.grad_clip)
                    run.optimizer.step()
                objective.after_optimizer_step(run.plain, k)
                if run.ema is not None:
                    run.ema.update(run.plain)
                run.step = k + 1

                if run.step % cfg.log_every == 0 or run.step == run.stop_step:
                    values = {"loss": _to_float("loss", loss)}
                    values.update({name: _to_float(name, v) for name, v in scalars.items()})
                    if grad_norm is not None:
                        values["grad_norm"] = _to_float("grad_norm", grad_norm)
                    values = all_reduce_mean(values, info)
                    values["lr"] = lr
                    if not math.isfinite(values["loss"]):
                        raise FloatingPointError(f"training loss is {values['loss']} at step {run.step} "
                                                 f"(epoch {epoch}); last finite scalars: {run.last_scalars}")
                    run.last_scalars = values
                    if logger is not None:
                        logger.log(run.step, epoch, values)
                    bar.update(run.step, epoch, epochs, values)
                else:
                    bar.update(run.step, epoch, epochs)

                if run.step % spe == 0:  # end of an epoch: validation, callbacks, selection
                    last = epoch + 1 == epochs
                    ep: dict[str, float] = {}
                    if val_data is not None and ((epoch + 1) % cfg.val_every == 0 or last):
                        ep["val_loss"] = run.validate(run.plain)
                    if run.callbacks and ((epoch + 1) % cfg.callback_every == 0 or last):
                        ep.update(run.run_callbacks(epoch))
                    if ep:
                        if logger is not None:
                            logger.log(run.step, epoch, ep)
                        run.update_best(epoch, ep)
                        run.last_scalars = {**run.last_scalars, **ep}

                due = cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0
                if due or run.step == run.stop_step:
                    run.wall_time += time.perf_counter() - session_start
                    session_start = time.perf_counter()
                    if logger is not None:
                        logger.flush()
                    run.save_checkpoint()
    except BaseException as e:
        if meta is not None:  # say so in meta.json; the last checkpoint is what a resume continues from
            meta.update({"status": "interrupted" if isinstance(e, KeyboardInterrupt) else "failed",
                         "error": f"{type(e).__name__}: {e}", "failed_at_step": run.step,
                         "end_time": utc_now()})
            write_json(run_dir / META_FILE, meta)
        raise
    finally:
        if logger is not None:
            logger.close()

    run.wall_time += time.perf_counter() - session_start
    if cfg.select_metric is not None and run.best is None and info.is_main:
        warnings.warn(f"LoopConfig.select_metric {cfg.select_metric!r} was never logged at an epoch end "
                      f"(validation gives 'val_loss', callbacks their own keys); {BEST_DIR}/ not written",
                      stacklevel=2)
    if info.is_main:
        for name, module in run.exported_weights().items():
            kind = "online" if module is run.plain else "ema"
            ckpt_io.save_state_dict(module, run_dir / name, {"step": str(run.step), "weights": kind})
        assert meta is not None
        meta.update(_final_meta(run))
        write_json(run_dir / META_FILE, meta)
    return TrainResult(
        step=run.step, epoch=run.step // spe, total_steps=run.total_steps, last_scalars=run.last_scalars,
        wall_time_s=run.wall_time, run_dir=run_dir, model_path=run_dir / MODEL_FILE,
        ema_path=run_dir / EMA_FILE if run.ema is not None else None,
        checkpoint_path=ckpt_io.find_checkpoint(run_dir), csv_path=run_dir / CSV_NAME,
        meta_path=run_dir / META_FILE, best=run.best, resumed_from=run.resumed_from,
        finished=run.step >= run.total_steps)


def _initial_meta(run: _Run, run_meta: dict[str, Any] | None) -> dict[str, Any]:
    path = run.run_dir / META_FILE
    meta = run_metadata(run.cfg.seed, run_meta)
    if run.resumed_from is not None and path.exists():
        try:
            previous = read_json(path)
        except ValueError:
            previous = {}
        meta["start_time"] = previous.get("start_time", meta["start_time"])
        meta["resumes"] = [*previous.get("resumes", []), {"step": run.resumed_from, "time": utc_now()}]
    meta.update({
        "status": "running",
        "loop": run.cfg.to_dict(),
        "device": str(run.device),
        "world_size": run.info.world_size,
        "n_items": run.n_items,
        "steps_per_epoch": run.steps_per_epoch,
        "total_steps": run.total_steps,
        "parameters": {"total": count_parameters(run.plain),
                       "trainable": count_parameters(run.plain, trainable_only=True)},
    })
    return meta


def _final_meta(run: _Run) -> dict[str, Any]:
    weights = {name: ("online" if module is run.plain else "ema")
               for name, module in run.exported_weights().items()}
    return {
        "status": "finished" if run.step >= run.total_steps else "stopped",
        "end_time": utc_now(),
        "step": run.step,
        "epochs_completed": run.step // run.steps_per_epoch,
        "wall_time_s": round(run.wall_time, 3),
        "metrics": run.last_scalars,
        "best": run.best,
        "weights": weights,
    }
