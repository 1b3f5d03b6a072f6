"""The folder index's source of truth: ``index.sqlite`` (WAL mode) with its meta, records, vectors and tombstones.

Tables: ``meta`` (format, dim, model, uuid, generation), ``items`` (record fields and the float32 vector as a BLOB,
written in the same transaction) and ``deleted`` (tombstones: rowid and the generation that removed it). Rowids are
never reused (AUTOINCREMENT) and a row's vector never changes (an upsert deletes and re-inserts); every committed
write bumps the generation. See ``geovec.index.store`` for how the derived files follow it.
"""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from geovec.errors import GeovecError, GeovecIndexError
from geovec.fileio import create_exclusive, disk_full
from geovec.index.base import chunks
from geovec.index.filters import GeoFilter
from geovec.index.records import RECORD_COLUMNS, Record, record_from_row

BUSY_TIMEOUT_S = 30.0
_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL (the constant is in the module from Python 3.11 only)
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


def database_error(exc: sqlite3.Error, where: Path, action: str) -> GeovecError:
    """A SQLite error met while writing, as a user can act on it: a full disk says so and that nothing is lost."""
    if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in str(exc):
        return disk_full(where)
    return GeovecIndexError(f"cannot {action} index {where}: {exc}")


def read_error(exc: sqlite3.DatabaseError, location: Path) -> GeovecIndexError:
    """A SQLite error met while reading: a damaged file, or one locked past the timeout."""
    return GeovecIndexError(f"cannot read index {location}: {exc} (a damaged index.sqlite cannot be repaired "
                            "here: rebuild the index from its items)")


def _in(count: int) -> str:
    return f"({','.join('?' * count)})"


class RecordStore:
    """One SQLite connection to an index's database; ``location`` (the folder) names the index in messages."""

    def __init__(self, location: Path, db: sqlite3.Connection) -> None:
        self.location = location
        self._db: sqlite3.Connection | None = db

    @staticmethod
    def create(file: Path, format_version: int, dim: int, model_json: str) -> None:
        """Write a new empty database atomically (a crash leaves none, never half of one) and exclusively:
        FileExistsError if another process made ``file`` first, whose database is then left as it is."""
        def write_db(temp: str) -> None:
            db = sqlite3.connect(temp, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                with db:
                    db.executescript(_SCHEMA)
                    db.executemany("INSERT INTO meta VALUES (?, ?)", [
                        ("format", format_version), ("dim", dim), ("model", model_json),
                        ("uuid", uuid.uuid4().hex), ("generation", 0)])
            except sqlite3.Error as exc:
                raise database_error(exc, file, "create") from None
            finally:
                db.close()

        create_exclusive(file, write_db)

    @classmethod
    def open(cls, location: Path, file: Path) -> tuple[RecordStore, dict[str, str]]:
        """The store and its meta table; a file that is not a geovec index is refused with a clear error."""
        db = None
        try:
            db = sqlite3.connect(file, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            meta = dict(db.execute("SELECT key, value FROM meta"))
        except sqlite3.Error as exc:  # not a database, another database, or a file SQLite cannot open
            if db is not None:
                db.close()
            raise GeovecIndexError(f"{file} is not a readable geovec index ({exc}): give the folder of an index "
                                   "built by `geovec index build`, or a new folder") from None
        return cls(location, db), meta

    @property
    def conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise GeovecIndexError(f"index {self.location} is closed")
        return self._db

    @property
    def closed(self) -> bool:
        return self._db is None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- transactions -------------------------------------------------------------------------------------------

    def generation(self) -> int:
        return int(self.conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: everything read inside sees one committed state."""
        try:
            self.conn.execute("BEGIN")
            try:
                yield
            finally:
                self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise read_error(exc, self.location) from None

    @contextmanager
    def write(self) -> Iterator[int]:
        """One write transaction; yields the generation it commits. Holds SQLite's write lock from the start."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise GeovecIndexError(f"cannot write to index {self.location}: {exc} (is another writer running?)") \
                from None
        try:
            generation = self.generation() + 1
            yield generation
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (generation,))
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:  # SQLite itself rolls back on some errors (a full disk)
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise database_error(exc, self.location, "write to") from None
            raise

    # --- writing (inside ``write``) -----------------------------------------------------------------------------

    def insert(self, rows: Sequence[tuple], matrix: np.ndarray) -> np.ndarray:
        """Insert validated rows (``record_row``) with their vectors; returns their new rowids."""
        last = (self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'items'").fetchone() or [0])[0]
        rowids = np.arange(last + 1, last + 1 + len(rows), dtype=np.int64)
        self.conn.executemany(f"INSERT INTO items (rowid, {RECORD_COLUMNS}, vector) VALUES "
                              f"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                              ((int(r), *row, v.tobytes()) for r, row, v in zip(rowids, rows, matrix)))
        return rowids

    def tombstone(self, rowids: list[int], generation: int) -> None:
        self.conn.executemany("INSERT INTO deleted VALUES (?, ?)", ((r, generation) for r in rowids))
        self.conn.executemany("DELETE FROM items WHERE rowid = ?", ((r,) for r in rowids))

    # --- reading ------------------------------------------------------------------------------------------------

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM items").fetchone()[0]

    def get(self, id: str) -> Record | None:
        row = self.conn.execute(f"SELECT {RECORD_COLUMNS} FROM items WHERE id = ?", (id,)).fetchone()
        return None if row is None else record_from_row(row)

    def contains(self, id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM items WHERE id = ?", (id,)).fetchone() is not None

    def present(self, ids: list[str]) -> list[str]:
        """Which of ``ids`` (at most SQLite's parameter limit) are stored."""
        return [row[0] for row in self.conn.execute(f"SELECT id FROM items WHERE id IN {_in(len(ids))}", ids)]

    def rowids_of(self, ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in chunks(ids, 500):
            found.update(self.conn.execute(f"SELECT id, rowid FROM items WHERE id IN {_in(len(chunk))}", chunk))
        return found

    def ids(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT id FROM items ORDER BY rowid")]

    def vectors_of(self, ids: list[str], dim: int) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for chunk in chunks(ids, 500):
            found.update((id, np.frombuffer(blob, np.float32, dim)) for id, blob in self.conn.execute(
                f"SELECT id, vector FROM items WHERE id IN {_in(len(chunk))}", chunk))
        return found

    def record_fields(self, *extra_keys: str) -> list[tuple]:
        """``(id, source, extra[key1], ...)`` for every item whose extra has ``extra_keys[0]``, in one query."""
        columns = ", ".join("json_extract(extra, ?)" for _ in extra_keys)
        paths = [f"$.{key}" for key in extra_keys]
        return [tuple(row) for row in self.conn.execute(
            f"SELECT id, source, {columns} FROM items WHERE json_extract(extra, ?) IS NOT NULL", [*paths, paths[0]])]

    def bounds(self) -> tuple[float, float, float, float] | None:
        """(minlon, minlat, maxlon, maxlat) over item footprints (or lat/lon where none); None if nothing is located."""
        corners = ", ".join(f"{fn}(coalesce(json_extract(footprint, '$[{i}]'), {col}))" for fn, i, col in
                            (("min", 0, "lon"), ("min", 1, "lat"), ("max", 2, "lon"), ("max", 3, "lat")))
        row = self.conn.execute(f"SELECT {corners} FROM items").fetchone()
        return None if row[0] is None else tuple(float(v) for v in row)  # type: ignore[return-value]

    def records(self, rowids: Iterable[int]) -> dict[int, Record]:
        """The records of ``rowids``, by rowid."""
        found: dict[int, Record] = {}
        for chunk in chunks(sorted(rowids), 500):
            for rowid, *row in self.conn.execute(f"SELECT rowid, {RECORD_COLUMNS} FROM items WHERE rowid IN "
                                                 f"{_in(len(chunk))}", chunk):
                found[rowid] = record_from_row(row)
        return found

    def rowids_within(self, geo: GeoFilter) -> np.ndarray:
        """Rowids of the items the filter keeps: SQL bounding-box prefilter on ``(lat, lon)``, then the exact test."""
        clause, params = geo.sql()
        rows = np.array(self.conn.execute(f"SELECT rowid, lat, lon FROM items WHERE {clause}", params).fetchall(),
                        dtype=np.float64).reshape(-1, 3)
        return rows[geo.mask(rows[:, 1], rows[:, 2]), 0].astype(np.int64)

    def deleted_since(self, generation: int) -> Iterator[int]:
        return (rowid for (rowid,) in self.conn.execute("SELECT rowid FROM deleted WHERE generation > ?",
                                                        (generation,)))

    def scan(self, dim: int, batch: int, vectors: bool) -> Iterator[tuple[list[Record], np.ndarray | None]]:
        """Every record (with its vector when ``vectors``) in rowid order, ``batch`` at a time."""
        columns = f"{RECORD_COLUMNS}, vector" if vectors else RECORD_COLUMNS
        cursor = self.conn.execute(f"SELECT {columns} FROM items ORDER BY rowid")
        while rows := cursor.fetchmany(batch):
            matrix = (np.frombuffer(b"".join(row[8] for row in rows), np.float32).reshape(len(rows), dim)
                      if vectors else None)
            yield [record_from_row(row) for row in rows], matrix

    def vectors_after(self, rowid: int, dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rowids, vectors) of the items with larger rowids, in rowid order, a block at a time."""
        cursor = self.conn.execute("SELECT rowid, vector FROM items WHERE rowid > ? ORDER BY rowid", (rowid,))
        while rows := cursor.fetchmany(_FETCH_ROWS):
            yield (np.array([r for r, _ in rows], np.int64),
                   np.frombuffer(b"".join(v for _, v in rows), np.float32).reshape(len(rows), dim))
