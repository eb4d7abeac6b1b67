"""Scalar logging for training runs: train.csv, TensorBoard event files, optional W&B, progress bar.

train.csv has one row per step at which something was logged (training scalars every `log_every`
steps, validation and callback scalars at epoch ends are merged into the row of their step). Columns
are `step`, `epoch`, then scalars in order of first appearance; a scalar that first appears later
(e.g. `val_loss`) adds a column by rewriting the file atomically, so the file is always a valid CSV
with one header. Values are written with `repr(float)` (exact round-trip). On resume the rows after
the checkpoint's step are dropped, so an interrupted-and-resumed run has the same rows as an
uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ractd.io import atomic_path
from ractd.progress import Bar, progress_bar

CSV_NAME = "train.csv"
TB_DIR = "tb"


def _format(value: float | int | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return repr(float(value))


class CSVLog:
    """Append-only scalar table with a growing header (see module docstring)."""

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.columns: list[str] = []
        self._pending_step: int | None = None
        self._pending: dict[str, Any] = {}
        if resume_step is None:
            if self.path.exists():
                self.path.unlink()
        elif self.path.exists():
            self._truncate_after(resume_step)

    def _read(self) -> tuple[list[str], list[dict[str, str]]]:
        text = self.path.read_text()
        if text and not text.endswith("\n"):  # a crash mid-append leaves a partial last line
            text = text[: text.rfind("\n") + 1]
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return [], []
        header = rows[0]
        if header[:2] != ["step", "epoch"]:
            raise ValueError(f"{self.path}: header {header[:2]} does not start with ['step', 'epoch']; "
                             "not a ractd train.csv")
        return header, [dict(zip(header, r, strict=False)) for r in rows[1:] if len(r) == len(header)]

    def _write_all(self, columns: list[str], rows: list[dict[str, str]]) -> None:
        with atomic_path(self.path, suffix=".csv") as tmp:
            with tmp.open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(columns)
                for r in rows:
                    w.writerow([r.get(c, "") for c in columns])

    def _truncate_after(self, step: int) -> None:
        header, rows = self._read()
        kept = [r for r in rows if r["step"] and int(r["step"]) <= step]
        self.columns = header
        self._write_all(header, kept)

    def log(self, step: int, epoch: int, scalars: dict[str, float]) -> None:
        """Add scalars to the row of `step` (rows are written when a later step arrives or on flush)."""
        if self._pending_step is not None and step != self._pending_step:
            self.flush()
        self._pending_step = step
        self._pending.update(scalars)
        self._pending["epoch"] = epoch

    def flush(self) -> None:
        """Write the pending row."""
        if self._pending_step is None:
            return
        row = {"step": self._pending_step, **self._pending}
        self._pending_step, self._pending = None, {}
        new = [k for k in row if k not in self.columns]
        cells = {k: _format(v) for k, v in row.items()}
        if not self.columns:
            self.columns = ["step", "epoch"] + [k for k in new if k not in ("step", "epoch")]
            self._write_all(self.columns, [cells])
        elif new:  # a scalar seen for the first time: extend the header (rewrite atomically)
            _, rows = self._read()
            self.columns = self.columns + new
            self._write_all(self.columns, [*rows, cells])
        else:
            with self.path.open("a", newline="") as f:
                csv.writer(f).writerow([cells.get(c, "") for c in self.columns])


def read_csv_log(path: str | Path) -> list[dict[str, str]]:
    """Rows of a train.csv as dicts of strings (empty string = not logged at that step)."""
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


class RunLogger:
    """Fans scalars out to train.csv, TensorBoard and (if asked and installed) W&B. Rank 0 only."""

    def __init__(self, run_dir: str | Path, *, resume_step: int | None, tensorboard: bool = True,
                 wandb: bool = False, wandb_project: str = "ractd", config: dict[str, Any] | None = None
                 ) -> None:
        run_dir = Path(run_dir)
        self.csv = CSVLog(run_dir / CSV_NAME, resume_step)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a crashed run logged after its last checkpoint
            self.tb = SummaryWriter(str(run_dir / TB_DIR),
                                    purge_step=None if resume_step is None else resume_step + 1)
        self.wandb = None
        if wandb:
            try:
                import wandb as _wandb
            except ImportError:
                warnings.warn("LoopConfig.wandb is true but the `wandb` package is not installed; "
                              "logging to train.csv and TensorBoard only", stacklevel=2)
            else:
                self.wandb = _wandb.init(project=wandb_project, dir=str(run_dir), config=config,
                                         name=run_dir.name, resume="allow")

    def log(self, step: int, epoch: int, scalars: dict[str, float]) -> None:
        """Record scalars at a global step."""
        self.csv.log(step, epoch, scalars)
        if self.tb is not None:
            for k, v in scalars.items():
                if v is not None and math.isfinite(float(v)):
                    self.tb.add_scalar(k, float(v), step)
        if self.wandb is not None:
            self.wandb.log({**scalars, "epoch": epoch}, step=step)

    def flush(self) -> None:
        self.csv.flush()
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        self.flush()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


class TrainProgress:
    """Training view of a `ractd.progress` bar: the epoch in the title, the latest losses in the info field."""

    def __init__(self, bar: Bar, title: str = "train") -> None:
        self.bar, self.title = bar, title

    def update(self, step: int, epoch: int, epochs: int, scalars: dict[str, float] | None = None) -> None:
        """Move the bar to `step`; show the epoch and (if given) a few scalars."""
        info = None
        if scalars is not None:
            shown = [k for k in scalars if "loss" in k][:4] + (["lr"] if "lr" in scalars else [])
            info = "  ".join(f"{k}={scalars[k]:.4g}" for k in shown)
        self.bar.update(completed=step, description=f"[bold]{self.title} epoch {epoch + 1}/{epochs}", info=info)


def resume_line(run_dir: str | Path, step: int, total_steps: int, stop_step: int | None = None) -> str:
    """What a resumed run says before its progress bar: `resuming runs/T/teacher from step 1,234 of 1,500`."""
    stop = f", stopping at step {stop_step:,}" if stop_step is not None and stop_step < total_steps else ""
    return f"resuming {run_dir} from step {step:,} of {total_steps:,}{stop}"


def say(line: str) -> None:
    """Print one line to stdout (above any progress bar that follows)."""
    from rich.console import Console
    from rich.markup import escape

    Console(soft_wrap=True, highlight=False).print(escape(line))


@contextmanager
def train_progress(total: int, start: int, enabled: bool, title: str = "train") -> Iterator[TrainProgress]:
    """A progress bar over optimizer steps `start`..`total` with ETA and the latest losses (disabled: silent)."""
    with progress_bar(f"[bold]{title}", total=total, enabled=enabled, completed=start) as bar:
        yield TrainProgress(bar, title)
