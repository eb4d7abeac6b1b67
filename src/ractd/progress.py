"""The one progress-bar layout of ractd's long jobs: description, bar, done/total, elapsed, ETA."""

from __future__ import annotations

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
