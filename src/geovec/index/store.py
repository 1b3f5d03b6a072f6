"""An on-disk vector store: embeddings plus metadata, exact and approximate (HNSW) inner-product search.

Why SQLite + FAISS: SQLite (stdlib, WAL mode) is the source of truth because it gives atomic transactions, crash
safety and SQL filters (plain indexed lat/lon columns: a range scan on the ``(lat, lon)`` index is all a box
prefilter needs, so no R*Tree module is required); FAISS gives HNSW approximate search with proven recall/latency.
Both are small, well kept, pip-installable and need no server.

An index is a folder, and ``VectorIndex`` composes one part per file:

* ``index.sqlite``: records, vectors and tombstones (``geovec.index.record_store``), the source of truth.
* ``vectors.npz``: a derived cache of the live vectors (``geovec.index.vector_cache``), searched exactly in memory.
* ``ann.faiss``: a derived HNSW graph (``geovec.index.ann``).

Rowids are never reused and a row's vector never changes, so a cache or graph made at an earlier generation stays
right for the rowids it holds and is brought up to date from SQLite. Derived files are replaced atomically
(temporary file + ``os.replace``); a missing or unreadable one is rebuilt from SQLite. Every committed write bumps
the generation, which readers check before each search.

Concurrency: one writer at a time (a write takes SQLite's write lock up front and a second writer waits up to
``BUSY_TIMEOUT_S``); other processes may open and search meanwhile and see each commit on their next search.
One ``VectorIndex`` object may be shared by threads (calls are serialised by a lock).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from geovec.errors import GeovecError, GeovecIndexError
from geovec.fileio import temp_prefix, write_error
from geovec.index.ann import AnnGraph
from geovec.index.base import (Capabilities, StoreBase, already_indexed, check_format, model_json, open_existing,
                               positive_int)
from geovec.index.filters import GeoFilter
from geovec.index.record_store import BUSY_TIMEOUT_S, RecordStore, read_error
from geovec.index.records import Hit, Record, record_row
from geovec.index.vector_cache import VectorCache
from geovec.index.vectors import LiveVectors, Ranking, exact_ranking, rows_by_k

__all__ = ["ANN_NAME", "BUSY_TIMEOUT_S", "CACHE_NAME", "DB_NAME", "FORMAT_VERSION", "VectorIndex", "other_files"]

FORMAT_VERSION = 1
DB_NAME, CACHE_NAME, ANN_NAME = "index.sqlite", "vectors.npz", "ann.faiss"
EXACT_FILTER_MAX, EXACT_FILTER_FRACTION = 20_000, 0.05  # filters passing fewer items than this search them exactly


def other_files(folder: Path) -> list[str]:
    """The names in a folder that no index wrote (its files, half-written or not), sorted: a folder of other
    things is not made an index by mistake."""
    own = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", CACHE_NAME, ANN_NAME)
    prefixes = tuple(temp_prefix(name) for name in own)
    try:
        names = [entry.name for entry in folder.iterdir()]
    except OSError as exc:  # a folder this user may not list
        raise GeovecIndexError(f"cannot read folder {folder}: {exc.strerror or exc}") from None
    return sorted(name for name in names if name not in own and not name.startswith(prefixes))


def _locked(method):
    """Serialise the calls of threads sharing one index, and report a damaged database as a GeovecIndexError."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with self._lock:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                raise read_error(exc, self.path) from None
    return call


class VectorIndex(StoreBase):
    """Embeddings + records in a folder; see the module docstring for the layout and guarantees."""

    capabilities = Capabilities(build_ann=True, ef_search_per_search=True, folder=True)

    def __init__(self, path: Path, records: RecordStore, dim: int, model: dict, index_uuid: str) -> None:
        self.path, self.dim, self.model = path, dim, model
        self._records = records
        self._vectors = VectorCache(path / CACHE_NAME, dim, index_uuid)
        self._ann = AnnGraph(path / ANN_NAME, dim)
        self._lock = threading.RLock()

    @classmethod
    def create(cls, path: str | Path, dim: int, *, model: dict | None = None, exist_ok: bool = False) -> VectorIndex:
        """Make a new empty index folder (an existing empty folder is fine); ``model`` records the embedder."""
        path = Path(path)
        positive_int("dim", dim)
        stored_model = model_json(model)
        if path.exists() and not path.is_dir():
            raise GeovecIndexError(f"cannot create an index at {path}: it is a file, not a folder")
        if not (path / DB_NAME).exists():
            try:
                path.mkdir(parents=True, exist_ok=True)
                RecordStore.create(path / DB_NAME, FORMAT_VERSION, dim, stored_model)
            except FileExistsError:
                pass  # another process created it meanwhile: theirs is kept, and treated as found here
            except OSError as exc:
                raise write_error(path, exc) from None
            else:
                for stale in (CACHE_NAME, ANN_NAME):  # derived files of an index once removed from this folder
                    (path / stale).unlink(missing_ok=True)
                return cls.open(path)
        return open_existing(lambda: cls.open(path), path, dim, exist_ok)

    @classmethod
    def open(cls, path: str | Path) -> VectorIndex:
        path = Path(path)
        if not (path / DB_NAME).is_file():
            raise GeovecIndexError(f"no geovec index at {path}; build one with `geovec index build`")
        records, meta = RecordStore.open(path, path / DB_NAME)
        try:
            dim, model, index_uuid = int(meta["dim"]), json.loads(meta["model"]), meta["uuid"]
            check_format(meta["format"], FORMAT_VERSION, path)
        except (KeyError, ValueError) as exc:
            records.close()
            raise GeovecIndexError(f"{path / DB_NAME} is not a readable geovec index ({exc})") from None
        except GeovecIndexError:
            records.close()
            raise
        return cls(path, records, dim, model, index_uuid)

    @_locked
    def __len__(self) -> int:
        return self._records.count()

    @_locked
    def close(self) -> None:
        """Refresh the vector cache if this process brought it up to date, then release the database."""
        if self._records.closed:
            return
        if self._vectors.unsaved:
            try:
                self._vectors.save()
            except (OSError, GeovecError):
                pass  # a read-only folder or a full disk: the cache is an optimisation, SQLite holds everything
        self._records.close()

    @_locked
    def get(self, id: str) -> Record | None:
        return self._records.get(id)

    @_locked
    def contains(self, id: str) -> bool:
        return self._records.contains(id)

    @_locked
    def ids(self) -> list[str]:
        return self._records.ids()

    @_locked
    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of ``ids`` as a (len(ids), dim) matrix; an unknown id is an error."""
        found = self._records.vectors_of(list(ids), self.dim)
        unknown = [id for id in ids if id not in found]
        if unknown:
            raise GeovecIndexError(f"id {unknown[0]!r} is not in index {self.path} ({len(unknown)} ids are not)")
        return np.stack([found[id] for id in ids]) if ids else np.empty((0, self.dim), np.float32)

    @_locked
    def record_fields(self, *extra_keys: str) -> list[tuple]:
        """``(id, source, extra[key1], ...)`` for every item whose extra has ``extra_keys[0]``, in one query."""
        return self._records.record_fields(*extra_keys)

    @_locked
    def bounds(self) -> tuple[float, float, float, float] | None:
        """(minlon, minlat, maxlon, maxlat) over item footprints (or lat/lon where none); None if nothing is located."""
        return self._records.bounds()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One consistent view of the index for several reads (an export's passes): commits made meanwhile by other
        processes are not seen inside it."""
        with self._reading():
            yield

    def scan(self, batch: int = 4096, vectors: bool = True) -> Iterator[tuple[list[Record], np.ndarray | None]]:
        """Every record and (when ``vectors``) its stored vector, in insertion order, ``batch`` at a time, without
        holding the index in memory; inside ``snapshot()`` several scans see the same items."""
        positive_int("batch", batch)
        with self._lock:
            yield from self._records.scan(self.dim, batch, vectors)

    @property
    @_locked
    def has_ann(self) -> bool:
        return self._ann.load() is not None

    # --- writing -------------------------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[int]:
        """One write transaction (see ``RecordStore.write``) with the in-memory vectors brought up to it first."""
        with self._records.write() as generation:
            if self._vectors.state is not None:
                self._vectors.sync(self._records)
            yield generation

    def _row(self, record: Record, where: str) -> tuple:
        return record_row(record, where)

    @_locked
    def _add(self, ids: list[str], rows: list, matrix: np.ndarray, upsert: bool) -> None:
        """All records are stored in one transaction, or none."""
        with self._write() as generation:
            existing = self._records.rowids_of(ids)
            if existing and not upsert:
                raise already_indexed(list(existing), len(ids), self.path)
            self._records.tombstone(list(existing.values()), generation)
            rowids = self._records.insert(rows, matrix)
        self._vectors.written(list(existing.values()), (rowids, matrix), generation)

    @_locked
    def delete(self, ids: Iterable[str]) -> int:
        """Remove items by id (unknown ids are ignored); returns how many were removed."""
        ids = list(dict.fromkeys(ids))
        with self._write() as generation:
            rowids = list(self._records.rowids_of(ids).values())
            self._records.tombstone(rowids, generation)
        self._vectors.written(rowids, None, generation)
        return len(rowids)

    @_locked
    def build_ann(self, *, M: int = 32, ef_construction: int = 80, ef_search: int = 64) -> None:
        """Build the HNSW graph over the live vectors and save it; later additions are searched as a delta.

        Graphs suit embedding-like (clustered) data; on uniform random vectors recall stays low until ``ef_search``
        costs more than an exact scan (see ``benchmarks/bench_index.py``).
        """
        positive_int("M", M, minimum=2)
        positive_int("ef_construction", ef_construction)
        positive_int("ef_search", ef_search)
        with self._records.snapshot():
            state = self._vectors.sync(self._records)
        if state.size == state.dead:
            raise GeovecIndexError(f"index {self.path} is empty: add items before building an ANN index")
        self._ann.build(state, M, ef_construction, ef_search)
        if self._vectors.unsaved:
            self._vectors.save()

    @_locked
    def exact_kernel(self, remeasure: bool = False) -> dict[str, Any] | None:
        """The kernel exact search runs over these vectors (measured now if this CPU/size has no cached choice, or
        ``remeasure``), with the timings behind the choice and one line saying both."""
        with self._records.snapshot():
            state = self._vectors.sync(self._records)
        choice = state.kernel(remeasure)
        return {**choice.describe(), "summary": choice.summary()}

    # --- searching -----------------------------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with self._lock, self._records.snapshot():
            yield

    def _present(self, ids: list[str]) -> list[str]:
        return self._records.present(ids)

    def _search_rows(self, queries: np.ndarray, ks: Sequence[int], filter: GeoFilter | None, exact: bool | None,
                     ef_search: int | None) -> list[list[Hit]]:
        """Exact in memory, or the graph unless the filter keeps few items (then exact over just those)."""
        use_graph = exact is not True and self._ann.load() is not None
        if exact is False and not use_graph:
            raise GeovecIndexError(f"index {self.path} has no ANN index: call build_ann() first, or search exactly")
        state = self._vectors.sync(self._records)
        allowed = None if filter is None else np.sort(state.positions(self._records.rowids_within(filter)))
        live_count = state.size - state.dead
        if exact is None and allowed is not None and len(allowed) < max(EXACT_FILTER_MAX,
                                                                         EXACT_FILTER_FRACTION * live_count):
            use_graph = False
        if not use_graph:
            return self._hits(state, exact_ranking(state, queries, ks, allowed))
        ranking: Ranking = [(np.empty(0, np.int64), np.empty(0, np.float32))] * len(queries)
        for k, rows in rows_by_k(ks):
            for row, ranked in zip(rows, self._ann.search(state, queries[rows], k, allowed, ef_search)):
                ranking[row] = ranked
        return self._hits(state, ranking)

    def _hits(self, state: LiveVectors, ranking: Ranking) -> list[list[Hit]]:
        rowids = [state.rowids[positions] for positions, _ in ranking]
        records = self._records.records({int(r) for ids in rowids for r in ids})
        return [[Hit(records[int(r)].id, float(s), records[int(r)]) for r, s in zip(ids, scores)]
                for ids, (_, scores) in zip(rowids, ranking)]
