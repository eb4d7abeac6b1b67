"""The one progress-bar layout of ractd's long jobs: description, bar, done/total, elapsed, ETA."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def eta_columns(description: str = "{task.description}") -> tuple[Any, ...]:
    """rich.progress columns: description, bar, M/N, elapsed time, 'ETA' and the remaining time."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn())


class Bar:
    """Handle of one progress bar: `advance(n)`, or `update(completed=, description=, info=, total=, advance=)`.
    A disabled bar accepts the same calls and prints nothing."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def update(self, completed: float | None = None, description: str | None = None, info: str | None = None,
               total: float | None = None, advance: float | None = None) -> None:
        if self._progress is None:
            return
        fields: dict[str, Any] = {}
        if completed is not None:
            fields["completed"] = completed
        if description is not None:
            fields["description"] = description
        if info is not None:
            fields["info"] = info
        if total is not None:
            fields["total"] = total
        if advance is not None:
            fields["advance"] = advance
        self._progress.update(self._task, **fields)


@contextmanager
def progress_bar(description: str, total: float | None, enabled: bool = True, completed: float = 0,
                 transient: bool = False, info: str = "") -> Iterator[Bar]:
    """The one progress bar of ractd: `eta_columns` plus a free `info` text (latest losses, episodes done),
    starting at ``completed`` of ``total`` with ``info``; ``transient`` clears it when done.

        with progress_bar("rollouts", total=steps) as bar:
            bar.advance(n)
    """
    if not enabled:
        yield Bar()
        return
    from rich.progress import Progress, TextColumn

    with Progress(*eta_columns(), TextColumn("{task.fields[info]}"), transient=transient) as progress:
        yield Bar(progress, progress.add_task(description, total=total, completed=completed, info=info))
