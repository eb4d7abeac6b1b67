"""The one generic training loop `train`: any objective, any model, any task (docs/algorithm.md §2.4, §3.5, §4.10).

An `Objective` says what is optimized and how its loss is computed; `train` does everything else:
AdamW with the cosine warm-up schedule, EMA, gradient clipping, deterministic data order
(`ractd.train.order`), periodic crash-safe checkpoints with exact resume (`ractd.train.state`),
logging, validation and callbacks (`ractd.train.evaluation`), model selection
(`ractd.train.selection`), DDP under torchrun and the final artifacts (`ractd.train.artifacts`).

Step numbering. `step` counts completed optimizer steps. The objective's `loss(model, batch, k)` and
`after_optimizer_step(model, k)` get the 0-based index k of the step being taken; rows of train.csv,
TensorBoard points and checkpoints are labelled with the number of completed steps (k + 1).

Validation and callbacks run with saved-and-restored RNG states (validation seeded with `seed`), so
they do not perturb the training stream: losses do not depend on how often one validates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ractd.io import write_json
from ractd.loop_config import LoopConfig
from ractd.train import checkpoint as ckpt_io
from ractd.train.artifacts import (
    EMA_FILE,
    META_FILE,
    MODEL_FILE,
    clear_training_artifacts,
    final_meta,
    initial_meta,
    save_exported_weights,
)
from ractd.train.distributed import DistInfo, all_reduce_mean, cleanup, init_distributed, shard, wrap_ddp
from ractd.train.evaluation import callback_scalars, validation_loss
from ractd.train.logging import CSV_NAME, RunLogger, resume_line, say, train_progress
from ractd.train.meta import utc_now
from ractd.train.order import batch_to_tensors, epoch_permutation, rank_seed, seed_everything
from ractd.train.protocols import BatchSource, Callback, Objective, TrainResult, check_objective, to_float
from ractd.train.schedule import cosine_warmup_lr
from ractd.train.selection import update_best, warn_if_never_selected
from ractd.train.state import RunState


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
    check_objective(objective)
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


def _optimizer_step(run: RunState, model: nn.Module, batch: dict[str, torch.Tensor], k: int
                    ) -> tuple[torch.Tensor, dict[str, Any], torch.Tensor | None, float]:
    """Take optimizer step k: learning rate, loss, backward, clipping, AdamW, objective hook, EMA.

    Returns (loss, the objective's scalars, gradient norm before clipping or None, learning rate).
    """
    cfg = run.cfg
    lr = cosine_warmup_lr(k, cfg.lr, cfg.warmup_steps, run.total_steps)  # docs/algorithm.md §2.4: per batch
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    with run.autocast:
        loss, scalars = run.objective.loss(model, batch, k)
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
    run.objective.after_optimizer_step(run.plain, k)
    if run.ema is not None:
        run.ema.update(run.plain)
    return loss, scalars, grad_norm, lr


def _epoch_end_scalars(run: RunState, epoch: int) -> dict[str, float]:
    """Validation loss and callback scalars due at the end of `epoch` (the last epoch runs both)."""
    cfg, last = run.cfg, epoch + 1 == run.cfg.epochs
    scalars: dict[str, float] = {}
    if run.val_data is not None and ((epoch + 1) % cfg.val_every == 0 or last):
        scalars["val_loss"] = validation_loss(run, run.plain)
    if run.callbacks and ((epoch + 1) % cfg.callback_every == 0 or last):
        scalars.update(callback_scalars(run, epoch))
    return scalars


def _train(objective: Objective, data: BatchSource, cfg: LoopConfig, run_dir: Path, info: DistInfo,
           val_data: BatchSource | None, resume: bool, callbacks: Sequence[Callback], progress: bool,
           run_meta: dict[str, Any] | None) -> TrainResult:
    if cfg.select_metric == "val_loss" and val_data is None:
        raise ValueError("LoopConfig.select_metric is 'val_loss' but train() got no val_data")
    run = RunState(objective, data, cfg, run_dir, info, val_data, callbacks)
    ck = ckpt_io.load_checkpoint(run_dir) if resume else None
    if ck is not None:
        run.restore(ck)
        if progress and info.is_main:
            say(resume_line(run_dir, run.step, run.total_steps, run.stop_step))
    else:
        if info.is_main:
            clear_training_artifacts(run_dir)
        seed_everything(rank_seed(cfg.seed, info.rank))
    model = wrap_ddp(run.plain, info)
    model.train()

    logger = meta = None
    if info.is_main:
        logger = RunLogger(run_dir, resume_step=run.resumed_from, tensorboard=cfg.tensorboard,
                           wandb=cfg.wandb, wandb_project=cfg.wandb_project, config=cfg.to_dict())
        meta = initial_meta(run, run_meta)
        write_json(run_dir / META_FILE, meta)

    spe, epochs = run.steps_per_epoch, cfg.epochs
    perm_epoch, perm = -1, np.empty(0, dtype=np.int64)
    session_start = time.perf_counter()
    try:
        with train_progress(run.stop_step, run.step, enabled=progress and info.is_main) as bar:
            while run.step < run.stop_step:
                k = run.step  # index of the optimizer step being taken
                epoch, b = divmod(k, spe)
                if epoch != perm_epoch:
                    perm, perm_epoch = epoch_permutation(cfg.seed, epoch, run.n_items), epoch
                    if callable(getattr(objective, "on_epoch_start", None)):
                        objective.on_epoch_start(epoch)  # type: ignore[attr-defined]
                idx = shard(perm[b * cfg.batch_size:(b + 1) * cfg.batch_size], info.rank, info.world_size)
                batch = batch_to_tensors(data.get_batch(idx), run.device)
                loss, scalars, grad_norm, lr = _optimizer_step(run, model, batch, k)
                run.step = k + 1

                if run.step % cfg.log_every == 0 or run.step == run.stop_step:
                    values = {"loss": to_float("loss", loss)}
                    values.update({name: to_float(name, v) for name, v in scalars.items()})
                    if grad_norm is not None:
                        values["grad_norm"] = to_float("grad_norm", grad_norm)
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
                    ep = _epoch_end_scalars(run, epoch)
                    if ep:
                        if logger is not None:
                            logger.log(run.step, epoch, ep)
                        update_best(run, epoch, ep)
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
    warn_if_never_selected(run)
    if info.is_main:
        save_exported_weights(run)
        assert meta is not None
        meta.update(final_meta(run))
        write_json(run_dir / META_FILE, meta)
    return TrainResult(
        step=run.step, epoch=run.step // spe, total_steps=run.total_steps, last_scalars=run.last_scalars,
        wall_time_s=run.wall_time, run_dir=run_dir, model_path=run_dir / MODEL_FILE,
        ema_path=run_dir / EMA_FILE if run.ema is not None else None,
        checkpoint_path=ckpt_io.find_checkpoint(run_dir), csv_path=run_dir / CSV_NAME,
        meta_path=run_dir / META_FILE, best=run.best, resumed_from=run.resumed_from,
        finished=run.step >= run.total_steps)
