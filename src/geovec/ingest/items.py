"""Embed items and write them to an index, batch by batch, resumably.

An item is a ``Record`` (what search results show) plus one or more inputs that represent it; an item with
several inputs (an image known by its five captions) is stored as the L2-normalised mean of their embeddings.
Each batch is one index transaction, and items already in the index are skipped, so a crashed or interrupted
run is finished by running it again: nothing committed is lost and nothing is embedded twice.

The JSONL item format, one object per line::

    {"id": "boat_0", "input": <Interleaved JSON or a plain string>,  # or "inputs": [...], or "vector": [...]
     "source": "...", "bbox": [x1, y1, x2, y2], "lat": .., "lon": .., "footprint": [..4..],
     "captions": [...], "extra": {...}}

``vector`` is an item's embedding computed elsewhere (``geovec embed`` with the index's model): it is stored as
given (L2-normalised) instead of embedding an input, and must have the index's dimension. Any other key is refused
(a misspelt ``captoins`` would otherwise vanish without a word).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from geovec.errors import GeovecError, GeovecInputError
from geovec.index import Record, VectorStore
from geovec.index.records import record_row
from geovec.ingest.jsonl import iter_jsonl
from geovec.inputs import Interleaved, as_input
from geovec.models.base import Embedder, check_windows, l2_normalize
from geovec.progress import progress_bar

RECORD_FIELDS = ("source", "bbox", "lat", "lon", "footprint", "captions", "extra")
ITEM_KEYS = ("id", "input", "inputs", "vector", *RECORD_FIELDS)


@dataclass(frozen=True)
class IndexItem:
    """A record and what represents it: inputs to embed, or its ``vector`` already embedded. ``origin`` says where
    it came from ("items.jsonl:3"), so an error found later (a text too long for the model) can point at it."""

    record: Record
    inputs: tuple[Interleaved, ...] = ()
    vector: np.ndarray | None = None
    origin: str = ""

    def __post_init__(self) -> None:
        if not self.inputs and self.vector is None:
            raise GeovecInputError(f"item {self.record.id!r}.inputs", "needs at least one input to embed")

    @property
    def where(self) -> str:
        """The item in messages: its origin (if known) and id."""
        return f"{self.origin}: item {self.record.id!r}" if self.origin else f"item {self.record.id!r}"


@dataclass
class IngestReport:
    added: int = 0
    skipped_existing: int = 0
    failed: list[str] = field(default_factory=list)
    truncated: int = 0  # input texts cut at the model's window (only with truncate=True)


def _check_keys(data: dict, where: str) -> None:
    unknown = [key for key in data if key not in ITEM_KEYS]
    if unknown:
        near = difflib.get_close_matches(str(unknown[0]), ITEM_KEYS, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        key = str(unknown[0]).encode("utf-8", "backslashreplace").decode("utf-8")  # printable, even a surrogate
        raise GeovecInputError(f"{where}: {key}", f"unknown key; {hint}an item has only "
                                                         f"{', '.join(ITEM_KEYS)}")


def _parse_vector(raw: object, where: str) -> np.ndarray:
    if not isinstance(raw, list) or not raw or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in raw):
        raise GeovecInputError(f"{where}: vector", "must be a non-empty list of numbers (the item's embedding)")
    vector = np.asarray(raw, dtype=np.float32)  # float32 as stored: a number beyond its range is refused too
    if not np.isfinite(vector).all() or not vector.any():
        raise GeovecInputError(f"{where}: vector", "must be finite float32 numbers, not all zero")
    return vector


def _parse_inputs(data: dict, where: str) -> tuple[Interleaved, ...]:
    if "vector" in data:
        if "input" in data or "inputs" in data:
            raise GeovecInputError(f"{where}: vector", "give 'vector' (an embedding) or 'input'/'inputs' (to embed), "
                                                       "not both")
        return ()
    raw_inputs = data["inputs"] if "inputs" in data else [data.get("input")]
    if not isinstance(raw_inputs, list) or not raw_inputs or any(raw is None for raw in raw_inputs):
        raise GeovecInputError(f"{where}.input", "give 'input' (text or an interleaved object), 'inputs' (a list) or "
                                                 "'vector' (an embedding)")
    try:
        return tuple(as_input(raw) if isinstance(raw, str) else Interleaved.from_dict(raw) for raw in raw_inputs)
    except GeovecInputError as exc:
        raise GeovecInputError(f"{where}.{exc.field}", exc.problem) from None


def _parse_item(data: object, where: str) -> IndexItem:
    if not isinstance(data, dict):
        raise GeovecInputError(where, "expected a JSON object")
    if not isinstance(data.get("id"), str) or not data["id"].strip():
        raise GeovecInputError(f"{where}.id", "missing or empty")
    _check_keys(data, f"{where}: item {data['id']!r}")
    inputs = _parse_inputs(data, where)
    vector = _parse_vector(data["vector"], f"{where}: item {data['id']!r}") if "vector" in data else None
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
    return IndexItem(record, inputs, vector, where)


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


def _check_unique(items: Sequence[IndexItem]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.record.id in seen:
            raise GeovecInputError(item.where, "duplicate id in the input")
        seen.add(item.record.id)


def _check_items(items: Sequence[IndexItem], embedder: Embedder, index: VectorStore, instruction: str | None,
                 truncate: bool) -> int:
    """Everything about the items that can be refused is refused before the first batch is written (so a bad
    item never leaves half a run behind); returns how many input texts will be cut (``truncate``)."""
    for item in items:
        if item.vector is not None and len(item.vector) != index.dim:
            raise GeovecInputError(f"{item.where}: vector", f"has {len(item.vector)} numbers; index {index.path} "
                                                            f"holds {index.dim}-d vectors (model {embedder.name!r})")
    texts = ((f"{item.where}: input" + (f"s[{n}]" if len(item.inputs) > 1 else ""), as_input(inp, instruction))
             for item in items for n, inp in enumerate(item.inputs))
    return check_windows(embedder, texts, truncate)


def _embedded(batch: list[IndexItem], embedder: Embedder, batch_size: int, instruction: str | None,
              truncate: bool) -> np.ndarray:
    """One vector per item: its given vector, or the mean of its inputs' embeddings; L2-normalised."""
    flat = [inp for item in batch for inp in item.inputs]
    cut = {"truncate": True} if truncate else {}  # checked already; an Embedder need not know the option otherwise
    vectors = embedder.encode(flat, batch_size=batch_size, instruction=instruction, **cut) if flat else None
    pooled, start = [], 0
    for item in batch:
        if item.vector is not None:
            pooled.append(item.vector)
            continue
        pooled.append(vectors[start:start + len(item.inputs)].mean(axis=0))  # type: ignore[index]
        start += len(item.inputs)
    return l2_normalize(np.stack(pooled))


def index_items(items: Sequence[IndexItem], embedder: Embedder, index: VectorStore, batch_size: int = 64,
                show_progress: bool = True, truncate: bool = False) -> IngestReport:
    """Embed and add ``items`` not yet in ``index``; one committed transaction per batch. An input text longer
    than the model's window is refused unless ``truncate`` (then it is cut, and counted in the report)."""
    if index.dim != embedder.dim:
        raise GeovecError(f"index {index.path} holds {index.dim}-d vectors but model {embedder.name!r} makes "
                          f"{embedder.dim}-d ones")
    instruction = (index.model or {}).get("item_instruction")  # how this index's items are embedded
    report = IngestReport()
    _check_unique(items)
    absent = set(index.missing([item.record.id for item in items]))
    todo = [item for item in items if item.record.id in absent]
    report.truncated = _check_items(todo, embedder, index, instruction, truncate)
    report.skipped_existing = len(items) - len(todo)
    with progress_bar(len(todo), f"indexing with {embedder.name}", enabled=show_progress) as bar:
        for batch in _batches(todo, batch_size):
            index.add([item.record for item in batch], _embedded(batch, embedder, batch_size, instruction, truncate))
            report.added += len(batch)
            bar.advance(len(batch))
    return report
