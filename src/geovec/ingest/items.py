"""Embed items and write them to an index, batch by batch, resumably.

An item is a ``Record`` (what search results show) plus one or more inputs that represent it; an item with
several inputs (an image known by its five captions) is stored as the L2-normalised mean of their embeddings.
Each batch is one index transaction, and items already in the index are skipped, so a crashed or interrupted
run is finished by running it again: nothing committed is lost and nothing is embedded twice.

The JSONL item format, one object per line::

    {"id": "boat_0", "input": <Interleaved JSON or a plain string>,  # or "inputs": [...]
     "source": "...", "bbox": [x1, y1, x2, y2], "lat": .., "lon": .., "footprint": [..4..],
     "captions": [...], "extra": {...}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from geovec.errors import GeovecError, GeovecInputError
from geovec.index import Record, VectorStore
from geovec.index.records import record_row
from geovec.ingest.jsonl import iter_jsonl
from geovec.inputs import Interleaved, as_input
from geovec.models.base import Embedder, l2_normalize
from geovec.progress import progress_bar

RECORD_FIELDS = ("source", "bbox", "lat", "lon", "footprint", "captions", "extra")


@dataclass(frozen=True)
class IndexItem:
    record: Record
    inputs: tuple[Interleaved, ...]

    def __post_init__(self) -> None:
        if not self.inputs:
            raise GeovecInputError(f"item {self.record.id!r}.inputs", "needs at least one input to embed")


@dataclass
class IngestReport:
    added: int = 0
    skipped_existing: int = 0
    failed: list[str] = field(default_factory=list)


def _parse_item(data: object, where: str) -> IndexItem:
    if not isinstance(data, dict):
        raise GeovecInputError(where, "expected a JSON object")
    if not isinstance(data.get("id"), str) or not data["id"].strip():
        raise GeovecInputError(f"{where}.id", "missing or empty")
    raw_inputs = data["inputs"] if "inputs" in data else [data.get("input")]
    if not isinstance(raw_inputs, list) or any(raw is None for raw in raw_inputs):
        raise GeovecInputError(f"{where}.input", "give 'input' (text or an interleaved object) or 'inputs' (a list)")
    try:
        inputs = tuple(as_input(raw) if isinstance(raw, str) else Interleaved.from_dict(raw) for raw in raw_inputs)
    except GeovecInputError as exc:
        raise GeovecInputError(f"{where}.{exc.field}", exc.problem) from None
    fields = {name: data[name] for name in RECORD_FIELDS if data.get(name) is not None}
    for name in ("bbox", "footprint"):
        if isinstance(fields.get(name), list):
            fields[name] = tuple(fields[name])
    record = Record(id=data["id"], **fields)
    try:
        record_row(record, "record")  # checked here, where the line is known, not later in a batch
    except GeovecInputError as exc:
        field = exc.field.removeprefix("record").lstrip(".")
        raise GeovecInputError(f"{where}: item {data['id']!r}" + (f": {field}" if field else ""), exc.problem) from None
    return IndexItem(record, inputs)


def read_items_jsonl(path: str | Path) -> Iterator[IndexItem]:
    """Items from a JSONL file; a bad line raises an error naming the file and line number."""
    for where, data in iter_jsonl(path, "items"):
        yield _parse_item(data, where)


def _batches(items: Iterable[IndexItem], size: int) -> Iterator[list[IndexItem]]:
    batch: list[IndexItem] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def index_items(items: Sequence[IndexItem], embedder: Embedder, index: VectorStore, batch_size: int = 64,
                show_progress: bool = True) -> IngestReport:
    """Embed and add ``items`` not yet in ``index``; one committed transaction per batch."""
    if index.dim != embedder.dim:
        raise GeovecError(f"index {index.path} holds {index.dim}-d vectors but model {embedder.name!r} makes "
                          f"{embedder.dim}-d ones")
    instruction = (index.model or {}).get("item_instruction")  # how this index's items are embedded
    report = IngestReport()
    seen: set[str] = set()
    for item in items:
        if item.record.id in seen:
            raise GeovecInputError(f"item {item.record.id!r}", "duplicate id in the input")
        seen.add(item.record.id)
    absent = set(index.missing([item.record.id for item in items]))
    todo = [item for item in items if item.record.id in absent]
    report.skipped_existing = len(items) - len(todo)
    with progress_bar(len(todo), f"indexing with {embedder.name}", enabled=show_progress) as bar:
        for batch in _batches(todo, batch_size):
            flat = [inp for item in batch for inp in item.inputs]
            vectors = embedder.encode(flat, batch_size=batch_size, instruction=instruction)
            pooled, start = [], 0
            for item in batch:
                pooled.append(vectors[start:start + len(item.inputs)].mean(axis=0))
                start += len(item.inputs)
            index.add([item.record for item in batch], l2_normalize(np.stack(pooled)))
            report.added += len(batch)
            bar.advance(len(batch))
    return report
