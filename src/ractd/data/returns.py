"""Returns of concatenated episodes, each defined once: discounted returns-to-go within episodes (the reward
model's regression target, docs/algorithm.md §2.1), the undiscounted return of every episode, and D4RL's normalized
score."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def _episode_ends(episode_ends: ArrayLike, n: int) -> np.ndarray:
    """``episode_ends`` as (E,) int64, checked: strictly increasing, every episode non-empty, the last = N."""
    ends = np.asarray(episode_ends, dtype=np.int64).reshape(-1)
    if ends.size == 0 or ends[-1] != n or (np.diff(ends, prepend=0) <= 0).any():
        raise ValueError(f"episode_ends must be strictly increasing and end at N={n}, found {ends}")
    return ends


def episode_returns(rewards: ArrayLike, episode_ends: ArrayLike) -> np.ndarray:
    """(E,) float64 undiscounted return Σ_t r_t of every episode of concatenated per-step rewards.

    Args:
        rewards: (N,) raw rewards of the concatenated episodes.
        episode_ends: (E,) exclusive end index of every episode (last = N; no empty episode).
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    if r.size == 0 and np.size(episode_ends) == 0:
        return np.zeros(0)
    ends = _episode_ends(episode_ends, r.shape[0])
    # np.sum per episode (pairwise summation), not np.add.reduceat (sequential): more accurate, and the
    # evaluation's returns keep the values np.sum gave them before this function existed
    return np.array([r[start:end].sum() for start, end in zip(np.concatenate([[0], ends[:-1]]), ends, strict=True)],
                    dtype=np.float64)


def normalized_score(returns: ArrayLike, ref_min: float, ref_max: float) -> np.ndarray:
    """D4RL's normalized score ×100: 100·(R − R_min)/(R_max − R_min) (R_min: random, R_max: expert return).

    Returns float64 of the shape of ``returns`` (0-d for a scalar). Raises ``ValueError`` unless both
    references are finite and distinct."""
    if not (math.isfinite(ref_min) and math.isfinite(ref_max)) or ref_max == ref_min:
        raise ValueError(
            "normalized_score: reference returns must be finite and distinct, "
            f"got min={ref_min}, max={ref_max}"
        )
    return 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)


def returns_to_go(
    rewards: ArrayLike,
    episode_ends: ArrayLike,
    discount: float = 0.99,
    termination_penalty: float = 0.0,
    terminals: ArrayLike | None = None,
    chunk_steps: int = 1 << 16,
) -> np.ndarray:
    """Per-step discounted return-to-go, truncated at each episode's end (docs/algorithm.md §2.1).

    R_t = Σ_{j=0}^{L−1−t} γ^j r_{t+j}, no bootstrapping at timeouts. ``termination_penalty`` is
    added to the last raw reward of every episode whose last step is a terminal (thesis B.2.2;
    the released code uses 0). Computed in float64 by a log-depth doubling scan, O(N log L_max) and
    vectorized, over runs of whole episodes of about ``chunk_steps`` steps at a time, so the float64
    working memory stays a few MiB whatever N is; every value only involves its own episode, so the
    result does not depend on ``chunk_steps``.

    Args:
        rewards: (N,) raw rewards of the concatenated episodes.
        episode_ends: (E,) exclusive end index of every episode (last = N).
        discount: γ.
        termination_penalty: added to r_{L−1} of episodes ending with ``terminals[L−1]``.
        terminals: (N,) bool; required when ``termination_penalty`` is non-zero.
        chunk_steps: steps per chunk of the scan (a chunk holds whole episodes; one longer episode is its own).

    Returns:
        (N,) float32 returns-to-go.
    """
    r = np.asarray(rewards).reshape(-1)
    n = r.shape[0]
    ends = _episode_ends(episode_ends, n)
    if chunk_steps < 1:
        raise ValueError(f"chunk_steps must be >= 1, found {chunk_steps}")
    penalized = np.zeros(0, dtype=np.int64)  # last steps of the episodes that end in a terminal
    if termination_penalty != 0.0:
        if terminals is None:
            raise ValueError("termination_penalty needs `terminals` to know which episodes terminated")
        last = ends - 1
        penalized = last[np.asarray(terminals).reshape(-1).astype(bool)[last]]
    out = np.empty(n, dtype=np.float32)
    lo, first_ep = 0, 0
    while lo < n:
        # the whole episodes that fit in chunk_steps from lo (at least one)
        last_ep = max(first_ep, int(np.searchsorted(ends, lo + chunk_steps, side="right")) - 1)
        hi = int(ends[last_ep])
        seg = r[lo:hi].astype(np.float64)
        if penalized.size:
            hit = penalized[(penalized >= lo) & (penalized < hi)]
            seg[hit - lo] += termination_penalty
        out[lo:hi] = _discounted_scan(seg, ends[first_ep:last_ep + 1] - lo, discount)
        lo, first_ep = hi, last_ep + 1
    return out


def _discounted_scan(r: np.ndarray, ends: np.ndarray, discount: float) -> np.ndarray:
    """Returns-to-go of the float64 rewards ``r`` of whole episodes ending at ``ends`` (exclusive, last = len(r))."""
    lengths = np.diff(ends, prepend=0)
    step_end = np.repeat(ends, lengths)  # end of the episode every step belongs to
    m = r.shape[0]
    ret = r
    k = 1
    while k < int(lengths.max()):
        # Hillis–Steele: after this pass ret[t] sums 2k terms, γ^j r_{t+j}, j < 2k, within the episode
        nxt = ret.copy()
        ok = np.arange(k, m) < step_end[: m - k]  # t + k < end of t's episode, for t < m − k
        np.add(nxt[: m - k], discount**k * ret[k:], out=nxt[: m - k], where=ok)
        ret = nxt
        k *= 2
    return ret
