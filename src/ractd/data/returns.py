"""Discounted returns-to-go within episodes, the reward model's regression target (spec §2.1)."""

from __future__ import annotations

import numpy as np


def returns_to_go(
    rewards: np.ndarray,
    episode_ends: np.ndarray,
    discount: float = 0.99,
    termination_penalty: float = 0.0,
    terminals: np.ndarray | None = None,
) -> np.ndarray:
    """Per-step discounted return-to-go, truncated at each episode's end (spec §2.1).

    R_t = Σ_{j=0}^{L−1−t} γ^j r_{t+j}, no bootstrapping at timeouts. ``termination_penalty`` is
    added to the last raw reward of every episode whose last step is a terminal (thesis B.2.2;
    the released code uses 0). Computed with a log-depth doubling scan: O(N log L_max), fully
    vectorized, accumulated in float64.

    Args:
        rewards: (N,) raw rewards of the concatenated episodes.
        episode_ends: (E,) exclusive end index of every episode (last = N).
        discount: γ.
        termination_penalty: added to r_{L−1} of episodes ending with ``terminals[L−1]``.
        terminals: (N,) bool; required when ``termination_penalty`` is non-zero.

    Returns:
        (N,) float32 returns-to-go.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1).copy()
    ends = np.asarray(episode_ends, dtype=np.int64).reshape(-1)
    n = r.shape[0]
    if ends.size == 0 or ends[-1] != n or (np.diff(ends, prepend=0) <= 0).any():
        raise ValueError(f"episode_ends must be strictly increasing and end at N={n}, found {ends}")
    if termination_penalty != 0.0:
        if terminals is None:
            raise ValueError("termination_penalty needs `terminals` to know which episodes terminated")
        last = ends - 1
        terminated = np.asarray(terminals).reshape(-1).astype(bool)[last]
        r[last[terminated]] += termination_penalty
    # end of the episode every step belongs to
    step_end = np.repeat(ends, np.diff(ends, prepend=0))
    t = np.arange(n, dtype=np.int64)
    ret = r
    k = 1
    longest = int(np.diff(ends, prepend=0).max())
    while k < longest:
        # Hillis–Steele: after this pass ret[t] sums 2k terms, γ^j r_{t+j}, j < 2k, within the episode
        ok = t + k < step_end
        nxt = ret.copy()
        nxt[ok] += discount**k * ret[t[ok] + k]
        ret = nxt
        k *= 2
    return ret.astype(np.float32)
