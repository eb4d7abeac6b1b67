"""The figures of `ractd plot`, `ractd bench` and the quickstart:

- `plot_loss_panels`: learning curves from training CSVs, one panel per loss term, runs overlaid;
- `plot_score_rows`: evaluation scores as one histogram row per method on a shared axis, mean ± SE marked, the
  dataset's episodes underneath (the layout of the thesis's Fig. 3.3);
- `plot_latency`: a benchmark's ms per action per case as log-scale bars, one panel per model and batch size.

Every figure has a fixed size (a constrained layout, no cropping), so its PNG is exactly size × dpi pixels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ractd.evaluate.metrics import mean_and_standard_error
from ractd.evaluate.plots import CurveSource, _curve_columns, save_figure

NOT_LOSSES = ("step", "epoch", "lr")
TERM_TITLES = {
    "loss": "loss: the objective the optimizer minimizes",
    "val_loss": "val_loss: loss on held-out data",
    "edm": "edm: the EDM denoising term",
    "ctm": "ctm: the consistency-trajectory term",
    "dsm": "dsm: the denoising score-matching term",
    "reward": "reward: the reward term (minus the predicted return)",
}
NORMALIZED_AXIS = "D4RL normalized score (×100)"
RAW_AXIS = "episode return (raw: no reference scores to normalize by)"


# ---- learning curves ----------------------------------------------------------------------------------------------
def moving_average(y: ArrayLike, n: int) -> np.ndarray:
    """Trailing mean over the last ``n`` values (fewer at the start); ``n`` <= 1 returns the values unchanged."""
    y = np.asarray(y, dtype=np.float64)
    if n <= 1 or y.size < 2:
        return y
    sums = np.concatenate([[0.0], np.cumsum(y)])
    width = np.minimum(np.arange(1, y.size + 1), n)
    ends = np.arange(1, y.size + 1)
    return (sums[ends] - sums[ends - width]) / width


def loss_terms(columns: Sequence[Mapping[str, np.ndarray]]) -> list[str]:
    """The columns worth a panel: every column of the runs except step, epoch and the learning rate, in the order
    they first appear, the total loss first."""
    terms = [name for cols in columns for name in cols if name not in NOT_LOSSES]
    terms = list(dict.fromkeys(terms))
    return sorted(terms, key=lambda t: t != "loss")


def _log_scale(ax: Any) -> None:
    """A logarithmic y axis labelled with plain numbers (0.3, 1, 20). Below two decades the multiples 2 and 5 (and 3,
    below one decade) are labelled too; a range under a factor of 4 is widened to that, so labels always show."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:.3g}")
    ax.yaxis.set_major_formatter(plain)
    low, high = ax.get_ylim()
    if high / low < 4:
        middle = math.sqrt(low * high)
        low, high = middle / 2, middle * 2
        ax.set_ylim(low, high)
    if high / low >= 100:
        ax.yaxis.set_minor_formatter(NullFormatter())
        return
    ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5) if high / low >= 10 else (2, 3, 5)))
    ax.yaxis.set_minor_formatter(plain)


def plot_loss_panels(
    runs: Mapping[str, CurveSource],
    path: str | os.PathLike,
    keys: Sequence[str] | None = None,
    smooth: int = 1,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Learning curves of several runs ({label: train.csv path or column mapping}), one panel per loss term.

    The panels are ``keys`` (default: every column but step, epoch and lr, over all runs); a run is drawn only in
    the panels of the columns it has, steps where a column was not logged are skipped. A panel's y axis is
    logarithmic when all its values are positive. ``smooth`` > 1 draws the trailing moving average over that many
    logged values, with the raw values as a faint line. Panels are laid out in two columns (one for a single
    panel); the image is 640 px wide per column and 90 + 280 px per row of panels at the default dpi of 100.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    if not runs:
        raise ValueError("plot_loss_panels: no runs given")
    if smooth < 1:
        raise ValueError(f"plot_loss_panels: smooth must be at least 1, got {smooth}")
    data = {}
    for label, source in runs.items():
        where, columns = _curve_columns(source)
        if "step" not in columns:
            raise ValueError(f"{where}: no 'step' column (columns: {', '.join(columns) or 'none'})")
        data[label] = columns
    keys = list(keys) if keys is not None else loss_terms(list(data.values()))
    if not keys:
        raise ValueError(f"plot_loss_panels: no loss column in {', '.join(map(str, runs))} (only step, epoch, lr)")
    missing = [k for k in keys if not any(k in cols for cols in data.values())]
    if missing:
        raise ValueError(f"plot_loss_panels: no run has a column {', '.join(map(repr, missing))}")

    ncols = 1 if len(keys) == 1 else 2
    nrows = math.ceil(len(keys) / ncols)
    fig = Figure(figsize=(6.4 * ncols, 0.9 + 2.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    colors = {label: f"C{i % 10}" for i, label in enumerate(data)}
    for ax, key in zip(axes, keys, strict=False):
        positive = True
        for label, columns in data.items():
            if key not in columns:
                continue
            logged = np.isfinite(columns[key]) & np.isfinite(columns["step"])
            x, y = columns["step"][logged], columns[key][logged]
            if y.size == 0:
                continue
            positive &= bool(np.all(y > 0))
            marker = "o" if y.size <= 20 else None
            if smooth > 1:
                ax.plot(x, y, color=colors[label], alpha=0.25, linewidth=0.8)
                y = moving_average(y, smooth)
            ax.plot(x, y, color=colors[label], linewidth=1.4, marker=marker, markersize=3, label=label)
        if positive and ax.lines:
            _log_scale(ax)
        ax.set_title(TERM_TITLES.get(key, key), fontsize=10, loc="left")
        ax.set_ylabel(f"{key} (log scale)" if ax.get_yscale() == "log" else key)
        ax.grid(alpha=0.3)
        ax.grid(alpha=0.1, which="minor")
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))  # optimizer steps are whole numbers (shared x)
    for column in range(ncols):  # the lowest visible panel of each column carries the x label
        visible = [ax for ax in axes[column::ncols] if ax.get_visible()]
        visible[-1].set_xlabel("optimizer step")
        visible[-1].xaxis.set_tick_params(labelbottom=True)
    handles = [Line2D([], [], color=colors[label], linewidth=1.4) for label in data]
    fig.legend(handles, list(data), loc="outside lower center", ncol=min(len(data), 5), frameon=False)
    smoothing = f"moving average over {smooth} logged values (raw values faint)" if smooth > 1 else None
    if title or smoothing:
        fig.suptitle("\n".join(t for t in (title, smoothing) if t), fontweight="bold")
    return save_figure(fig, path, dpi, tight=False)


# ---- evaluation scores --------------------------------------------------------------------------------------------
def plot_score_rows(
    rows: Mapping[str, ArrayLike],
    path: str | os.PathLike,
    normalized: bool = True,
    dataset: ArrayLike | None = None,
    dataset_label: str = "dataset episodes",
    title: str | None = None,
    bins: int = 30,
    dpi: int = 100,
) -> Path:
    """One histogram row per method ({label: per-episode values}) on a shared x axis, the dataset's episodes in a
    grey row underneath when given (the layout of the thesis's Fig. 3.3).

    Values are D4RL normalized scores ×100 when ``normalized``, else raw episode returns (the x axis says which).
    Each row marks its mean (line) ± standard error (band) and names n and mean ± SE; bars are the share of that
    row's episodes, so a dataset of thousands of episodes and 50 evaluation episodes compare. The image is
    800 px wide and 100 + 150 px per row at the default dpi of 100.
    """
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("plot_score_rows: no methods given")
    if bins < 1:
        raise ValueError(f"plot_score_rows: bins must be at least 1, got {bins}")
    data = {label: np.asarray(v, dtype=np.float64).ravel() for label, v in rows.items()}
    if dataset is not None:
        data[dataset_label] = np.asarray(dataset, dtype=np.float64).ravel()
    for label, v in data.items():
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise ValueError(f"plot_score_rows: {label!r} needs finite values, at least one")
    edges = np.histogram_bin_edges(np.concatenate(list(data.values())), bins=bins)
    if edges[0] == edges[-1]:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    fig = Figure(figsize=(8.0, 1.0 + 1.5 * len(data)), layout="constrained")
    axes = fig.subplots(len(data), 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, (label, v)) in enumerate(zip(axes, data.items(), strict=True)):
        is_dataset = dataset is not None and i == len(data) - 1
        color = "0.45" if is_dataset else f"C{i % 10}"
        weights = np.full(v.size, 100.0 / v.size)
        ax.hist(v, bins=edges, weights=weights, histtype="stepfilled", alpha=0.3, color=color)
        ax.hist(v, bins=edges, weights=weights, histtype="step", linewidth=1.4, color=color)
        mean, se = mean_and_standard_error(v)
        if math.isfinite(se):
            ax.axvspan(mean - se, mean + se, color=color, alpha=0.25, linewidth=0)
        ax.axvline(mean, color=color, linewidth=2)
        spread = "" if math.isnan(se) else f" ± {se:.1f}"
        ax.set_title(label, loc="left", fontsize=10, fontweight="bold", color=color)
        ax.set_title(f"n = {v.size}, mean {mean:.1f}{spread} (SE)", loc="right", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        if is_dataset:
            ax.set_facecolor("0.96")
    axes[-1].set_xlabel(f"{NORMALIZED_AXIS if normalized else RAW_AXIS}; line: mean, band: ± standard error")
    fig.supylabel("% of episodes (per row)")
    if title:
        fig.suptitle(title, fontweight="bold")
    return save_figure(fig, path, dpi, tight=False)


# ---- latency ------------------------------------------------------------------------------------------------------
CLOCK_NAMES = {"cpu": "CPU", "wall": "wall"}
ROW_KEYS = ("model", "network", "sampler", "nfe", "batch", "ms_per_action")
FORWARD_SAMPLER = "forward"


def _bar(row: Mapping[str, Any]) -> tuple[int, str, str]:
    """Order, label and colour of a case's bar: student by NFE, then the teacher's solver, DDIM, bare forwards."""
    network, sampler, nfe = row["network"], row["sampler"], row["nfe"]
    if sampler == FORWARD_SAMPLER:
        return 300, f"bare forward ({network} net)", "0.55"
    if network == "student":
        how = "one step" if sampler == "one_step" else f"{nfe} chained steps"
        return nfe, f"student, {nfe} NFE ({how})", "C0"
    if network == "ddim" or sampler.startswith("ddim"):
        return 200, f"DDIM, {nfe} NFE", "C1"
    return 100, f"{network} {sampler.split(':')[0].capitalize()}, {nfe} NFE", "C3"


def _ms(value: float) -> str:
    """Milliseconds with three significant digits, thousands written out (53,426 rather than 5.34e+04)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def latency_rows(result: Any, source: str = "benchmark result") -> list[Mapping[str, Any]]:
    """The rows of a `ractd bench` result, checked: a ValueError names ``source`` and what is missing."""
    if not isinstance(result, Mapping) or not str(result.get("format", "")).startswith("ractd.bench/"):
        raise ValueError(f"{source}: not a ractd benchmark result (expected \"format\": \"ractd.bench/N\")")
    rows = result.get("rows")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{source}: no 'rows' with timed cases")
    for i, row in enumerate(rows):
        missing = [k for k in ROW_KEYS if not isinstance(row, Mapping) or k not in row]
        if missing:
            raise ValueError(f"{source}: row {i} has no {', '.join(missing)}")
        ms = row["ms_per_action"]
        if not (isinstance(ms, (int, float)) and ms > 0):
            raise ValueError(f"{source}: row {i}: ms_per_action must be a positive number, got {ms!r}")
    return rows


def plot_latency(result: Mapping[str, Any], path: str | os.PathLike, source: str = "benchmark result",
                 dpi: int = 100) -> Path:
    """Milliseconds per action of every case of a benchmark result (`ractd bench`'s JSON) as log-scale bars: student
    NFE 1–4, the teacher's solver, DDIM if timed, the bare forwards; one panel per model (rows) and batch size
    (columns), the student (1 NFE)/teacher speedup written in each panel. Extrapolated cases are hatched and their
    value marked ≈. The image is 680 px wide per batch size and 90 + (45 per bar + 90) px per model at dpi 100.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows = latency_rows(result, source)
    models = list(dict.fromkeys(r["model"] for r in rows))
    batches = sorted(dict.fromkeys(int(r["batch"]) for r in rows))
    panels = {(m, b): sorted((r for r in rows if r["model"] == m and int(r["batch"]) == b), key=lambda r: _bar(r)[0])
              for m in models for b in batches}
    most = max(len(p) for p in panels.values())
    fig = Figure(figsize=(6.8 * len(batches), 0.9 + (0.45 * most + 0.9) * len(models)), layout="constrained")
    axes = fig.subplots(len(models), len(batches), sharex=True, squeeze=False)
    fastest = min(r["ms_per_action"] for r in rows)
    slowest = max(r["ms_per_action"] for r in rows)
    for (i, model), (j, batch) in ((a, b) for a in enumerate(models) for b in enumerate(batches)):
        ax, cases = axes[i, j], panels[model, batch]
        ax.set_xscale("log")
        if not cases:
            ax.set_visible(False)
            continue
        bars = [_bar(r) for r in cases]
        y = np.arange(len(cases))[::-1]
        values = [r["ms_per_action"] for r in cases]
        measured = [r.get("measured", True) is not False for r in cases]
        ax.barh(y, values, color=[c for _, _, c in bars], hatch=[None if m else "//" for m in measured],
                edgecolor="white", height=0.7)
        ax.set_yticks(y, [label for _, label, _ in bars])
        for yy, v, m in zip(y, values, measured, strict=True):
            ax.text(v * 1.1, yy, f"{'' if m else '≈'}{_ms(v)} ms", va="center", fontsize=8.5)
        speedup = next((r.get("speedup_vs_teacher") for r in cases
                        if r["network"] == "student" and r["sampler"] == "one_step"), None)
        title = f"{model} model, batch {batch}" if len(models) > 1 else f"batch {batch}"
        # the 1-NFE student's speed-up over the teacher, in the title so it never covers a bar or its value
        ax.set_title(title + (f": student {speedup:.0f}× faster" if speedup else ""),
                     loc="left", fontsize=10, fontweight="bold")
        ax.grid(alpha=0.3, axis="x")
    axes[0, 0].set_xlim(fastest / 2, slowest * 6)  # room for the value labels right of the longest bar
    for ax in axes[-1]:
        ax.set_xlabel("ms per action (log scale)")
    env = result.get("environment") or {}
    clock = (result.get("settings") or {}).get("clock") or rows[0].get("clock")
    threads = env.get("threads")
    where = [f"device {env['device']}" if env.get("device") else None,
             f"{threads} thread{'s' if threads != 1 else ''}" if threads else None,
             f"{CLOCK_NAMES.get(clock, clock)} clock" if clock else None]
    fig.suptitle("Planning latency per action: median over timed blocks ÷ batch size"
                 f"{' (' + ', '.join(w for w in where if w) + ')' if any(where) else ''}", fontweight="bold")
    if not all(r.get("measured", True) is not False for r in rows):
        fig.legend([Patch(facecolor="0.8", hatch="//", edgecolor="white")],
                   ["≈ extrapolated: NFE × the measured bare forward"], loc="outside lower center", frameon=False)
    return save_figure(fig, path, dpi, tight=False)
