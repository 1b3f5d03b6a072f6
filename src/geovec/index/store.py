"""An on-disk vector store: embeddings plus metadata, exact and approximate (HNSW) inner-product search.

Why SQLite + FAISS: SQLite (stdlib, WAL mode) is the source of truth because it gives atomic transactions, crash
safety and SQL filters (plain indexed lat/lon columns: a range scan on the ``(lat, lon)`` index is all a box
prefilter needs, so no R*Tree module is required); FAISS gives HNSW approximate search with proven recall/latency.
Both are small, well kept, pip-installable and need no server. Exact search is numpy matmul + argpartition: on two
cores it is over twice as fast as ``faiss.IndexFlatIP`` for single queries over 1M x 384 (memory bound, ~55 ms).

An index is a folder:

* ``index.sqlite``: ``meta`` (dim, model, uuid, generation), ``items`` (record fields and the float32 vector as a
  BLOB, written in the same transaction) and ``deleted`` (tombstones: rowid and the generation that removed it).
* ``vectors.npz``: a derived cache of the live vectors and their rowids at some generation, for fast reopening.
* ``ann.faiss``: a derived HNSW graph (``IndexIDMap`` over ``IndexHNSWFlat``, labels are rowids).

Rowids are never reused (AUTOINCREMENT) and a row's vector never changes (an upsert deletes and re-inserts), so a
cache or graph made at an earlier generation stays right for the rowids it holds: it is brought up to date by
applying newer tombstones and appending rows with larger rowids (the ANN searches those exactly, as a "delta").
Derived files are replaced atomically (temporary file + ``os.replace``); a missing or unreadable one is rebuilt
from SQLite. Every committed write bumps the generation, which readers check before each search.

Concurrency: one writer at a time (a write takes SQLite's write lock up front and a second writer waits up to
``BUSY_TIMEOUT_S``); other processes may open and search meanwhile and see each commit on their next search.
One ``VectorIndex`` object may be shared by threads (calls are serialised by a lock).
"""

from __future__ import annotations

import functools
import json
import math
import sqlite3
import threading
import uuid
import zipfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import faiss
import numpy as np

from geovec.errors import GeovecIndexError, GeovecInputError
from geovec.fileio import atomic_write
from geovec.index.filters import GeoFilter
from geovec.index.records import RECORD_COLUMNS, Hit, Record, record_from_row, record_row
from geovec.index.vectors import LiveVectors, bfloat16_top_k, check_vectors, mask_of, top_k

FORMAT_VERSION = 1
DB_NAME, CACHE_NAME, ANN_NAME = "index.sqlite", "vectors.npz", "ann.faiss"
BUSY_TIMEOUT_S = 30.0
EXACT_FILTER_MAX, EXACT_FILTER_FRACTION = 20_000, 0.05  # filters passing fewer items than this search them exactly
_SCORE_BLOCK = 1 << 26  # floats per (queries x rows) score block: bounds memory of batched exact search
_FETCH_ROWS = 65_536
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE items (rowid INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, source TEXT, bbox TEXT,
                    lat REAL, lon REAL, footprint TEXT, captions TEXT NOT NULL, extra TEXT NOT NULL,
                    vector BLOB NOT NULL);
CREATE INDEX items_lat_lon ON items (lat, lon);
CREATE TABLE deleted (rowid INTEGER PRIMARY KEY, generation INTEGER NOT NULL);
CREATE INDEX deleted_generation ON deleted (generation);
"""


def _locked(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return call


Ranking = list[tuple[np.ndarray, np.ndarray]]  # per query: positions in LiveVectors and their scores, best first


def _check_search_options(k: object, filter: object) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise GeovecInputError("k", f"must be a positive integer, got {k!r}")
    if filter is not None and not isinstance(filter, GeoFilter):
        raise GeovecInputError("filter", f"expected a GeoFilter, got {type(filter).__name__}")


def _rows_by_k(ks: Sequence[int]) -> list[tuple[int, list[int]]]:
    """Row numbers grouped by their k, so each group's top-k is selected at once."""
    groups: dict[int, list[int]] = {}
    for row, k in enumerate(ks):
        groups.setdefault(int(k), []).append(row)
    return list(groups.items())


class VectorIndex:
    """Embeddings + records in a folder; see the module docstring for the layout and guarantees."""

    def __init__(self, path: Path, db: sqlite3.Connection, dim: int, model: dict, index_uuid: str) -> None:
        self.path, self.dim, self.model = path, dim, model
        self._db: sqlite3.Connection | None = db
        self._uuid = index_uuid
        self._lock = threading.RLock()
        self._state: LiveVectors | None = None  # loaded on first search
        self._cached_generation = -1
        self._ann: faiss.Index | None = None
        self._ann_loaded = False
        self._ann_max_rowid = 0
        self._ann_selector: tuple[int, np.ndarray | None, int] | None = None  # generation, bitmap, allowed count

    @classmethod
    def create(cls, path: str | Path, dim: int, *, model: dict | None = None, exist_ok: bool = False) -> VectorIndex:
        """Make a new empty index folder (an existing empty folder is fine); ``model`` records the embedder."""
        path = Path(path)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise GeovecInputError("dim", f"must be a positive integer, got {dim!r}")
        if (path / DB_NAME).exists():
            if not exist_ok:
                raise GeovecIndexError(f"an index already exists at {path}; open it, or pass exist_ok=True")
            index = cls.open(path)
            if index.dim != dim:
                index.close()
                raise GeovecIndexError(f"index at {path} holds {index.dim}-d vectors, not {dim}-d")
            return index
        if path.exists() and not path.is_dir():
            raise GeovecIndexError(f"cannot create an index at {path}: it is a file, not a folder")
        try:
            model_json = json.dumps(model or {})
        except TypeError as exc:
            raise GeovecInputError("model", f"not JSON-serialisable ({exc})") from None
        path.mkdir(parents=True, exist_ok=True)
        for stale in (CACHE_NAME, ANN_NAME):  # derived files left by an index that was removed from this folder
            (path / stale).unlink(missing_ok=True)

        def write_db(temp: str) -> None:
            db = sqlite3.connect(temp, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            with db:
                db.executescript(_SCHEMA)
                db.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("format", FORMAT_VERSION), ("dim", dim), ("model", model_json),
                    ("uuid", uuid.uuid4().hex), ("generation", 0)])
            db.close()

        atomic_write(path / DB_NAME, write_db)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> VectorIndex:
        path = Path(path)
        if not (path / DB_NAME).is_file():
            raise GeovecIndexError(f"no geovec index at {path}; build one with `geovec index build`")
        try:
            db = sqlite3.connect(path / DB_NAME, isolation_level=None, timeout=BUSY_TIMEOUT_S,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            meta = dict(db.execute("SELECT key, value FROM meta"))
            dim, model, index_uuid = int(meta["dim"]), json.loads(meta["model"]), meta["uuid"]
        except (sqlite3.DatabaseError, KeyError, ValueError) as exc:
            raise GeovecIndexError(f"{path / DB_NAME} is not a readable geovec index ({exc})") from None
        if int(meta["format"]) > FORMAT_VERSION:
            raise GeovecIndexError(f"index at {path} has format {meta['format']}; this geovec reads up to "
                                   f"{FORMAT_VERSION}: upgrade geovec")
        return cls(path, db, dim, model, index_uuid)

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise GeovecIndexError(f"index {self.path} is closed")
        return self._db

    @_locked
    def __len__(self) -> int:
        return self._conn.execute("SELECT count(*) FROM items").fetchone()[0]

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @_locked
    def close(self) -> None:
        """Refresh the vector cache if this process brought it up to date, then release the database."""
        if self._db is None:
            return
        if self._state is not None and self._state.generation != self._cached_generation:
            try:
                self._save_cache()
            except OSError:
                pass  # a read-only folder: the cache is an optimisation, SQLite holds everything
        self._db.close()
        self._db = None

    @_locked
    def get(self, id: str) -> Record | None:
        row = self._conn.execute(f"SELECT {RECORD_COLUMNS} FROM items WHERE id = ?", (id,)).fetchone()
        return None if row is None else record_from_row(row)

    @_locked
    def contains(self, id: str) -> bool:
        return self._conn.execute("SELECT 1 FROM items WHERE id = ?", (id,)).fetchone() is not None

    @_locked
    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ``ids`` not in the index, in order: one query per 500 ids instead of one ``contains`` per id."""
        present: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            present.update(row[0] for row in self._conn.execute(f"SELECT id FROM items WHERE id IN ({marks})", chunk))
        return [id for id in ids if id not in present]

    @_locked
    def ids(self) -> list[str]:
        return [row[0] for row in self._conn.execute("SELECT id FROM items ORDER BY rowid")]

    @_locked
    def record_fields(self, *extra_keys: str) -> list[tuple]:
        """``(id, source, extra[key1], ...)`` for every item whose extra has ``extra_keys[0]``, in one query."""
        columns = ", ".join("json_extract(extra, ?)" for _ in extra_keys)
        paths = [f"$.{key}" for key in extra_keys]
        return [tuple(row) for row in self._conn.execute(
            f"SELECT id, source, {columns} FROM items WHERE json_extract(extra, ?) IS NOT NULL", [*paths, paths[0]])]

    @_locked
    def bounds(self) -> tuple[float, float, float, float] | None:
        """(minlon, minlat, maxlon, maxlat) over item footprints (or lat/lon where none); None if nothing is located."""
        corners = ", ".join(f"{fn}(coalesce(json_extract(footprint, '$[{i}]'), {col}))" for fn, i, col in
                            (("min", 0, "lon"), ("min", 1, "lat"), ("max", 2, "lon"), ("max", 3, "lat")))
        row = self._conn.execute(f"SELECT {corners} FROM items").fetchone()
        return None if row[0] is None else tuple(float(v) for v in row)  # type: ignore[return-value]

    @property
    @_locked
    def has_ann(self) -> bool:
        return self._load_ann() is not None

    # --- writing -------------------------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[int]:
        """One write transaction; yields the generation it commits. Holds SQLite's write lock from the start."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise GeovecIndexError(f"cannot write to index {self.path}: {exc} (is another writer running?)") from None
        try:
            if self._state is not None:
                self._sync()
            generation = self._generation() + 1
            yield generation
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (generation,))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    @_locked
    def add(self, records: Sequence[Record], vectors: np.ndarray, *, upsert: bool = False) -> None:
        """Add records with their L2-normalised vectors in one transaction: all are stored or none."""
        records = list(records)
        rows = [record_row(record, f"records[{i}]") for i, record in enumerate(records)]
        matrix = check_vectors(vectors, len(records), self.dim)
        repeated = [id for id, count in Counter(row[0] for row in rows).items() if count > 1]
        if repeated:
            raise GeovecIndexError(f"duplicate id {repeated[0]!r} in the batch ({len(repeated)} ids repeated)")
        if not rows:
            return
        with self._write() as generation:
            existing = self._rowids_of([row[0] for row in rows])
            if existing and not upsert:
                raise GeovecIndexError(f"id {next(iter(existing))!r} is already in index {self.path} "
                                       f"({len(existing)} of {len(rows)} ids are); pass upsert=True to replace")
            self._tombstone(list(existing.values()), generation)
            first = (self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'items'").fetchone() or [0])[0] + 1
            rowids = np.arange(first, first + len(rows), dtype=np.int64)
            self._conn.executemany(f"INSERT INTO items (rowid, {RECORD_COLUMNS}, vector) VALUES "
                                   f"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   ((int(r), *row, v.tobytes()) for r, row, v in zip(rowids, rows, matrix)))
        if self._state is not None:
            self._state.kill(existing.values())
            self._state.append(rowids, matrix)
            self._state.generation = generation

    @_locked
    def delete(self, ids: Iterable[str]) -> int:
        """Remove items by id (unknown ids are ignored); returns how many were removed."""
        ids = list(dict.fromkeys(ids))
        with self._write() as generation:
            rowids = list(self._rowids_of(ids).values())
            self._tombstone(rowids, generation)
        if self._state is not None:
            self._state.kill(rowids)
            self._state.generation = generation
        return len(rowids)

    def _rowids_of(self, ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found.update(self._conn.execute(f"SELECT id, rowid FROM items WHERE id IN ({','.join('?' * len(chunk))})",
                                            chunk))
        return found

    def _tombstone(self, rowids: list[int], generation: int) -> None:
        self._conn.executemany("INSERT INTO deleted VALUES (?, ?)", ((r, generation) for r in rowids))
        self._conn.executemany("DELETE FROM items WHERE rowid = ?", ((r,) for r in rowids))

    # --- the in-memory matrix and its derived files ----------------------------------------------------------------

    def _generation(self) -> int:
        return int(self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """A read transaction: everything read inside sees one committed state."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    def _sync(self) -> LiveVectors:
        """Bring the in-memory vectors up to the database's generation (call inside a transaction)."""
        generation = self._generation()
        if self._state is None:
            self._state = self._load_cache(generation)
        state = self._state
        if state.generation != generation:
            state.kill(r for (r,) in self._conn.execute("SELECT rowid FROM deleted WHERE generation > ?",
                                                         (state.generation,)))
            cursor = self._conn.execute("SELECT rowid, vector FROM items WHERE rowid > ? ORDER BY rowid",
                                        (state.max_rowid,))
            while rows := cursor.fetchmany(_FETCH_ROWS):
                state.append(np.array([r for r, _ in rows], np.int64),
                             np.frombuffer(b"".join(v for _, v in rows), np.float32).reshape(len(rows), self.dim))
            state.generation = generation
        return state

    def _load_cache(self, generation: int) -> LiveVectors:
        try:
            with np.load(self.path / CACHE_NAME, allow_pickle=False) as cache:
                cached, vectors = int(cache["generation"]), cache["vectors"]
                if str(cache["uuid"]) == self._uuid and cached <= generation and vectors.shape[1:] == (self.dim,):
                    self._cached_generation = cached
                    return LiveVectors(self.dim, cache["rowids"], vectors, cached)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # missing or damaged: rebuild from SQLite
        return LiveVectors(self.dim)

    def _save_cache(self) -> None:
        state = self._state
        keep = slice(None) if state.dead == 0 else state.live

        def write(temp: str) -> None:
            with open(temp, "wb") as out:
                np.savez(out, uuid=self._uuid, generation=state.generation,
                         rowids=state.rowids[keep], vectors=state.matrix[keep])

        atomic_write(self.path / CACHE_NAME, write)
        self._cached_generation = state.generation

    def _load_ann(self) -> faiss.Index | None:
        if not self._ann_loaded and (self.path / ANN_NAME).is_file():
            try:
                ann = faiss.read_index(str(self.path / ANN_NAME))
            except RuntimeError:
                ann = None  # unreadable: searches stay exact until build_ann runs again
            if (isinstance(ann, faiss.IndexIDMap) and ann.d == self.dim and ann.ntotal
                    and ann.metric_type == faiss.METRIC_INNER_PRODUCT):
                self._ann, self._ann_max_rowid = ann, int(faiss.vector_to_array(ann.id_map).max())
        self._ann_loaded = True
        return self._ann

    @_locked
    def build_ann(self, *, M: int = 32, ef_construction: int = 80, ef_search: int = 64) -> None:
        """Build the HNSW graph over the live vectors and save it; later additions are searched as a delta.

        Graphs suit embedding-like (clustered) data; on uniform random vectors recall stays low until ``ef_search``
        costs more than an exact scan (see ``benchmarks/bench_index.py``).
        """
        for name, value in (("M", M), ("ef_construction", ef_construction), ("ef_search", ef_search)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "M" else 1):
                raise GeovecInputError(name, f"must be an integer >= {2 if name == 'M' else 1}, got {value!r}")
        with self._snapshot():
            state = self._sync()
        if state.size == state.dead:
            raise GeovecIndexError(f"index {self.path} is empty: add items before building an ANN index")
        graph = faiss.IndexHNSWFlat(self.dim, M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction, graph.hnsw.efSearch = ef_construction, ef_search
        ann = faiss.IndexIDMap(graph)
        ann.add_with_ids(state.matrix[state.live], state.rowids[state.live])
        atomic_write(self.path / ANN_NAME, lambda temp: faiss.write_index(ann, temp))
        self._ann, self._ann_loaded, self._ann_selector = ann, True, None
        self._ann_max_rowid = int(state.rowids[state.live][-1])
        if state.generation != self._cached_generation:
            self._save_cache()

    # --- searching -----------------------------------------------------------------------------------------------

    @_locked
    def search(self, query: np.ndarray, k: int = 10, *, filter: GeoFilter | None = None, exact: bool | None = None,
               ef_search: int | None = None) -> list[Hit] | list[list[Hit]]:
        """Top-k items by inner product for a (dim,) query (a list of hits) or a (q, dim) batch (a list per row).

        ``exact``: None uses the ANN graph when one is built unless the filter keeps few items; True always
        searches exactly; False always uses the graph (an error if none is built). ``ef_search`` overrides the
        graph's default search breadth for this call.
        """
        queries, single = self._check_queries(query)
        _check_search_options(k, filter)
        with self._snapshot():
            hits = self._search_rows(queries, [k] * len(queries), filter, exact, ef_search)
        return hits[0] if single else hits

    @_locked
    def search_many(self, queries: np.ndarray, ks: Sequence[int], filters: Sequence[GeoFilter | None],
                    exact: Sequence[bool | None] | None = None) -> list[list[Hit]]:
        """One search per row of a (q, dim) matrix, each with its own k, filter and ``exact`` mode, in one snapshot.

        Why: a server answering concurrent users ranks all rows that share a filter (usually none) with one
        matrix-matrix product, which on a CPU costs little more than one matrix-vector product. Each row gets the
        hits ``search`` gives it alone.
        """
        matrix, _ = self._check_queries(queries)
        modes = [None] * len(matrix) if exact is None else list(exact)
        if not len(ks) == len(filters) == len(modes) == len(matrix):
            raise GeovecInputError("ks", f"give one k, filter and exact mode per query row ({len(matrix)} rows; "
                                         f"got {len(ks)}, {len(filters)} and {len(modes)})")
        for k, geo in zip(ks, filters):
            _check_search_options(k, geo)
        groups: dict[tuple[GeoFilter | None, bool | None], list[int]] = {}
        for row, key in enumerate(zip(filters, modes)):
            groups.setdefault(key, []).append(row)
        hits: list[list[Hit]] = [[] for _ in matrix]
        with self._snapshot():
            for (geo, mode), rows in groups.items():
                found = self._search_rows(matrix[rows], [ks[row] for row in rows], geo, mode, None)
                for row, row_hits in zip(rows, found):
                    hits[row] = row_hits
        return hits

    def _search_rows(self, queries: np.ndarray, ks: Sequence[int], filter: GeoFilter | None, exact: bool | None,
                     ef_search: int | None) -> list[list[Hit]]:
        """Hits of every row under one filter and mode (call inside a snapshot)."""
        ann = None if exact is True else self._load_ann()
        if exact is False and ann is None:
            raise GeovecIndexError(f"index {self.path} has no ANN index: call build_ann() first, or search exactly")
        state = self._sync()
        allowed = None if filter is None else self._filter_positions(filter)
        live_count = state.size - state.dead
        if exact is None and allowed is not None and len(allowed) < max(EXACT_FILTER_MAX,
                                                                         EXACT_FILTER_FRACTION * live_count):
            ann = None
        if ann is None:
            return self._hits(self._exact(queries, ks, allowed))
        ranking: Ranking = [(np.empty(0, np.int64), np.empty(0, np.float32))] * len(queries)
        for k, rows in _rows_by_k(ks):
            for row, ranked in zip(rows, self._approximate(ann, queries[rows], k, allowed, ef_search)):
                ranking[row] = ranked
        return self._hits(ranking)

    def _check_queries(self, query) -> tuple[np.ndarray, bool]:
        array = np.asarray(query, dtype=np.float32)
        if array.ndim not in (1, 2) or array.shape[-1] != self.dim:
            raise GeovecInputError("query", f"expected a {self.dim}-d vector or a (q, {self.dim}) matrix, "
                                            f"got shape {array.shape}")
        if not np.isfinite(array).all():
            raise GeovecInputError("query", "contains NaN or infinite values")
        return np.ascontiguousarray(array.reshape(-1, self.dim)), array.ndim == 1

    def _filter_positions(self, geo: GeoFilter) -> np.ndarray:
        """Sorted positions of the live items the filter keeps: SQL bounding-box prefilter, then the exact test."""
        clause, params = geo.sql()
        rows = np.array(self._conn.execute(f"SELECT rowid, lat, lon FROM items WHERE {clause}", params).fetchall(),
                        dtype=np.float64).reshape(-1, 3)
        rowids = rows[geo.mask(rows[:, 1], rows[:, 2]), 0].astype(np.int64)
        return np.sort(self._state.positions(rowids))

    def _exact(self, queries: np.ndarray, k: int | Sequence[int], allowed: np.ndarray | None) -> Ranking:
        """Brute force over the live rows, or over ``allowed`` positions only; ``k`` is one or one per row."""
        state = self._state
        ks = [k] * len(queries) if isinstance(k, int) else list(k)
        gather = allowed is not None and len(allowed) * 4 < state.size
        matrix = state.matrix[allowed] if gather else state.matrix
        excluded = None
        if not gather:
            keep = state.live if allowed is None else mask_of(allowed, state.size)
            excluded = None if keep.all() else ~keep
        ranking: Ranking = []
        shadow = None if gather else state.bfloat16_matrix()
        block = max(1, _SCORE_BLOCK // max(1, len(matrix)))
        for start in range(0, len(queries), block):
            if shadow is not None:
                ranking += bfloat16_top_k(queries[start:start + block], matrix, shadow, ks[start:start + block],
                                          excluded)
                continue
            scores = queries[start:start + block] @ matrix.T
            if excluded is not None:
                scores[:, excluded] = -np.inf
            ranked: Ranking = [None] * len(scores)  # type: ignore[list-item]
            for block_k, rows in _rows_by_k(ks[start:start + block]):
                columns, values = top_k(scores if len(rows) == len(scores) else scores[rows], block_k)
                for row, cols, vals in zip(rows, columns, values):
                    found = vals > -np.inf
                    ranked[row] = (allowed[cols[found]] if gather else cols[found], vals[found])
            ranking += ranked
        return ranking

    def _selector(self, ann: faiss.Index, allowed: np.ndarray | None) -> tuple[np.ndarray | None, int]:
        """A bitmap over the rowids the graph may return (None: all it holds) and how many graph items it allows.

        Every live row up to the graph's largest rowid is in the graph (rowids only grow and never come back),
        so the graph holds only allowed rows exactly when the counts agree.
        """
        state = self._state
        if allowed is None and self._ann_selector and self._ann_selector[0] == state.generation:
            return self._ann_selector[1:]
        covered = np.searchsorted(state.rowids, self._ann_max_rowid, side="right")
        keep = state.live[:covered] if allowed is None else mask_of(allowed[allowed < covered], covered)
        count, bitmap = int(keep.sum()), None
        if count < ann.ntotal:
            bits = np.zeros(self._ann_max_rowid + 1, bool)
            bits[state.rowids[:covered][keep]] = True
            bitmap = np.packbits(bits, bitorder="little")
        if allowed is None:
            self._ann_selector = (state.generation, bitmap, count)
        return bitmap, count

    def _approximate(self, ann: faiss.Index, queries: np.ndarray, k: int, allowed: np.ndarray | None,
                     ef_search: int | None) -> Ranking:
        """HNSW over the rows the graph holds, exact over newer rows; falls back to exact if the graph comes up short."""
        state = self._state
        bitmap, graph_allowed = self._selector(ann, allowed)
        if not graph_allowed:
            return self._exact(queries, k, allowed)
        # A selector that keeps a fraction f of the graph leaves about f * efSearch usable candidates: widen by 1/f.
        breadth = (ef_search or faiss.downcast_index(ann.index).hnsw.efSearch) * ann.ntotal / graph_allowed
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(k, min(math.ceil(breadth), ann.ntotal))
        if bitmap is not None:
            params.sel = faiss.IDSelectorBitmap(len(bitmap) * 8, faiss.swig_ptr(bitmap))
        _, labels = ann.search(queries, k, params=params)
        if (np.count_nonzero(labels >= 0, axis=1) < min(k, graph_allowed)).any():
            return self._exact(queries, k, allowed)
        covered = np.searchsorted(state.rowids, self._ann_max_rowid, side="right")
        delta = covered + np.flatnonzero(state.live[covered:]) if allowed is None else allowed[allowed >= covered]
        newer = self._exact(queries, k, delta) if len(delta) else [(delta, np.empty(0, np.float32))] * len(queries)
        ranking: Ranking = []
        for query, found, (delta_positions, delta_scores) in zip(queries, labels, newer):
            positions = state.positions(found[found >= 0])
            positions = np.concatenate([positions, delta_positions])
            scores = np.concatenate([state.matrix[positions[: len(positions) - len(delta_positions)]] @ query,
                                     delta_scores])
            order = np.argsort(-scores, kind="stable")[:k]
            ranking.append((positions[order], scores[order]))
        return ranking

    def _hits(self, ranking: Ranking) -> list[list[Hit]]:
        rowids = [self._state.rowids[positions] for positions, _ in ranking]
        wanted = sorted({int(r) for ids in rowids for r in ids})
        records: dict[int, Record] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            for rowid, *row in self._conn.execute(f"SELECT rowid, {RECORD_COLUMNS} FROM items WHERE rowid IN "
                                                  f"({','.join('?' * len(chunk))})", chunk):
                records[rowid] = record_from_row(row)
        return [[Hit(records[int(r)].id, float(s), records[int(r)]) for r, s in zip(ids, scores)]
                for ids, (_, scores) in zip(rowids, ranking)]
