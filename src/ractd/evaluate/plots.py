"""PNG plots: episode-return histograms of several runs on one axis (thesis Fig. 3.3: dataset vs
teacher vs CTD vs RACTD) and learning curves from the training CSVs. Written atomically; drawn on a
bare Agg canvas, so no pyplot state or display backend is involved."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ractd.evaluate.metrics import mean_and_standard_error
from ractd.io import atomic_path

CurveSource = str | os.PathLike | Mapping[str, Any]


def save_figure(fig: Any, path: str | os.PathLike, dpi: int, tight: bool = True) -> Path:
    """Write a Figure as PNG atomically. ``tight`` crops to the drawn content; without it the image is exactly
    the figure's size × dpi pixels (figures drawn with a constrained layout)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return Path(path)


def plot_return_histograms(
    runs: Mapping[str, ArrayLike],
    path: str | os.PathLike,
    bins: int = 30,
    density: bool = True,
    title: str | None = None,
    xlabel: str = "episode return",
    dpi: int = 120,
) -> Path:
    """Histograms of the episode returns of several runs ({label: returns}) on one axis, with shared
    bin edges; the legend gives each run's n and mean ± SE. ``density`` makes runs of different sizes
    (a dataset vs 100 evaluation episodes) comparable."""
    from matplotlib.figure import Figure

    if not runs:
        raise ValueError("plot_return_histograms: no runs given")
    data = {label: np.asarray(r, dtype=np.float64).ravel() for label, r in runs.items()}
    for label, r in data.items():
        if r.size == 0 or not np.all(np.isfinite(r)):
            raise ValueError(f"plot_return_histograms: run {label!r} needs finite returns, at least one")
    edges = np.histogram_bin_edges(np.concatenate(list(data.values())), bins=bins)
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    for i, (label, r) in enumerate(data.items()):
        color = f"C{i}"
        mean, se = mean_and_standard_error(r)
        spread = "" if math.isnan(se) else f" ± {se:.1f}"
        ax.hist(r, bins=edges, density=density, histtype="stepfilled", alpha=0.25, color=color)
        ax.hist(r, bins=edges, density=density, histtype="step", linewidth=1.5, color=color,
                label=f"{label} (n={r.size}, {mean:.1f}{spread})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density" if density else "episodes")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, title="run (n episodes, mean ± SE)", alignment="left")
    return save_figure(fig, path, dpi)


def read_curve_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns of a training CSV (header row; empty cells = not logged that step) as float arrays."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise ValueError(f"{path}: empty CSV, expected a header row with a 'step' column")
            rows = list(reader)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    columns: dict[str, list[float]] = {name: [] for name in header}
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}: line {line} has {len(row)} fields, the header has {len(header)}")
        for name, cell in zip(header, row, strict=True):
            try:
                columns[name].append(float(cell) if cell.strip() else math.nan)
            except ValueError:
                raise ValueError(
                    f"{path}: line {line}, column '{name}': expected a number, got {cell!r}"
                ) from None
    return {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}


def _curve_columns(source: CurveSource) -> tuple[str, dict[str, np.ndarray]]:
    if isinstance(source, (str, os.PathLike)):
        return str(source), read_curve_csv(source)
    if hasattr(source, "columns"):  # a pandas DataFrame, without importing pandas
        return "data frame", {str(c): np.asarray(source[c], dtype=np.float64) for c in source.columns}
    if isinstance(source, Mapping):
        return "columns", {str(k): np.asarray(v, dtype=np.float64) for k, v in source.items()}
    raise TypeError(
        f"plot_learning_curves: expected a CSV path or a column mapping, got {type(source).__name__}"
    )


def plot_learning_curves(
    sources: Mapping[str, CurveSource] | Sequence[CurveSource] | str | os.PathLike,
    keys: Sequence[str],
    path: str | os.PathLike,
    x: str = "step",
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """One panel per scalar in ``keys`` against ``x``, one line per run. A source is a training CSV
    path or a column mapping / data frame; ``sources`` is {label: source}, or a list of CSV paths
    labelled by file name.
    Steps where a scalar was not logged (empty cells) are skipped."""
    from matplotlib.figure import Figure

    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if isinstance(sources, Mapping):
        labelled = dict(sources)
    else:
        labelled = dict(zip(_labels(sources), sources, strict=True))
    if not labelled or not keys:
        raise ValueError("plot_learning_curves: needs at least one source and one key")
    fig = Figure(figsize=(7, 2.4 * len(keys) + 0.6))
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    for label, source in labelled.items():
        where, columns = _curve_columns(source)
        for key in (x, *keys):
            if key not in columns:
                raise ValueError(f"{where}: no column '{key}' (columns: {', '.join(columns)})")
        for ax, key in zip(axes, keys, strict=True):
            logged = np.isfinite(columns[key]) & np.isfinite(columns[x])
            ax.plot(columns[x][logged], columns[key][logged], label=label, linewidth=1.2)
    for ax, key in zip(axes, keys, strict=True):
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel(x)
    if len(labelled) > 1:
        axes[0].legend(frameon=False)
    if title:
        axes[0].set_title(title)
    return save_figure(fig, path, dpi)


def _labels(sources: Sequence[CurveSource]) -> list[str]:
    """File stems, or parent/stem when stems collide (every run's CSV may be called the same)."""
    def name(s: CurveSource, i: int, long: bool) -> str:
        if not isinstance(s, (str, os.PathLike)):
            return f"run {i}"
        p = Path(s)
        return f"{p.parent.name}/{p.stem}" if long else p.stem

    short = [name(s, i, False) for i, s in enumerate(sources)]
    if len(set(short)) == len(short):
        return short
    long = [name(s, i, True) for i, s in enumerate(sources)]
    if len(set(long)) == len(long):
        return long
    return [str(s) if isinstance(s, (str, os.PathLike)) else f"run {i}" for i, s in enumerate(sources)]
