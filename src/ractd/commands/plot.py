"""`ractd plot`: figures from the files ractd writes: learning curves from runs' train.csv, evaluation scores from
`ractd eval` results, latency from `ractd bench`'s JSON. Every command prints the path of the PNG it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer

app = typer.Typer(help="""Figures (PNG): learning curves, evaluation scores, latency.

Examples:
  ractd plot curves runs/hopper-medium/teacher runs/hopper-medium/student
  ractd plot latency runs/hopper-medium/bench.json""", no_args_is_help=True)

USER_ERRORS = (ValueError, TypeError, KeyError, OSError)


def _fail(e: Exception) -> NoReturn:
    """A user's mistake (a missing file, a malformed one) as one line on stderr, exit 2."""
    message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _wrote(path: Path, what: str) -> None:
    typer.echo(f"wrote {path} ({what})")


# ---- learning curves ----------------------------------------------------------------------------------------------
def _train_csv(run: Path) -> Path:
    csv = run / "train.csv" if run.is_dir() else run
    if not csv.is_file():
        raise FileNotFoundError(f"{csv}: no such file (give a run folder holding train.csv, or the CSV itself)")
    return csv


def run_labels(folders: list[Path]) -> list[str]:
    """Run folder names, or task/name where two runs share a name (every task has a teacher/)."""
    short = [f.name for f in folders]
    if len(set(short)) == len(short):
        return short
    long = [f"{f.parent.name}/{f.name}" for f in folders]
    return long if len(set(long)) == len(long) else [str(f) for f in folders]


def _task(folder: Path) -> str | None:
    from ractd.io import read_json

    try:
        return read_json(folder / "config.json")["config"]["task"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


@app.command()
def curves(
    runs: list[Path] = typer.Argument(..., help="Run folders (or their train.csv files)."),
    out: Path = typer.Option(Path("curves.png"), "--out", "-o", help="PNG to write."),
    smooth: int = typer.Option(1, "--smooth", min=1, help="Moving average over N logged values (raw drawn faint)."),
    keys: list[str] = typer.Option([], "--key", "-k", help="Only these columns, one panel each (repeatable; "
                                   "default: every loss column: loss, val_loss, ctm, dsm, reward, ...)."),
    title: str | None = typer.Option(None, "--title", help="Figure title (default: the runs' tasks)."),
) -> None:
    """Learning curves from train.csv: one panel per loss term, the runs overlaid.

    Examples:
      ractd plot curves runs/hopper-medium/teacher runs/hopper-medium/student
      ractd plot curves runs/hopper-medium/student --key reward --smooth 20 -o reward.png
    """
    from ractd.evaluate.figures import plot_loss_panels

    try:
        csvs = [_train_csv(r) for r in runs]
        folders = [c.parent for c in csvs]
        tasks = list(dict.fromkeys(t for t in map(_task, folders) if t))
        title = title or f"{', '.join(tasks) or 'training'}: losses per optimizer step"
        path = plot_loss_panels(dict(zip(run_labels(folders), csvs, strict=True)), out, keys=keys or None,
                                smooth=smooth, title=title)
    except USER_ERRORS as e:
        _fail(e)
    _wrote(path, f"learning curves of {len(runs)} run{'s' if len(runs) > 1 else ''}")


# ---- evaluation scores --------------------------------------------------------------------------------------------
def eval_label(path: Path) -> str:
    """`ractd eval`'s RUN/eval-WEIGHTS-SAMPLER-CONTROLLER-seedS.json is 'RUN: WEIGHTS-SAMPLER-...'; any other file
    is its name without .json."""
    if path.stem.startswith("eval-"):
        return f"{path.parent.name}: {path.stem.removeprefix('eval-')}"
    return path.stem


def _dataset_row(name: str, refs: tuple[float, float] | None, normalized: bool) -> tuple[Any, str]:
    """The dataset's episode returns on the same scale as the evaluations, and the row's label."""
    from ractd.data import load_dataset
    from ractd.data.returns import normalized_score
    from ractd.envs.registry import get_task, is_known_task

    returns = load_dataset(name).episode_returns()
    task = get_task(name) if is_known_task(name) else None  # None: a file path or a Minari id
    label = f"dataset episodes: {name}"
    if task is not None and task.kind == "maze2d":
        label += " (goal-to-goal segments)"
    if not normalized:
        return returns, label
    if refs is None:
        if task is None or not task.has_reference_scores:
            raise ValueError(f"--dataset {name}: no reference scores to normalize its returns by")
        refs = (task.ref_min_score, task.ref_max_score)
    return normalized_score(returns, *refs), label


@app.command()
def returns(
    files: list[Path] = typer.Argument(..., help="Evaluation results written by `ractd eval` (one row each)."),
    out: Path = typer.Option(Path("returns.png"), "--out", "-o", help="PNG to write."),
    dataset: str | None = typer.Option(None, "--dataset", help="Draw this dataset's episodes underneath "
                                       "(generated name, D4RL hdf5 path or Minari id)."),
    labels: list[str] = typer.Option([], "--label", "-l", help="Row labels, one per file, in order (default: "
                                     "from the file names)."),
    bins: int = typer.Option(30, "--bins", min=1, help="Histogram bins per row."),
    title: str | None = typer.Option(None, "--title", help="Figure title (default: the environments)."),
) -> None:
    """Score histograms, one row per evaluation (D4RL normalized score ×100 when the files have it, else the raw
    return), mean ± SE marked, the dataset's episodes underneath with --dataset.

    Examples:
      ractd plot returns runs/hopper-medium-expert/*/eval-*.json
      ractd plot returns runs/hopper-medium-expert/student/eval-*.json --dataset hopper-medium-expert
    """
    from ractd.evaluate.figures import plot_score_rows
    from ractd.evaluate.results import EvalResult

    try:
        if labels and len(labels) != len(files):
            raise ValueError(f"--label: {len(labels)} labels given for {len(files)} files (give one per file)")
        results = [EvalResult.from_json(f) for f in files]
        names = labels or [eval_label(f) for f in files]
        if len(set(names)) < len(names):  # the same file name in several folders: say which folder
            names = [f"{f.parent.name}/{n}" for f, n in zip(files, names, strict=True)]
        normalized = all(r.normalized_scores is not None for r in results)
        raw = [str(f) for f, r in zip(files, results, strict=True) if r.normalized_scores is None]
        if raw and len(raw) < len(files):
            typer.echo(f"note: no normalized scores in {', '.join(raw)}: every row shows the raw return", err=True)
        rows = {n: (r.normalized_scores if normalized else r.returns) for n, r in zip(names, results, strict=True)}
        refs = {r.ref_scores for r in results if r.ref_scores is not None}
        if dataset is not None and len(refs) > 1:
            raise ValueError(f"--dataset {dataset}: the files have different reference scores {sorted(refs)}; "
                             "plot one task at a time")
        values, label = (None, "") if dataset is None else _dataset_row(dataset, next(iter(refs), None), normalized)
        envs = ", ".join(dict.fromkeys(r.env_id for r in results))
        path = plot_score_rows(rows, out, normalized=normalized, dataset=values, dataset_label=label,
                               title=title or f"{envs}: episode scores", bins=bins)
    except USER_ERRORS as e:
        _fail(e)
    scale = "D4RL normalized score ×100" if normalized else "raw return"
    _wrote(path, f"{len(files)} evaluation{'s' if len(files) > 1 else ''}, {scale}"
                 f"{f', dataset {dataset} underneath' if dataset else ''}")


# ---- latency ------------------------------------------------------------------------------------------------------
@app.command()
def latency(
    bench: Path = typer.Argument(..., help="A benchmark result written by `ractd bench` (bench.json)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="PNG to write (default: next to BENCH, .png)."),
) -> None:
    """Milliseconds per action per case as log-scale bars: student NFE 1–4, teacher Heun, bare forward, per batch
    size, with the student/teacher speedup.

    Examples:
      ractd plot latency runs/hopper-medium/bench.json
      ractd plot latency bench-gpu.json -o latency-gpu.png
    """
    from ractd.evaluate.figures import plot_latency
    from ractd.io import read_json

    try:
        path = plot_latency(read_json(bench), out or bench.with_suffix(".png"), source=str(bench))
    except USER_ERRORS as e:
        _fail(e)
    _wrote(path, "ms per action per case, log scale")
