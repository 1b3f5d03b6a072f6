"""One progress-bar style for every long job (embedding, indexing), built on rich."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress, self._task = progress, task

    def advance(self, amount: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True, transient: bool = False) -> Iterator[_Bar]:
    """A rich progress bar on stderr (``enabled=False`` gives a no-op bar so callers need no branches;
    ``transient`` clears it when done, for a preliminary step that another bar follows; off a terminal, where
    rich draws a bar only once it is done, a transient bar is not drawn at all)."""
    from rich.console import Console

    console = Console(stderr=True) if enabled else None
    if console is None or (transient and not console.is_terminal):
        yield _Bar(None, None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=transient) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))
