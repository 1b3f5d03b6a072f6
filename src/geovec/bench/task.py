"""RSMEB tasks declared as data (mteb style): validated metadata plus a loader; concrete tasks hold no logic.

A task's loader turns a dataset folder in its published layout into ``TaskData``; everything else (embedding,
caching, scoring, results) is shared by all tasks of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from geovec.bench.data import BenchDataError, TaskData
from geovec.errors import GeovecError
from geovec.inputs import SEGMENT_KINDS

Category = Literal["scene-classification", "cross-modal-retrieval", "compositional-retrieval", "vqa", "region",
                   "geo-localization"]
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]
ProtocolName = Literal["candidates", "retrieval", "t2t"]


@dataclass(frozen=True)
class TaskMetadata:
    """Everything a reader of results needs to know about a task, independent of any model."""

    name: str
    category: Category
    description: str
    dataset: str  # public dataset name, e.g. "RSICD"
    split: str
    data_path: str  # folder under the data root that must exist for the task to run
    query_kinds: tuple[str, ...]
    candidate_kinds: tuple[str, ...]
    protocol: ProtocolName  # "candidates": P@1 over per-query lists; "retrieval"/"t2t": R@1/5/10 + mR
    query_instruction: str | None = None
    candidate_instruction: str | None = None
    citation: str = ""
    revision: str = "1"  # bump when the loader's output changes, so old results are not compared blindly
    max_queries: int | None = None  # deterministic subsample for large datasets

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"task {self.name}: unknown category {self.category!r}; expected one of {CATEGORIES}")
        if self.protocol not in ("candidates", "retrieval", "t2t"):
            raise ValueError(f"task {self.name}: unknown protocol {self.protocol!r}")
        for kind in self.query_kinds + self.candidate_kinds:
            if kind not in SEGMENT_KINDS:
                raise ValueError(f"task {self.name}: unknown segment kind {kind!r}")

    @property
    def main_score(self) -> str:
        return "precision_at_1" if self.protocol == "candidates" else "mean_recall"

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self.query_kinds + self.candidate_kinds)


@dataclass(frozen=True)
class Task:
    metadata: TaskMetadata
    loader: Callable[..., TaskData] = field(repr=False)  # (root) or, for t2t tasks, (root, corpus)

    @property
    def name(self) -> str:
        return self.metadata.name

    def data_present(self, root: Path) -> bool:
        return (root / self.metadata.data_path).exists()

    def load(self, root: Path, corpus: Path | None = None) -> TaskData:
        """The task's data; ``corpus`` (t2t tasks only) is a description corpus JSONL representing the images."""
        folder = root / self.metadata.data_path
        if not folder.exists():
            raise GeovecError(f"task {self.name}: data not found at {folder} (dataset {self.metadata.dataset}, "
                              f"split {self.metadata.split}); set GEOVEC_DATA or --data")
        if corpus is not None and self.metadata.protocol != "t2t":
            raise GeovecError(f"task {self.name}: --corpus applies to text-to-text (t2t) tasks only")
        try:
            return self.loader(root, corpus) if corpus is not None else self.loader(root)
        except GeovecError as exc:
            raise BenchDataError(f"task {self.name}: {exc}") from None


_TASKS: dict[str, Task] = {}


def register_task(metadata: TaskMetadata, loader: Callable[..., TaskData]) -> Task:
    if metadata.name in _TASKS:
        raise ValueError(f"task {metadata.name!r} is already registered")
    _TASKS[metadata.name] = task = Task(metadata, loader)
    return task


def list_tasks() -> list[Task]:
    _load_builtins()
    return sorted(_TASKS.values(), key=lambda task: (task.metadata.category, task.name))


def get_task(name: str) -> Task:
    _load_builtins()
    if name not in _TASKS:
        raise GeovecError(f"unknown task {name!r}; see `geovec bench list` for the {len(_TASKS)} tasks")
    return _TASKS[name]


def _load_builtins() -> None:
    import geovec.bench.tasks  # noqa: F401  (registers the RSMEB tasks)
