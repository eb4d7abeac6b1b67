"""Dataset card: what is in a dataset (episodes, steps, return distribution) and a return histogram."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ractd.data.dataset import OfflineDataset
from ractd.data.returns import normalized_score


def _stats(x: np.ndarray) -> dict[str, float]:
    q25, q50, q75 = np.percentile(x, [25, 50, 75])
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "q25": float(q25),
            "median": float(q50), "q75": float(q75), "max": float(x.max())}


def dataset_card(
    ds: OfflineDataset, ref_min_score: float | None = None, ref_max_score: float | None = None
) -> dict[str, Any]:
    """Summary of a dataset as a JSON-able dict.

    Keys: ``name``, ``fingerprint``, ``episodes``, ``steps``, ``obs_dim``, ``act_dim``,
    ``terminal_episodes`` (episodes ending in a terminal), ``episode_length`` and ``return``
    (mean, std, min, q25, median, q75, max of the undiscounted episode return), and
    ``normalized_return`` (the same ×100 with the D4RL formula, `normalized_score`) when both references are
    given.
    """
    returns = ds.episode_returns()
    card: dict[str, Any] = {
        "name": ds.metadata.get("name", ds.metadata.get("source", "?")),
        "fingerprint": ds.fingerprint(),
        "episodes": ds.num_episodes,
        "steps": ds.num_steps,
        "obs_dim": ds.obs_dim,
        "act_dim": ds.act_dim,
        "terminal_episodes": int(ds.terminals[ds.episode_ends - 1].sum()),
        "episode_length": _stats(ds.episode_lengths.astype(np.float64)),
        "return": _stats(returns),
    }
    if ref_min_score is not None and ref_max_score is not None:
        card["ref_min_score"] = float(ref_min_score)
        card["ref_max_score"] = float(ref_max_score)
        card["normalized_return"] = _stats(normalized_score(returns, ref_min_score, ref_max_score))
    return card


def format_card(card: Mapping[str, Any]) -> str:
    """Human-readable multi-line text of a ``dataset_card``."""

    def row(label: str, s: Mapping[str, float], fmt: str = ".2f") -> str:
        return (f"{label:<18} mean {s['mean']:{fmt}} ± {s['std']:{fmt}}  min {s['min']:{fmt}}  "
                f"q25 {s['q25']:{fmt}}  median {s['median']:{fmt}}  q75 {s['q75']:{fmt}}  "
                f"max {s['max']:{fmt}}")

    lines = [
        f"dataset            {card['name']}",
        f"fingerprint        {card['fingerprint'][:16]}",
        f"episodes           {card['episodes']:,} ({card['terminal_episodes']:,} end in a terminal)",
        f"steps              {card['steps']:,}",
        f"obs / act dim      {card['obs_dim']} / {card['act_dim']}",
        row("episode length", card["episode_length"], ".1f"),
        row("return", card["return"]),
    ]
    if "normalized_return" in card:
        lines.append(row("normalized ×100", card["normalized_return"], ".1f"))
        lines.append(f"{'references':<18} min {card['ref_min_score']:g}  max {card['ref_max_score']:g}")
    return "\n".join(lines)


def plot_return_histogram(
    returns_by_label: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    title: str = "",
    ref: tuple[float, float] | None = None,
) -> Path:
    """Histogram of episode returns, one overlaid series per label, written atomically as PNG.

    With ``ref = (ref_min_score, ref_max_score)`` the x axis is the D4RL normalized score ×100.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ractd.io import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        series = {k: np.asarray(v, dtype=np.float64) for k, v in returns_by_label.items()}
        if ref is not None:
            series = {k: normalized_score(v, *ref) for k, v in series.items()}
        values = np.concatenate([v for v in series.values() if v.size] or [np.zeros(1)])
        bins = np.linspace(values.min(), values.max() + 1e-9, 41)
        for label, v in series.items():
            ax.hist(v, bins=bins, alpha=0.6, label=f"{label} (n={v.size})")
        ax.set_xlabel("normalized return ×100" if ref is not None else "episode return")
        ax.set_ylabel("episodes")
        if title:
            ax.set_title(title)
        if len(series) > 1 or any(series):
            ax.legend()
        fig.tight_layout()
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
