"""Progress of long loops (rich): a live bar on a terminal or in Jupyter, a plain line a minute in a log file (a
background run's ``nohup ... > log``), nothing in tests.

``ROBENCH_PROGRESS`` chooses: ``0`` none, ``1`` the bar, ``log`` the lines; unset, the bar on an interactive
stderr or in Jupyter and the lines elsewhere. ``ROBENCH_PROGRESS_INTERVAL`` sets the seconds between lines (60);
a loop that ends before its first line leaves the log untouched.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

#: Seconds between two lines of the log mode, unless ``ROBENCH_PROGRESS_INTERVAL`` says otherwise.
LOG_INTERVAL_S = 60.0
#: The log mode's rate (and so its time remaining) is measured over this window, many lines long: at 224 px a
#: batch takes minutes, and a resumed run's batches read back from disk must not count as speed for long.
LOG_SPEED_WINDOW_S = 600.0


def progress_mode() -> str:
    """``"bar"``, ``"log"`` or ``"off"``, from ``ROBENCH_PROGRESS`` and where stderr goes (module docstring)."""
    setting = os.environ.get("ROBENCH_PROGRESS")
    if setting is not None:
        return "log" if setting == "log" else "off" if setting in ("0", "false", "") else "bar"
    return "bar" if sys.stderr.isatty() or Console(stderr=True).is_jupyter else "log"


class LoggedProgress(Progress):
    """A rich :class:`~rich.progress.Progress` without a live display that writes one line per task every
    ``interval`` seconds (``description: done/total (percent), elapsed H:MM:SS, remaining H:MM:SS``; under torchrun
    each rank's lines start ``rank R:``) and a last line when a task that has written one ends."""

    def __init__(self, interval: float, console: Console) -> None:
        super().__init__(console=console, disable=True, speed_estimate_period=LOG_SPEED_WINDOW_S)
        self.interval = interval
        self._last_line: dict[TaskID, tuple[float, float | None]] = {}  # (when, done) of its last line; None: none yet

    def add_task(self, description: str, *args: Any, **kwargs: Any) -> TaskID:
        task_id = super().add_task(description, *args, **kwargs)
        self._last_line[task_id] = (time.monotonic(), None)
        return task_id

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        if time.monotonic() - self._last_line[task_id][0] >= self.interval:
            self._line(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def stop(self) -> None:
        for task_id, (_, done) in self._last_line.items():
            if done is not None and done != self._tasks[task_id].completed:  # its end, once it has written a line
                self._line(task_id)
        super().stop()

    def _line(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        self._last_line[task_id] = (time.monotonic(), task.completed)
        done = f"{task.completed:.0f}/{task.total:.0f} ({task.percentage:.0f}%)" if task.total else f"{task.completed:.0f}"
        state = "done" if task.finished else f"remaining {_clock(task.time_remaining)}"
        rank = f"rank {os.environ['RANK']}: " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""  # under torchrun
        self.console.print(f"{rank}{task.description}: {done}, elapsed {_clock(task.elapsed)}, {state}",
                           markup=False, highlight=False, soft_wrap=True)


def _clock(seconds: float | None) -> str:
    return "?" if seconds is None else str(timedelta(seconds=round(seconds)))


def make_progress() -> Progress:
    """Progress for a loop on stderr (module docstring): a rich bar with count, elapsed and remaining time, or a
    :class:`LoggedProgress`, or a disabled one."""
    console = Console(stderr=True)
    mode = progress_mode()
    if mode == "log":
        return LoggedProgress(float(os.environ.get("ROBENCH_PROGRESS_INTERVAL", LOG_INTERVAL_S)), console)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, disable=mode == "off", transient=False)


def track(items: Iterable[T], total: int | None = None, description: str = "") -> Iterator[T]:
    """Iterate ``items`` with progress (:func:`make_progress`)."""
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in items:  # rich's own track advances from a thread that only runs beside a live display
            yield item
            progress.advance(task)
