"""`RunState`: everything one `train` call keeps between steps, and its checkpoint save and exact restore."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ractd.loop_config import RESUME_FIELDS, LoopConfig
from ractd.train import checkpoint as ckpt_io
from ractd.train.distributed import DistInfo, gather_to_main
from ractd.train.ema import EMA
from ractd.train.meta import utc_now
from ractd.train.order import rank_seed, seed_everything, steps_per_epoch
from ractd.train.protocols import BatchSource, Callback, Objective
from ractd.weights import load_state_dict_into


def mixed_precision(cfg: LoopConfig, device: torch.device) -> tuple[contextlib.AbstractContextManager, Any]:
    """(autocast context, GradScaler or None): bf16 autocast on CUDA when supported, else fp16 + scaler."""
    if not cfg.amp or device.type != "cuda":
        return contextlib.nullcontext(), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


class RunState:
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
        self.autocast, self.scaler = mixed_precision(cfg, self.device)
        self.step = 0
        self.best: dict[str, Any] | None = None
        self.wall_time = 0.0
        self.last_scalars: dict[str, float] = {}
        self.resumed_from: int | None = None

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
        """Write run_dir/checkpoint (every rank takes part in gathering the RNG states; rank 0 writes)."""
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
                             "restore these settings, or start over with resume=False (`ractd train ... --restart`)")
        if ck.state["n_items"] != self.n_items:
            raise ValueError(f"{where}: cannot resume, the checkpoint was trained on n_items="
                             f"{ck.state['n_items']} items but the data now has {self.n_items}")
        load_state_dict_into(self.plain, ck.path / "model.safetensors")
        if self.ema is not None:
            load_state_dict_into(self.ema.averaged, ck.path / "ema.safetensors")
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
