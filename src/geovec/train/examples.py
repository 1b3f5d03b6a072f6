"""Training examples: an instruction-tagged (query, positive, hard negatives) triple from one source task.

The instruction travels inside each ``Interleaved`` (query and candidate sides may carry different ones, as in
RSMEB). Examples are stored one JSON object per line so builders, mixers and the trainer share one format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from geovec.errors import GeovecInputError
from geovec.fileio import write_text_atomic
from geovec.ingest.jsonl import iter_jsonl
from geovec.inputs import Interleaved


@dataclass(frozen=True)
class TrainingExample:
    task: str  # source, e.g. "rsicd-caption": used for per-task weights and the test-split leak check
    query: Interleaved
    positive: Interleaved
    negatives: tuple[Interleaved, ...] = field(default_factory=tuple)
    source_ids: tuple[str, ...] = field(default_factory=tuple)  # dataset item ids (image file names) it uses

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "query": self.query.to_dict(), "positive": self.positive.to_dict(),
                "negatives": [n.to_dict() for n in self.negatives], "source_ids": list(self.source_ids)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingExample":
        if not isinstance(data, dict) or not isinstance(data.get("task"), str):
            raise GeovecInputError("example", "expected an object with 'task', 'query' and 'positive'")
        return cls(task=data["task"], query=Interleaved.from_dict(data.get("query")),
                   positive=Interleaved.from_dict(data.get("positive")),
                   negatives=tuple(Interleaved.from_dict(n) for n in data.get("negatives", [])),
                   source_ids=tuple(data.get("source_ids", [])))


def write_examples(path: str | Path, examples: list[TrainingExample]) -> Path:
    path = Path(path)
    write_text_atomic(path, "".join(json.dumps(e.to_dict()) + "\n" for e in examples))
    return path


def read_examples(path: str | Path) -> Iterator[TrainingExample]:
    """Examples from a JSONL file; a bad line is reported by file and line number."""
    for where, record in iter_jsonl(path, "training examples"):
        try:
            yield TrainingExample.from_dict(record)
        except GeovecInputError as exc:
            raise GeovecInputError(f"{where}: {exc.field}", exc.problem) from None
