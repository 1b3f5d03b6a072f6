"""One progress-bar style for every long job (embedding, indexing), built on rich."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress, self._task = progress, task

    def advance(self, amount: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)


class _Lines:
    """Progress off a terminal (a log file, a pipe), where rich draws its bar only once it is done: a plain line at
    the start, then one every ``every_s`` seconds and one at the end, so a log shows progress from the first
    second."""

    every_s = 30.0

    def __init__(self, total: int, description: str) -> None:
        self._total, self._description = total, description
        self._done, self._shown, self._start = 0, -1, time.monotonic()
        self._last = self._start
        self._write()

    def advance(self, amount: int = 1) -> None:
        self._done += amount
        if time.monotonic() - self._last >= self.every_s:
            self._write()

    def finish(self) -> None:
        if self._done != self._shown:
            self._write()

    def _write(self) -> None:
        self._last, self._shown = time.monotonic(), self._done
        elapsed = self._last - self._start
        left = f", ~{elapsed * (self._total - self._done) / self._done:.0f} s left" if self._done else ""
        print(f"{self._description} {self._done}/{self._total} ({elapsed:.0f} s{left})", file=sys.stderr, flush=True)


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True,
                 transient: bool = False) -> Iterator[_Bar | _Lines]:
    """A rich progress bar on stderr (``enabled=False`` gives a no-op bar so callers need no branches;
    ``transient`` clears it when done, for a preliminary step that another bar follows; off a terminal, where
    rich draws a bar only once it is done, plain lines stand for it (``_Lines``) and a transient bar is not drawn
    at all)."""
    from rich.console import Console

    console = Console(stderr=True) if enabled else None
    if console is None or (transient and not console.is_terminal):
        yield _Bar(None, None)
        return
    if not console.is_terminal:
        lines = _Lines(total, description)
        yield lines
        lines.finish()
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=transient) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))
