"""Deterministic data order and seeding: which items each step sees, and every process's RNG streams.

Data order. Epoch e visits the items in the order `epoch_permutation(seed, e, n)` (a permutation
drawn from (seed, e) only), in consecutive batches of `batch_size`, the last one possibly smaller
(drop_last = False, as the reference DataLoaders). There are `steps_per_epoch = ceil(n / batch_size)`
optimizer steps per epoch, so global step g is batch g mod steps_per_epoch of epoch
g div steps_per_epoch: the data position is derived from the step, and resuming needs nothing else.

Randomness. A fresh run seeds python, numpy and torch with `seed` (rank r > 0 of a DDP run: a seed
derived from (seed, r)); a resumed run restores every rank's RNG states from the checkpoint.
`isolated_rng` runs a block (validation, callbacks) with saved-and-restored RNG states, so it does not
perturb the training stream.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from ractd.train import checkpoint as ckpt_io


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
