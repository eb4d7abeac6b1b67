"""Statistics over training seeds and tasks, as Agarwal et al. (2021) recommend, computed with `rliable`.

Input: for each method, a (runs × tasks) matrix of normalized scores, one row per training seed (every method on the
same tasks, the same number of seeds per task). Output:
- per task, mean ± standard error over seeds;
- aggregate IQM (the mean of the middle 50 % of all runs × tasks scores) and mean, each with a 95 % stratified
  bootstrap confidence interval (runs resampled within each task);
- the probability of improvement P(X > Y) of one method over another (Mann–Whitney U statistic averaged over
  tasks, ties counting half) with its bootstrap interval;
- performance profiles: the fraction of runs scoring above τ, for a grid of τ.

`rliable` (the `ractd[stats]` extra) is imported only when these are computed.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import atomic_path


class MissingRliableError(ImportError):
    pass


@contextlib.contextmanager
def _seeded_numpy(seed: int) -> Iterator[np.random.RandomState]:
    """rliable's stratified bootstrap draws its indices from NumPy's global generator whatever `random_state` says:
    seed it for the call and restore the caller's state afterwards, so the same seed gives the same intervals."""
    saved = np.random.get_state()  # noqa: NPY002 (rliable draws from the legacy global generator)
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield np.random.RandomState(seed)
    finally:
        np.random.set_state(saved)  # noqa: NPY002


def _rliable():
    # rliable passes arch a RandomState, which arch deprecates with a FutureWarning on every bootstrap
    warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
    try:
        from rliable import library, metrics, plot_utils
    except ImportError as e:  # rliable or its arch/pandas stack
        raise MissingRliableError(
            f"the seed statistics need the 'rliable' package ({e}); install it with: pip install 'ractd[stats]'"
        ) from e
    return library, metrics, plot_utils


def score_matrix(scores: Mapping[str, Mapping[int, float]], tasks: Sequence[str]) -> np.ndarray:
    """(runs × tasks) matrix from {task: {seed: score}}; every task must have the same seeds."""
    seeds = sorted(scores[tasks[0]]) if tasks else []
    for t in tasks:
        if t not in scores:
            raise ValueError(f"no scores for task {t!r}")
        if sorted(scores[t]) != seeds:
            raise ValueError(f"task {t!r} has seeds {sorted(scores[t])}, {tasks[0]!r} has {seeds}: the stratified "
                             "bootstrap needs the same seeds on every task")
    return np.array([[scores[t][s] for t in tasks] for s in seeds], dtype=np.float64)


def mean_and_se(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per task: mean over runs and its standard error (sample std / √n)."""
    n = matrix.shape[0]
    return matrix.mean(0), matrix.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.full(matrix.shape[1], np.nan)


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"point": self.point, "low": self.low, "high": self.high}


def aggregate_intervals(score_dict: Mapping[str, np.ndarray], reps: int = 50_000, seed: int = 0
                        ) -> dict[str, dict[str, Interval]]:
    """{method: {"iqm": …, "mean": …}} with 95 % stratified bootstrap intervals over runs (rliable)."""
    library, metrics, _ = _rliable()

    def both(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    with _seeded_numpy(seed) as rs:
        points, cis = library.get_interval_estimates(dict(score_dict), both, reps=reps, random_state=rs)
    return {m: {name: Interval(float(points[m][i]), float(cis[m][0, i]), float(cis[m][1, i]))
                for i, name in enumerate(("iqm", "mean"))} for m in score_dict}


def probability_of_improvement(x: np.ndarray, y: np.ndarray, reps: int = 2_000, seed: int = 0) -> Interval:
    """P(X > Y) over tasks, with a 95 % stratified bootstrap interval (rliable)."""
    library, metrics, _ = _rliable()
    with _seeded_numpy(seed) as rs:
        points, cis = library.get_interval_estimates({"x,y": (x, y)}, metrics.probability_of_improvement, reps=reps,
                                                     random_state=rs)
    low, high = np.ravel(cis["x,y"])
    return Interval(float(np.ravel(points["x,y"])[0]), float(low), float(high))


def performance_profiles(score_dict: Mapping[str, np.ndarray], taus: np.ndarray, reps: int = 2_000, seed: int = 0
                         ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fraction of runs scoring above each τ, per method, with bootstrap bands (rliable)."""
    library, _, _ = _rliable()
    with _seeded_numpy(seed):
        return library.create_performance_profile(dict(score_dict), taus, reps=reps)


def plot_performance_profiles(score_dict: Mapping[str, np.ndarray], path: str | Path, taus: np.ndarray | None = None,
                              title: str = "") -> Path:
    """Performance-profile figure (PNG), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    _, _, plot_utils = _rliable()
    taus = np.linspace(0, max(110.0, float(max(v.max() for v in score_dict.values()))), 101) if taus is None else taus
    profiles, cis = performance_profiles(score_dict, taus)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    colors = dict(zip(score_dict, ("tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red"), strict=False))
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, ax=ax, colors=colors,
                                         xlabel="normalized score τ", ylabel="fraction of runs > τ")
    ax.legend([Line2D([0], [0], color=c, lw=2) for c in colors.values()], list(colors), loc="upper right",
              frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)
    return path
