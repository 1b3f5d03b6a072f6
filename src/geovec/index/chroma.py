"""A vector index on a Chroma server: the ``VectorStore`` API for many users sharing one store over HTTP.

Why Chroma: a folder index (``geovec.index.store``) serves one machine; a team needs a server that many processes
read and write at once. pgvector would need PostgreSQL (not installable here); Chroma is pip-installable, runs as
one process (``chroma run --path DIR --port N``), keeps HNSW graphs and a metadata store with ``where`` filters,
and persists to a folder. geovec never lets Chroma embed anything (no embedding function: vectors always come from
a geovec model), so nothing is downloaded.

An index is one collection, addressed as ``chroma://HOST:PORT/COLLECTION``:

* HNSW in the ``ip`` space on L2-normalised vectors; Chroma's distance is ``1 - dot``, so ``score = 1 - distance``
  is the same inner product ``VectorIndex`` returns.
* collection metadata holds geovec's ``dim``, ``model`` (JSON) and format version; ``open`` refuses anything else.
* each item's record is its metadata (Chroma takes scalars only): ``source``, ``lat``/``lon``, ``bbox`` and
  ``footprint`` as four numbers each, ``captions``/``extra`` as JSON strings.
* a ``GeoFilter`` becomes a ``where`` that every kept item satisfies, and the exact test (``GeoFilter.mask``) runs
  on what comes back; when too few pass, the search asks again with a larger ``n_results`` until ``k`` hits pass or
  the candidates run out. Each located item stores its grid cell at several sizes (``geocell0`` = 20 degrees ...
  ``geocell4`` = 0.05 degrees), and the ``where`` is "cell in [the cells covering the filter's smallest
  rectangle]" at the finest size needing at most ``MAX_CELLS`` cells: an indexed string match, about 10x faster
  on Chroma than ranges on lat and lon (measured: 27 vs 267 ms at 100k items). Collections made before cells
  existed keep the range ``where``.

Writes go in batches of the server's maximum batch size, each an upsert; a batch is atomic, a whole ``add`` is not
(a crash leaves a prefix, and re-running ``geovec index build`` finishes it). Searches are HNSW unless
``exact=True``, which fetches the (filtered) vectors and ranks them with numpy; the graph's ``ef_search`` is set when
the collection is created (``capabilities.ef_search_per_search`` is False) and ``build_ann`` has nothing to build.
One ``ChromaIndex`` may be shared by threads (the HTTP client is thread-safe); other processes see each write on
their next call.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import urlsplit

import numpy as np

from geovec.errors import GeovecError, GeovecIndexError, GeovecInputError
from geovec.index.base import (Capabilities, StoreBase, already_indexed, check_format, model_json, open_existing,
                               positive_int)
from geovec.index.filters import Box, GeoFilter
from geovec.index.records import Hit, Record, record_row
from geovec.index.vectors import rows_by_k, top_k

SCHEME = "chroma://"
FORMAT_VERSION = 1
DEFAULT_PORT = 8000
_META_DIM, _META_MODEL, _META_FORMAT = "geovec:dim", "geovec:model", "geovec:format"
_META_CELLS = "geovec:geocells"  # set on collections whose items carry their grid cells
CELL_SIZES = (20.0, 5.0, 1.0, 0.2, 0.05)  # degrees; item metadata "geocell{i}" is its cell at CELL_SIZES[i]
MAX_CELLS = 100  # cells one ``$in`` may list; a larger area is filtered on what comes back only
_BOX_KEYS = {"bbox": ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"),
             "footprint": ("footprint_minlon", "footprint_minlat", "footprint_maxlon", "footprint_maxlat")}
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")  # Chroma's naming rule
_OVERFETCH = 4  # a filter: ask for 4k first (a circle fills pi/4 of its box), then 4x more each round


def is_chroma_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(SCHEME)


@dataclass(frozen=True)
class ChromaLocation:
    host: str
    port: int
    collection: str

    @classmethod
    def parse(cls, url: str) -> ChromaLocation:
        usage = f"expected {SCHEME}HOST:PORT/COLLECTION, got {url!r}"
        try:
            parts = urlsplit(url)
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise GeovecInputError("index", usage) from None
        collection = parts.path.strip("/")
        if parts.scheme != SCHEME[:-3] or not parts.hostname or parts.query or parts.fragment:
            raise GeovecInputError("index", usage)
        if not _COLLECTION_NAME.match(collection):
            raise GeovecInputError("index", f"collection name {collection!r} in {url!r} must be 3-512 characters "
                                            "from A-Z a-z 0-9 . _ - and start and end with a letter or digit")
        return cls(parts.hostname, port, collection)

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.host}:{self.port}/{self.collection}"


def _chromadb():
    try:
        import chromadb
    except ImportError:
        raise GeovecIndexError("chroma:// indexes need the chromadb client: pip install 'geovec[server]'") from None
    return chromadb


def _remote(method):
    """Run the method inside ``ChromaIndex._reading``: refused once closed, server errors named by the index URL."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with self._reading():
            return method(self, *args, **kwargs)
    return call


def _server_error(location: ChromaLocation, exc: Exception) -> GeovecIndexError:
    errors = _chromadb().errors
    if isinstance(exc, errors.NotFoundError):
        return GeovecIndexError(f"no geovec index at {location.url}: the Chroma server has no collection "
                                f"{location.collection!r}; build one with `geovec index build`")
    if isinstance(exc, errors.ChromaError):
        return GeovecIndexError(f"Chroma server at {location.url} refused the request: {exc}")
    return GeovecIndexError(f"cannot reach the Chroma server for {location.url} ({type(exc).__name__}: {exc}); "
                            f"is `chroma run --host {location.host} --port {location.port}` running?")


def _connect(location: ChromaLocation):
    chromadb = _chromadb()
    from chromadb.config import Settings

    try:
        return chromadb.HttpClient(host=location.host, port=location.port,
                                   settings=Settings(anonymized_telemetry=False))
    except Exception as exc:  # the client checks the server on construction (ValueError when unreachable)
        raise _server_error(location, exc) from exc


@contextmanager
def local_server(path: str | Path, *, host: str = "127.0.0.1", port: int | None = None,
                 timeout_s: float = 30.0) -> Iterator[str]:
    """Run ``chroma run`` (data in ``path``) as a child process for the block; yields ``HOST:PORT`` once it answers.

    For tests, benchmarks and one-machine setups; a shared deployment runs the server as a service instead.
    """
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if chroma is None:
        raise GeovecIndexError("the `chroma` server command is not installed: pip install 'geovec[server]'")
    if port is None:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "server.log", "ab") as log:
        process = subprocess.Popen([chroma, "run", "--path", str(path), "--host", host, "--port", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"http://{host}:{port}/api/v2/heartbeat", timeout=1).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise GeovecIndexError(f"the Chroma server on {host}:{port} did not start; see "
                                           f"{path / 'server.log'}") from None
                time.sleep(0.1)
        yield f"{host}:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _exists(client, name: str) -> bool:
    try:
        client.get_collection(name, embedding_function=None)
    except _chromadb().errors.NotFoundError:
        return False
    return True


def _where_box(box: Box) -> list[dict]:
    minlon, minlat, maxlon, maxlat = box
    lon = ({"$and": [{"lon": {"$gte": minlon}}, {"lon": {"$lte": maxlon}}]} if minlon <= maxlon
           else {"$or": [{"lon": {"$gte": minlon}}, {"lon": {"$lte": maxlon}}]})
    return [{"lat": {"$gte": minlat}}, {"lat": {"$lte": maxlat}}, lon]


def _cell(lat: float, lon: float, size: float) -> str:
    return f"{math.floor(lat / size)}:{math.floor(lon / size)}"


def _box_cells(box: Box, size: float) -> list[str] | None:
    """The cells of ``size`` degrees covering ``box`` (antimeridian boxes wrap), or ``None`` if over ``MAX_CELLS``."""
    minlon, minlat, maxlon, maxlat = box
    rows = range(math.floor(minlat / size), math.floor(maxlat / size) + 1)
    spans = [(minlon, maxlon)] if minlon <= maxlon else [(minlon, 180.0), (-180.0, maxlon)]
    cols = [c for low, high in spans for c in range(math.floor(low / size), math.floor(high / size) + 1)]
    if len(rows) * len(cols) > MAX_CELLS:
        return None
    return [f"{row}:{col}" for row in rows for col in cols]


def geo_where(geo: GeoFilter | None, cells: bool = True) -> dict | None:
    """A Chroma ``where`` that every item the filter keeps satisfies: its grid cells when the collection stores
    them (``None`` for an area too large to list), else ranges on lat/lon over all its prefilter rectangles."""
    if geo is None:
        return None
    if not cells:
        return {"$and": [clause for box in geo.prefilter_boxes() for clause in _where_box(box)]}
    best: tuple[float, str, list[str]] | None = None
    for box in geo.prefilter_boxes():  # an item lies in every rectangle: the smallest cover of one is enough
        for level in reversed(range(len(CELL_SIZES))):  # finest first
            covering = _box_cells(box, CELL_SIZES[level])
            if covering is not None:
                area = len(covering) * CELL_SIZES[level] ** 2
                if best is None or area < best[0]:
                    best = (area, f"geocell{level}", covering)
                break
    return None if best is None else {best[1]: {"$in": best[2]}}


def _metadata(record: Record, where: str) -> dict[str, Any]:
    """A validated record as flat Chroma metadata (absent fields are left out: Chroma stores no nulls)."""
    _, source, bbox, lat, lon, footprint, captions, extra = record_row(record, where)
    meta = {"source": source, "lat": lat, "lon": lon, "captions": captions, "extra": extra}
    if lat is not None and lon is not None:
        meta.update((f"geocell{level}", _cell(lat, lon, size)) for level, size in enumerate(CELL_SIZES))
    for name, text in (("bbox", bbox), ("footprint", footprint)):
        if text is not None:
            meta.update(zip(_BOX_KEYS[name], json.loads(text)))
    return {key: value for key, value in meta.items() if value is not None}


def _record(id: str, meta: dict[str, Any]) -> Record:
    boxes = {name: tuple(float(meta[key]) for key in keys) if keys[0] in meta else None
             for name, keys in _BOX_KEYS.items()}
    return Record(id=id, source=meta.get("source"), lat=meta.get("lat"), lon=meta.get("lon"),
                  captions=json.loads(meta.get("captions", "[]")), extra=json.loads(meta.get("extra", "{}")), **boxes)


def _coordinates(metas: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """lat, lon arrays with NaN where an item has no location (``GeoFilter.mask`` never keeps those)."""
    lats, lons = (np.array([m.get(key, np.nan) for m in metas], dtype=np.float64) for key in ("lat", "lon"))
    return lats, lons


class ChromaIndex(StoreBase):
    """A geovec index in a collection on a Chroma server; the ``VectorStore`` API (see the module doc)."""

    capabilities = Capabilities(build_ann=False, ef_search_per_search=False, folder=False)

    def __init__(self, location: ChromaLocation, client, collection, dim: int, model: dict,
                 geocells: bool = False) -> None:
        self._location, self._client, self._collection = location, client, collection
        self.geocells = geocells  # whether its items carry grid cells to filter on (collections made since)
        self.path = self.url = location.url  # no local folder: ``path`` names the index in messages
        self.dim, self.model = dim, model
        self.batch_size = self.id_batch = max(1, int(client.get_max_batch_size()))  # items per request it takes

    @classmethod
    def create(cls, url: str, dim: int, *, model: dict | None = None, exist_ok: bool = False, ef_search: int = 100,
               ef_construction: int = 100, max_neighbors: int = 16) -> ChromaIndex:
        """Make the collection (HNSW, inner product); an existing geovec collection needs ``exist_ok`` and ``dim``."""
        location = ChromaLocation.parse(url)
        positive_int("dim", dim)
        stored_model = model_json(model)
        client = _connect(location)
        collection = None
        try:
            if not _exists(client, location.collection):
                try:
                    collection = client.create_collection(
                        location.collection, embedding_function=None,
                        metadata={_META_DIM: dim, _META_MODEL: stored_model, _META_FORMAT: FORMAT_VERSION,
                                  _META_CELLS: True},
                        configuration={"hnsw": {"space": "ip", "ef_search": ef_search,
                                                "ef_construction": ef_construction, "max_neighbors": max_neighbors}})
                except Exception:
                    if not _exists(client, location.collection):  # else another user created it just now
                        raise
        except Exception as exc:
            raise _server_error(location, exc) from exc
        if collection is not None:
            return cls(location, client, collection, dim, model or {}, geocells=True)
        return open_existing(lambda: cls.open(url), location.url, dim, exist_ok)

    @classmethod
    def open(cls, url: str) -> ChromaIndex:
        location = ChromaLocation.parse(url)
        client = _connect(location)
        try:
            collection = client.get_collection(location.collection, embedding_function=None)
        except Exception as exc:
            raise _server_error(location, exc) from exc
        meta = collection.metadata or {}
        if _META_DIM not in meta:
            raise GeovecIndexError(f"collection {location.collection!r} at {location.url} was not made by geovec "
                                   "(no geovec:dim in its metadata)")
        check_format(meta.get(_META_FORMAT, 1), FORMAT_VERSION, location.url)
        space = ((collection.configuration_json or {}).get("hnsw") or {}).get("space", "ip")
        if space != "ip":
            raise GeovecIndexError(f"collection at {location.url} uses the {space!r} space; geovec needs 'ip'")
        return cls(location, client, collection, int(meta[_META_DIM]), json.loads(meta.get(_META_MODEL, "{}")),
                   geocells=bool(meta.get(_META_CELLS, False)))

    @contextmanager
    def _reading(self) -> Iterator[None]:
        if self._collection is None:
            raise GeovecIndexError(f"index {self.path} is closed")
        try:
            yield
        except GeovecError:
            raise
        except Exception as exc:
            raise _server_error(self._location, exc) from exc

    def close(self) -> None:
        """Forget the connection (the server keeps everything; nothing is buffered here)."""
        self._collection = self._client = None

    @_remote
    def __len__(self) -> int:
        return self._collection.count()

    @_remote
    def get(self, id: str) -> Record | None:
        found = self._collection.get(ids=[id], include=["metadatas"])
        return _record(id, found["metadatas"][0]) if found["ids"] else None

    @_remote
    def contains(self, id: str) -> bool:
        return bool(self._collection.get(ids=[id], include=[])["ids"])

    def _present(self, ids: list[str]) -> list[str]:
        return self._collection.get(ids=ids, include=[])["ids"]

    @property
    def has_ann(self) -> bool:
        return True  # the server's HNSW graph

    def build_ann(self, *, M: int = 32, ef_construction: int = 80, ef_search: int = 64) -> None:
        raise GeovecIndexError(f"index {self.path}: the Chroma server keeps its own HNSW graph; set its ef_search, "
                               "ef_construction and max_neighbors when creating the collection")

    @_remote
    def ids(self) -> list[str]:
        return [id for page in self._scan(include=[]) for id in page["ids"]]

    @_remote
    def bounds(self) -> tuple[float, float, float, float] | None:
        """(minlon, minlat, maxlon, maxlat) over item footprints (or lat/lon where none); None if nothing is located."""
        corners = []
        for page in self._scan(include=["metadatas"]):
            for meta in page["metadatas"]:
                point = (meta.get("lon"), meta.get("lat")) * 2
                corners.append([meta.get(key, value) for key, value in zip(_BOX_KEYS["footprint"], point)])
        located = np.array([c for c in corners if None not in c], dtype=np.float64).reshape(-1, 4)
        if not len(located):
            return None
        low, high = located.min(axis=0), located.max(axis=0)
        return float(low[0]), float(low[1]), float(high[2]), float(high[3])

    def _scan(self, include: list[str], where: dict | None = None) -> Iterator[dict]:
        """Pages of ``collection.get`` over everything (matching ``where``), one server batch at a time."""
        offset = 0
        while True:
            page = self._collection.get(where=where, include=include, limit=self.batch_size, offset=offset)
            if page["ids"]:
                yield page
            if len(page["ids"]) < self.batch_size:
                return
            offset += self.batch_size

    # --- writing -------------------------------------------------------------------------------------------------

    def _row(self, record: Record, where: str) -> dict[str, Any]:
        return _metadata(record, where)

    @_remote
    def _add(self, ids: list[str], metadatas: list, matrix: np.ndarray, upsert: bool) -> None:
        """One server batch (atomic) at a time."""
        if not upsert and (existing := self._existing(ids)):
            raise already_indexed(existing, len(ids), self.path)
        for start in range(0, len(ids), self.batch_size):
            stop = start + self.batch_size
            self._collection.upsert(ids=ids[start:stop], embeddings=matrix[start:stop],
                                    metadatas=metadatas[start:stop])

    @_remote
    def delete(self, ids: Iterable[str]) -> int:
        """Remove items by id (unknown ids are ignored); returns how many were removed."""
        found = self._existing(list(dict.fromkeys(ids)))
        for start in range(0, len(found), self.batch_size):
            self._collection.delete(ids=found[start:start + self.batch_size])
        return len(found)

    # --- searching -----------------------------------------------------------------------------------------------

    def _search_rows(self, queries: np.ndarray, ks: Sequence[int], filter: GeoFilter | None, exact: bool | None,
                     ef_search: int | None) -> list[list[Hit]]:
        """``exact=True`` ranks every (filtered) vector with numpy after fetching them, which costs a full transfer;
        otherwise the server's HNSW graph answers (its ``ef_search`` is set at ``create``)."""
        hits: list[list[Hit]] = [[] for _ in queries]
        for k, rows in rows_by_k(ks):
            found = self._exact(queries[rows], k, filter) if exact else self._approximate(queries[rows], k, filter)
            for row, row_hits in zip(rows, found):
                hits[row] = row_hits
        return hits

    def _approximate(self, queries: np.ndarray, k: int, geo: GeoFilter | None) -> list[list[Hit]]:
        total = self._collection.count()
        fetch = min(k if geo is None else _OVERFETCH * k, total)  # a filter's prefilter is a superset
        hits: list[list[Hit]] = [[] for _ in queries]
        pending = list(range(len(queries))) if fetch else []
        while pending:
            found = self._collection.query(query_embeddings=queries[pending], n_results=fetch,
                                           where=geo_where(geo, self.geocells),
                                           include=["metadatas", "distances"])
            short = []
            for row, ids, distances, metas in zip(pending, found["ids"], found["distances"], found["metadatas"]):
                keep = np.ones(len(ids), bool) if geo is None else geo.mask(*_coordinates(metas))
                hits[row] = [Hit(id, 1.0 - float(d), _record(id, m))
                             for id, d, m, kept in zip(ids, distances, metas, keep) if kept][:k]
                if len(hits[row]) < k and len(ids) == fetch < total:  # more candidates may pass: ask for more
                    short.append(row)
            pending, fetch = short, min(fetch * _OVERFETCH, total)
        return hits

    def _exact(self, queries: np.ndarray, k: int, geo: GeoFilter | None) -> list[list[Hit]]:
        ids, metas, vectors = [], [], []
        for page in self._scan(["metadatas", "embeddings"], where=geo_where(geo, self.geocells)):
            ids += page["ids"]
            metas += page["metadatas"]
            vectors.append(np.asarray(page["embeddings"], dtype=np.float32))
        if geo is not None and ids:
            keep = np.flatnonzero(geo.mask(*_coordinates(metas)))
            ids, metas, vectors = [ids[i] for i in keep], [metas[i] for i in keep], [np.concatenate(vectors)[keep]]
        if not ids:
            return [[] for _ in queries]
        columns, scores = top_k(queries @ np.concatenate(vectors).T, k)
        return [[Hit(ids[c], float(s), _record(ids[c], metas[c])) for c, s in zip(cols, vals)]
                for cols, vals in zip(columns, scores)]
