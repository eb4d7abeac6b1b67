"""The one progress-bar layout of ractd's long jobs: description, bar, done/total, elapsed, ETA."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


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

    def __init__(self, progress: Any = None, task: Any = None, redraw: bool = False) -> None:
        self._progress, self._task, self._redraw = progress, task, redraw

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)
            if self._redraw:
                self._progress.refresh()

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
        if self._redraw:
            self._progress.refresh()


@contextmanager
def progress_bar(description: str, total: float | None, enabled: bool = True, completed: float = 0,
                 transient: bool = False, info: str = "", auto_refresh: bool = True) -> Iterator[Bar]:
    """The one progress bar of ractd: `eta_columns` plus a free `info` text (latest losses, episodes done),
    starting at ``completed`` of ``total`` with ``info``; ``transient`` clears it when done. With
    ``auto_refresh=False`` no drawing thread runs (the bar redraws on each update; a CPU-time benchmark needs this).

        with progress_bar("rollouts", total=steps) as bar:
            bar.advance(n)
    """
    if not enabled:
        yield Bar()
        return
    from rich.progress import Progress, TextColumn

    with Progress(*eta_columns(), TextColumn("{task.fields[info]}"), transient=transient,
                  auto_refresh=auto_refresh) as progress:
        task = progress.add_task(description, total=total, completed=completed, info=info)
        yield Bar(progress, task, redraw=not auto_refresh)


def track(items: Iterable[T], description: str, total: int | None = None, enabled: bool = True) -> Iterator[T]:
    """`items`, with a progress bar over them (`progress_bar`)."""
    with progress_bar(description, total, enabled) as bar:
        for item in items:
            yield item
            bar.advance()
