"""Learning-rate schedule: linear warm-up, then half-cosine to 0 (diffusers "cosine"; docs/algorithm.md §2.4, §3.5)."""

from __future__ import annotations

import math


def cosine_warmup_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base learning rate used for the optimizer step with 0-based index `step`.

    diffusers `get_cosine_schedule_with_warmup` (num_cycles = 0.5), which the reference code steps once
    per batch *after* the optimizer step, so optimizer step k uses lr·factor(k); factor(0) = 0 when
    there is a warm-up (the very first update has lr 0, as in the reference code):

        factor(k) = k / warmup                                       for k < warmup
        factor(k) = ½ · (1 + cos(π · (k − warmup) / (total − warmup)))   afterwards (clamped at total)
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


def cosine_warmup_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate of optimizer step `step`: base_lr · cosine_warmup_factor(step, warmup, total)."""
    return base_lr * cosine_warmup_factor(step, warmup_steps, total_steps)
