"""What an RSMEB task is (mteb style): validated metadata plus a loader; concrete tasks hold no logic.

A task's loader turns a dataset folder in its published layout into ``TaskData``; everything else (embedding,
caching, scoring, results) is shared by all tasks of the same protocol. The declared tasks are in
``geovec.bench.tasks``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Callable, Literal

from geovec.datasets import DatasetError, TaskData
from geovec.errors import GeovecError
from geovec.inputs import SEGMENT_KINDS
from geovec.instructions import CATEGORIES, Category

ProtocolName = Literal["candidates", "retrieval", "t2t"]
PROTOCOLS: tuple[str, ...] = ProtocolName.__args__  # type: ignore[attr-defined]


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
    packaged_data: str | None = None  # a pip package whose own data serves when data_path is absent under the root

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"task {self.name}: unknown category {self.category!r}; expected one of {CATEGORIES}")
        if self.protocol not in PROTOCOLS:
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
        packaged = self.metadata.packaged_data
        return (root / self.metadata.data_path).exists() or (packaged is not None and find_spec(packaged) is not None)

    def load(self, root: Path, corpus: Path | None = None) -> TaskData:
        """The task's data; ``corpus`` (t2t tasks only) is a description corpus JSONL representing the images."""
        folder = root / self.metadata.data_path
        if not self.data_present(root):
            raise GeovecError(f"task {self.name}: data not found at {folder} (dataset {self.metadata.dataset}, "
                              f"split {self.metadata.split}); set GEOVEC_DATA or --data")
        if corpus is not None and self.metadata.protocol != "t2t":
            raise GeovecError(f"task {self.name}: --corpus applies to text-to-text (t2t) tasks only")
        try:
            return self.loader(root, corpus) if corpus is not None else self.loader(root)
        except GeovecError as exc:
            raise DatasetError(f"task {self.name}: {exc}") from None

