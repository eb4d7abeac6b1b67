"""Episode metrics: true return, the reference code's running-max metric, normalized score ×100, and mean ±
standard error (docs/algorithm.md §6.1, §8 item 1). The return and the normalized score are defined once, in
``ractd.data.returns`` (the datasets use them too); this module applies them to rollouts."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ractd.data.returns import episode_returns, normalized_score

__all__ = ["episode_return", "mean_and_standard_error", "mean_se", "normalized_score", "running_max_return"]


def _rewards_1d(rewards: ArrayLike) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"rewards: expected a 1-D sequence of per-step rewards, got shape {r.shape}")
    return r


def episode_return(rewards: ArrayLike) -> float:
    """The true (undiscounted) return Σ_t r_t of one episode (0 for no step); ``episode_returns`` of a batch."""
    r = _rewards_1d(rewards)
    return float(episode_returns(r, [r.size])[0]) if r.size else 0.0


def running_max_return(rewards: ArrayLike) -> float:
    """The reference code's metric Σ_t max_{τ≤t} r_τ (docs/algorithm.md §6.1, §8 item 1): a sum of the running
    maximum of the per-step rewards. It is ≥ the true return and equal to it only when the rewards
    never decrease. Kept only to show the size of the reference's inflation."""
    r = _rewards_1d(rewards)
    return episode_return(np.maximum.accumulate(r)) if r.size else 0.0


def mean_and_standard_error(x: ArrayLike) -> tuple[float, float]:
    """Sample mean and its standard error std(ddof=1)/sqrt(n); the error is NaN for a single value."""
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("mean_and_standard_error: needs at least one value, got none")
    mean = float(a.mean())
    if a.size == 1:
        return mean, math.nan
    return mean, float(a.std(ddof=1) / math.sqrt(a.size))


def mean_se(values: ArrayLike) -> dict[str, float]:
    """{"mean", "se"} of `mean_and_standard_error`, with SE 0 for a single value (as result JSON stores it)."""
    mean, se = mean_and_standard_error(values)
    return {"mean": mean, "se": 0.0 if math.isnan(se) else se}
