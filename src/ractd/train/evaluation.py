"""Epoch-end evaluation: the validation loss and the callbacks, run without perturbing the training RNG."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ractd.train.distributed import all_reduce_sum
from ractd.train.order import batch_to_tensors, isolated_rng
from ractd.train.protocols import to_float
from ractd.train.state import RunState


def validation_loss(run: RunState, model: nn.Module) -> float:
    """Mean validation loss of `model` over all of val_data (seeded with cfg.seed, no grad, eval mode).

    Each rank evaluates its share of every batch; the item-weighted sums are added over ranks, so the
    mean is over items, whatever the world size.
    """
    assert run.val_data is not None
    n = len(run.val_data)
    fn = getattr(run.objective, "validation_loss", None)
    total = torch.zeros(2, dtype=torch.float64, device=run.device)
    was_training = model.training
    model.eval()
    with isolated_rng(run.device, run.cfg.seed), torch.no_grad(), run.autocast:
        for start in range(0, n, run.cfg.batch_size):
            idx = np.arange(start, min(n, start + run.cfg.batch_size))
            idx = idx[run.info.rank::run.info.world_size]  # this rank's share, no padding
            if len(idx) == 0:
                continue
            batch = batch_to_tensors(run.val_data.get_batch(idx), run.device)
            loss = fn(model, batch) if callable(fn) else run.objective.loss(model, batch, run.step)[0]
            total[0] += loss.detach().double() * len(idx)
            total[1] += len(idx)
    model.train(was_training)
    all_reduce_sum(total, run.info)
    return float(total[0] / total[1])


def callback_scalars(run: RunState, epoch: int) -> dict[str, float]:
    """Run every callback (rank 0 only, each with isolated RNG) and collect the scalars they return."""
    out: dict[str, float] = {}
    if not run.info.is_main:
        return out
    ema_model = run.ema.averaged if run.ema is not None else None
    for cb in run.callbacks:
        with isolated_rng(run.device):
            result = cb(run.step, epoch, run.plain, ema_model, run.run_dir)
        run.plain.train()
        for k, v in (result or {}).items():
            out[k] = to_float(k, v)
    return out
