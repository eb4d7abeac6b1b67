"""Episode metrics, each defined once: true return, the reference code's running-max metric, normalized
score ×100, and mean ± standard error (spec §6.1, §8 item 1)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def _rewards_1d(rewards: ArrayLike) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"rewards: expected a 1-D sequence of per-step rewards, got shape {r.shape}")
    return r


def episode_return(rewards: ArrayLike) -> float:
    """The true (undiscounted) episode return Σ_t r_t."""
    return float(np.sum(_rewards_1d(rewards)))


def running_max_return(rewards: ArrayLike) -> float:
    """The reference code's metric Σ_t max_{τ≤t} r_τ (spec §6.1, §8 item 1): a sum of the running
    maximum of the per-step rewards. It is ≥ the true return and equal to it only when the rewards
    never decrease. Kept only to show the size of the reference's inflation."""
    r = _rewards_1d(rewards)
    if r.size == 0:
        return 0.0
    return float(np.sum(np.maximum.accumulate(r)))


def mean_and_standard_error(x: ArrayLike) -> tuple[float, float]:
    """Sample mean and its standard error std(ddof=1)/sqrt(n); the error is NaN for a single value."""
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("mean_and_standard_error: needs at least one value, got none")
    mean = float(a.mean())
    if a.size == 1:
        return mean, math.nan
    return mean, float(a.std(ddof=1) / math.sqrt(a.size))


def normalized_score(returns: ArrayLike, ref_min: float, ref_max: float) -> np.ndarray:
    """D4RL's normalized score ×100: 100·(R − R_min)/(R_max − R_min) (R_min: random, R_max: expert)."""
    if not (math.isfinite(ref_min) and math.isfinite(ref_max)) or ref_max == ref_min:
        raise ValueError(
            "normalized_score: reference returns must be finite and distinct, "
            f"got min={ref_min}, max={ref_max}"
        )
    return 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)
