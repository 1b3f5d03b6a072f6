"""What every vector store offers (``VectorStore``), what it can do beyond that (``Capabilities``), and the checks
and plumbing both backends share (``StoreBase``), written once so the folder index and the Chroma index cannot drift.

A backend subclasses ``StoreBase`` and supplies its record conversion, one write, the id lookups and the search of a
group of query rows under one filter and mode; ``StoreBase`` validates the arguments, batches id lookups, groups
``search_many`` rows and gives the same errors on both.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Protocol, Sequence, TypeVar, runtime_checkable

import numpy as np

from geovec.errors import GeovecIndexError, GeovecInputError
from geovec.index.filters import GeoFilter
from geovec.index.records import Hit, Record
from geovec.index.vectors import check_vectors

Store = TypeVar("Store", bound="StoreBase")
Item = TypeVar("Item")


@dataclass(frozen=True)
class Capabilities:
    """What a backend does beyond the common API, so callers ask instead of guessing from types or attributes."""

    build_ann: bool  # ``build_ann()`` builds a graph here; False: the server keeps its own (always on)
    ef_search_per_search: bool  # ``search(ef_search=...)`` changes the breadth per call; False: fixed at create
    folder: bool  # the index is a local folder (``store.folder``) that can hold thumbnails and reports


@runtime_checkable
class VectorStore(Protocol):
    """A vector index with records and geographic filters: a folder (``VectorIndex``) or a Chroma collection
    (``ChromaIndex``). Open one with ``geovec.index.open_index`` / ``create_index``."""

    dim: int
    model: dict
    capabilities: Capabilities

    @property
    def path(self) -> Path | str: ...  # where the index is, for messages: a folder Path or a chroma:// URL

    @property
    def folder(self) -> Path | None: ...  # the index folder, None for a server index

    @property
    def has_ann(self) -> bool: ...

    def __len__(self) -> int: ...
    def __enter__(self) -> VectorStore: ...
    def __exit__(self, *exc_info: object) -> None: ...
    def close(self) -> None: ...
    def info(self) -> dict[str, Any]: ...
    def exact_kernel(self, remeasure: bool = False) -> dict[str, Any] | None: ...
    def get(self, id: str) -> Record | None: ...
    def contains(self, id: str) -> bool: ...
    def missing(self, ids: Sequence[str]) -> list[str]: ...
    def ids(self) -> list[str]: ...
    def bounds(self) -> tuple[float, float, float, float] | None: ...
    def add(self, records: Sequence[Record], vectors: np.ndarray, *, upsert: bool = False) -> None: ...
    def upsert(self, records: Sequence[Record], vectors: np.ndarray) -> None: ...
    def delete(self, ids: Iterable[str]) -> int: ...
    def build_ann(self, *, M: int = 32, ef_construction: int = 80, ef_search: int = 64) -> None: ...

    def search(self, query: np.ndarray, k: int = 10, *, filter: GeoFilter | None = None, exact: bool | None = None,
               ef_search: int | None = None) -> list[Hit] | list[list[Hit]]: ...

    def search_many(self, queries: np.ndarray, ks: Sequence[int], filters: Sequence[GeoFilter | None],
                    exact: Sequence[bool | None] | None = None, *, ef_search: int | None = None
                    ) -> list[list[Hit]]: ...


# --- checks shared by both backends -------------------------------------------------------------------------------

def positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise GeovecInputError(name, f"must be {wanted}, got {value!r}")
    return value


def model_json(model: dict | None) -> str:
    """The model record as stored with the index; refused early if it cannot be."""
    try:
        return json.dumps(model or {})
    except TypeError as exc:
        raise GeovecInputError("model", f"not JSON-serialisable ({exc})") from None


def check_format(found: object, readable: int, location: object) -> None:
    if int(found) > readable:  # type: ignore[call-overload]
        raise GeovecIndexError(f"index at {location} has format {found}; this geovec reads up to {readable}: "
                               "upgrade geovec")


class IndexExistsError(GeovecIndexError):
    """``create`` found an index already there (made before, or by another process meanwhile)."""


def open_existing(open_store: Callable[[], Store], location: object, dim: int, exist_ok: bool) -> Store:
    """``create`` found an index already there: open it if ``exist_ok`` and it holds ``dim``-d vectors."""
    if not exist_ok:
        raise IndexExistsError(f"an index already exists at {location}; open it, or pass exist_ok=True")
    store = open_store()
    if store.dim != dim:
        store.close()
        raise GeovecIndexError(f"index at {location} holds {store.dim}-d vectors, not {dim}-d")
    return store


def already_indexed(existing: Sequence[str], total: int, location: object) -> GeovecIndexError:
    return GeovecIndexError(f"id {existing[0]!r} is already in index {location} ({len(existing)} of {total} ids "
                            "are); pass upsert=True to replace")


def chunks(items: Sequence[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


class StoreBase:
    """The common API on top of a backend's hooks (the ``_``-methods below that raise ``NotImplementedError``)."""

    capabilities: ClassVar[Capabilities]
    dim: int
    model: dict
    path: Path | str
    id_batch: int = 500  # ids per lookup request

    # --- hooks ----------------------------------------------------------------------------------------------------

    def _reading(self) -> AbstractContextManager:
        """Around every read: one consistent view of the index, and the backend's errors made geovec's."""
        raise NotImplementedError

    def _row(self, record: Record, where: str) -> Any:
        """A validated record in the backend's storage form (errors name ``where``)."""
        raise NotImplementedError

    def _add(self, ids: list[str], rows: list, matrix: np.ndarray, upsert: bool) -> None:
        """Store a checked, non-empty batch with unique ids; refuse ids already present unless ``upsert``."""
        raise NotImplementedError

    def _present(self, ids: list[str]) -> Iterable[str]:
        """Which of at most ``id_batch`` ids are in the index (inside ``_reading``)."""
        raise NotImplementedError

    def _search_rows(self, queries: np.ndarray, ks: Sequence[int], filter: GeoFilter | None, exact: bool | None,
                     ef_search: int | None) -> list[list[Hit]]:
        """Hits of every query row under one filter and mode (inside ``_reading``)."""
        raise NotImplementedError

    # --- the common API -------------------------------------------------------------------------------------------

    @property
    def folder(self) -> Path | None:
        return self.path if self.capabilities.folder else None  # type: ignore[return-value]

    def __enter__(self: Store) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """What ``geovec index info`` shows."""
        return {"path": str(self.path), "items": len(self), "dim": self.dim, "model": self.model}  # type: ignore[arg-type]

    def exact_kernel(self, remeasure: bool = False) -> dict[str, Any] | None:
        """The kernel exact search runs here and the timings it was chosen by; None where a server searches."""
        return None

    def add(self, records: Sequence[Record], vectors: np.ndarray, *, upsert: bool = False) -> None:
        """Add records with their L2-normalised vectors (``upsert``: replace items whose ids are present)."""
        records = list(records)
        rows = [self._row(record, f"records[{i}]") for i, record in enumerate(records)]
        matrix = check_vectors(vectors, len(records), self.dim)
        ids = [record.id for record in records]
        repeated = [id for id, count in Counter(ids).items() if count > 1]
        if repeated:
            raise GeovecIndexError(f"duplicate id {repeated[0]!r} in the batch ({len(repeated)} ids repeated)")
        if ids:
            self._add(ids, rows, matrix, upsert)

    def upsert(self, records: Sequence[Record], vectors: np.ndarray) -> None:
        """Add records, replacing the items whose ids are already present."""
        self.add(records, vectors, upsert=True)

    def _existing(self, ids: Sequence[str]) -> list[str]:
        """The ``ids`` that are in the index, in order: one lookup per ``id_batch`` ids, not one per id."""
        found: set[str] = set()
        with self._reading():
            for chunk in chunks(ids, self.id_batch):
                found.update(self._present(chunk))
        return [id for id in ids if id in found]

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ``ids`` not in the index, in order: one lookup per ``id_batch`` ids, not one ``contains`` per id."""
        present = set(self._existing(ids))
        return [id for id in ids if id not in present]

    def search(self, query: np.ndarray, k: int = 10, *, filter: GeoFilter | None = None, exact: bool | None = None,
               ef_search: int | None = None) -> list[Hit] | list[list[Hit]]:
        """Top-k items by inner product for a (dim,) query (a list of hits) or a (q, dim) batch (a list per row).

        ``exact``: None uses the ANN graph when there is one (the folder index searches a filter that keeps few
        items exactly); True always searches exactly; False always uses the graph (an error if none is built).
        ``ef_search`` widens or narrows the graph search for this call where ``capabilities.ef_search_per_search``.
        """
        queries, single = self._check_queries(query)
        self._check_options(k, filter, ef_search)
        with self._reading():
            hits = self._search_rows(queries, [k] * len(queries), filter, exact, ef_search)
        return hits[0] if single else hits

    def search_many(self, queries: np.ndarray, ks: Sequence[int], filters: Sequence[GeoFilter | None],
                    exact: Sequence[bool | None] | None = None, *, ef_search: int | None = None
                    ) -> list[list[Hit]]:
        """One search per row of a (q, dim) matrix, each with its own k, filter and ``exact`` mode, in one read.

        Why: a server answering concurrent users ranks all rows that share a filter (usually none) at once, which
        costs little more than one query. Each row gets the hits ``search`` gives it alone.
        """
        matrix, _ = self._check_queries(queries)
        modes = [None] * len(matrix) if exact is None else list(exact)
        if not len(ks) == len(filters) == len(modes) == len(matrix):
            raise GeovecInputError("ks", f"give one k, filter and exact mode per query row ({len(matrix)} rows; "
                                         f"got {len(ks)}, {len(filters)} and {len(modes)})")
        for k, geo in zip(ks, filters):
            self._check_options(k, geo, ef_search)
        groups: dict[tuple[GeoFilter | None, bool | None], list[int]] = {}
        for row, key in enumerate(zip(filters, modes)):
            groups.setdefault(key, []).append(row)
        hits: list[list[Hit]] = [[] for _ in matrix]
        with self._reading():
            for (geo, mode), rows in groups.items():
                found = self._search_rows(matrix[rows], [ks[row] for row in rows], geo, mode, ef_search)
                for row, row_hits in zip(rows, found):
                    hits[row] = row_hits
        return hits

    def _check_queries(self, query: object) -> tuple[np.ndarray, bool]:
        array = np.asarray(query, dtype=np.float32)
        if array.ndim not in (1, 2) or array.shape[-1] != self.dim:
            raise GeovecInputError("query", f"expected a {self.dim}-d vector or a (q, {self.dim}) matrix, "
                                            f"got shape {array.shape}")
        if not np.isfinite(array).all():
            raise GeovecInputError("query", "contains NaN or infinite values")
        return np.ascontiguousarray(array.reshape(-1, self.dim)), array.ndim == 1

    def _check_options(self, k: object, filter: object, ef_search: object) -> None:
        positive_int("k", k)
        if filter is not None and not isinstance(filter, GeoFilter):
            raise GeovecInputError("filter", f"expected a GeoFilter, got {type(filter).__name__}")
        if ef_search is not None:
            positive_int("ef_search", ef_search)
            if not self.capabilities.ef_search_per_search:
                raise GeovecInputError("ef_search", f"index {self.path} fixes its search breadth when it is created "
                                                    "(ef_search at create); it cannot change per search")
