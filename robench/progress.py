"""Progress display for long loops (rich), silent when output is not a terminal and in tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


def progress_enabled() -> bool:
    """Show bars on an interactive stderr unless ``ROBENCH_PROGRESS=0``; ``=1`` forces them on."""
    setting = os.environ.get("ROBENCH_PROGRESS")
    if setting is not None:
        return setting not in ("0", "false", "")
    return sys.stderr.isatty()


def make_progress() -> Progress:
    """A rich progress bar on stderr with count, elapsed and remaining time."""
    from rich.console import Console

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), disable=not progress_enabled(), transient=False)


def track(items: Iterable[T], total: int | None = None, description: str = "") -> Iterator[T]:
    """Iterate ``items`` with a progress bar."""
    with make_progress() as progress:
        yield from progress.track(items, total=total, description=description)
