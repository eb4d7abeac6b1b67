"""`ractd runs [ROOT]`: every run folder below ROOT (a folder holding config.json) with its stage, task, dataset,
progress, status, wall time and evaluation scores, as a table or as JSON."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

USER_ERRORS = (ValueError, TypeError, KeyError, OSError)
QUIET_AFTER_S = 600  # a "running" run that has written nothing for this long may have crashed


def _read(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None when the file is missing or unreadable (a listing shows what it can)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def find_run_folders(root: Path) -> list[Path]:
    """Folders below ``root`` (itself included) holding a ractd config.json, sorted; a run's own subfolders
    (checkpoint/, best/, tb/) are not searched."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found, stack = [], [root]
    while stack:
        folder = stack.pop()
        header = _read(folder / "config.json")
        if header is not None and "stage" in header:
            found.append(folder)
            continue
        stack.extend(sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True))
    return sorted(found)


def _last_logged_step(run: Path) -> int | None:
    try:
        lines = (run / "train.csv").read_text().strip().splitlines()
    except OSError:
        return None
    for line in reversed(lines[1:]):
        head = line.split(",", 1)[0]
        if head.isdigit():
            return int(head)
    return None


def _status(run: Path, meta: dict[str, Any] | None) -> str:
    """finished / stopped / interrupted / failed as meta.json says; a run still marked running is 'running' while
    it keeps writing, else 'running or crashed'; 'not started' without meta.json."""
    if meta is None:
        return "not started"
    status = str(meta.get("status", "unknown"))
    if status != "running":
        return status
    files = [p for p in (run / "train.csv", run / "meta.json", run / "checkpoint" / "state.json") if p.exists()]
    quiet = time.time() - max(p.stat().st_mtime for p in files)
    return "running" if quiet < QUIET_AFTER_S else f"running or crashed (quiet for {_duration(quiet)})"


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _wall_time(meta: dict[str, Any] | None) -> float | None:
    """Training seconds: meta.json's wall time once a session ended, else the time since the run started."""
    if meta is None:
        return None
    if isinstance(meta.get("wall_time_s"), (int, float)):
        return float(meta["wall_time_s"])
    try:
        return time.time() - datetime.fromisoformat(meta["start_time"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def evaluations(run: Path) -> list[dict[str, Any]]:
    """The run's eval-*.json files: name (the file name without eval- and .json: weights, sampler, controller,
    seed), episodes, normalized score and return as {mean, se} (None where the file has none)."""
    found = []
    for path in sorted(run.glob("eval-*.json")):
        d = _read(path)
        item: dict[str, Any] = {"file": path.name, "name": path.stem.removeprefix("eval-")}
        if d is None or d.get("format") != "ractd.eval_result":
            found.append({**item, "error": "not a readable evaluation result"})
            continue
        item |= {"episodes": d.get("n_episodes"), "normalized_score": d.get("normalized_score"),
                 "return": d.get("return")}
        found.append(item)
    return found


def describe_run(run: Path, root: Path) -> dict[str, Any]:
    """One run folder as a dict: what `ractd runs` shows, machine-readable."""
    header = _read(run / "config.json") or {}
    meta = _read(run / "meta.json")
    config = header.get("config") if isinstance(header.get("config"), dict) else {}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    step = (meta or {}).get("step")
    return {
        "run": str(run.relative_to(root)) if run != root else run.name,
        "path": str(run),
        "stage": header.get("stage"),
        "task": (meta or {}).get("task") or config.get("task"),
        "dataset": (meta or {}).get("dataset") or data.get("dataset") or config.get("task"),
        "step": step if isinstance(step, int) else _last_logged_step(run),
        "total_steps": (meta or {}).get("total_steps"),
        "status": _status(run, meta),
        "wall_time_s": _wall_time(meta),
        "evaluations": evaluations(run),
    }


def _score(e: dict[str, Any]) -> str:
    if "error" in e:
        return f"{e['name']}: {e['error']}"
    for key, unit in (("normalized_score", ""), ("return", " return")):
        stat = e.get(key)
        if isinstance(stat, dict) and stat.get("mean") is not None:
            se = f" ± {stat['se']:.1f}" if stat.get("se") is not None else ""
            return f"{e['name']}:{unit} {stat['mean']:.1f}{se}"
    return f"{e['name']}: no score"


STATUS_STYLE = {"finished": "green", "stopped": "yellow", "running": "cyan"}


def runs_table(rows: list[dict[str, Any]], root: Path) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Runs below {root}",
                  caption="steps: done / total optimizer steps. evaluations: eval-*.json name, D4RL normalized score "
                          "×100, mean ± SE over episodes")
    for col in ("run", "stage", "task", "dataset", "steps", "status", "wall time", "evaluations"):
        table.add_column(col, justify="right" if col in ("steps", "wall time") else "left",
                         overflow="fold", no_wrap=col in ("run", "stage", "steps", "wall time"))
    for r in rows:
        total = "?" if r["total_steps"] is None else f"{r['total_steps']:,}"
        steps = "–" if r["step"] is None else f"{r['step']:,} / {total}"
        style = STATUS_STYLE.get(r["status"], "red")
        table.add_row(escape(r["run"]), r["stage"] or "?", escape(str(r["task"] or "?")),
                      escape(str(r["dataset"] or "?")), steps, f"[{style}]{escape(r['status'])}[/]",
                      _duration(r["wall_time_s"]), escape("\n".join(map(_score, r["evaluations"])) or "–"))
    return table


def runs(
    root: Path = typer.Argument(Path("runs"), help="Folder to search for run folders (default: runs/)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table."),
) -> None:
    """Every run folder below ROOT: stage, task, dataset, steps, status, wall time, evaluation scores.

    Examples:
      ractd runs
      ractd runs runs/hopper-medium-replay --json
    """
    from rich.console import Console

    try:
        rows = [describe_run(run, root) for run in find_run_folders(root)]
    except USER_ERRORS as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps({"root": str(root), "runs": rows}, indent=2))
        return
    if not rows:
        typer.echo(f"no run folders below {root} (a run folder holds config.json)")
        return
    terminal = Console()
    console = Console(width=terminal.width if terminal.is_terminal else 200, highlight=False)  # a pipe: full rows
    console.print(runs_table(rows, root))
