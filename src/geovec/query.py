"""Searching an index: one implementation behind the Python API, the CLI and the web server.

A ``SearchRequest`` is what a user asks (text, an example image, a region of it, a place, an area filter); it is
validated once, here, so every front end reports the same clear errors. ``Searcher`` keeps the index and the
model that built it open, so repeated queries (a web server) pay for loading once.

Many users at once: ``QueryBatcher`` gathers concurrent requests for a few milliseconds, embeds them in one
forward pass and ranks them with one matrix product (``Searcher.search_batch``), because on a CPU one batched
pass costs far less than the same queries one by one. ``QueryEmbeddingCache`` lets a repeated query skip the
encoder altogether.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from geovec.errors import GeovecError, GeovecInputError
from geovec.index import GeoFilter, Hit, open_index
from geovec.inputs import Interleaved
from geovec.models import load_model
from geovec.models.registry import check_index_revision
from geovec.models.base import Embedder, check_text_fits, model_identity
from geovec.search_request import MAX_QUERY_CHARS, MAX_TOP_K, SearchRequest, parse_numbers
from geovec.t2t.search import DescriptionSearch, check_text_query, is_description_index

__all__ = ["MAX_QUERY_CHARS", "MAX_TOP_K", "PreparedQuery", "QueryBatcher", "QueryEmbeddingCache", "SearchRequest",
           "SearchResult", "Searcher", "open_index", "parse_numbers"]  # open_index: from geovec.index, kept here


@dataclass
class SearchResult:
    hits: list[Hit]
    elapsed_ms: float
    request: SearchRequest = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"results": [hit.to_dict() for hit in self.hits], "elapsed_ms": round(self.elapsed_ms, 2)}


@dataclass(frozen=True)
class PreparedQuery:
    """A validated request with the instruction it is embedded with, its input, filter and cache key."""

    request: SearchRequest
    query: Interleaved
    geo: GeoFilter | None
    key: str  # model identity + the exact input: what the query-embedding cache is keyed by


class QueryEmbeddingCache:
    """A bounded LRU of query vectors, so a repeated query skips the encoder; thread-safe, counts hits and misses."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise GeovecInputError("query_cache", f"must be >= 0 entries, got {capacity}")
        self.capacity, self.hits, self.misses = capacity, 0, 0
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            vector = self._vectors.get(key)
            if vector is None:
                self.misses += 1
                return None
            self.hits += 1
            self._vectors.move_to_end(key)
            return vector

    def put(self, key: str, vector: np.ndarray) -> None:
        if not self.capacity:
            return
        with self._lock:
            self._vectors[key] = vector
            self._vectors.move_to_end(key)
            while len(self._vectors) > self.capacity:
                self._vectors.popitem(last=False)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._vectors), "capacity": self.capacity, "hits": self.hits,
                    "misses": self.misses}


class Searcher:
    """An open index (see ``geovec.index.open_index``) plus the embedder it was built with (or ``embedder`` to override).

    A description index (``geovec.t2t.search``) answers with images, each scored by its best description.
    ``query_cache`` entries of query vectors are kept (0: none), keyed by model name and revision + the input.
    ``precision`` is what queries are embedded in (see ``BaseEmbedder.use_precision``; "auto" suits a server).
    """

    def __init__(self, index: str | Path, embedder: Embedder | None = None, model_path: str | Path | None = None,
                 query_cache: int = 0, precision: str = "float32"):
        self.store = open_index(index)
        recorded = self.store.model or {}
        self.embedder = embedder or load_model(recorded.get("name", "minilm"), model_path or recorded.get("path"))
        check_index_revision(recorded, self.embedder, index)
        self.precision = self.embedder.use_precision(precision)
        self.query_instruction: str | None = recorded.get("query_instruction")
        self.item_instruction: str | None = recorded.get("item_instruction")
        self.descriptions = DescriptionSearch(self.store) if is_description_index(recorded) else None
        self.cache = QueryEmbeddingCache(query_cache)
        self._identity = model_identity(self.embedder)
        self._lock = threading.Lock()  # the SQLite connection and torch model are used one batch at a time

    def prepare(self, request: SearchRequest) -> PreparedQuery:
        """Validate a request (errors name the field) and fix the instruction its query is embedded with."""
        request.check()
        if self.descriptions is not None:
            check_text_query(request)
        if request.instruction is None:
            # An example-image query is embedded like the indexed images; a text or place query as a query.
            default = self.item_instruction if request.image is not None else self.query_instruction
            if default:
                request = replace(request, instruction=default)
        query = request.query()
        return PreparedQuery(request, query, request.geo_filter(), f"{self._identity}\x1f{query.cache_key()}")

    def search(self, request: SearchRequest) -> SearchResult:
        (result,) = self.search_batch([self.prepare(request)])
        if isinstance(result, GeovecError):
            raise result
        return result

    def search_batch(self, prepared: Sequence[PreparedQuery]) -> list[SearchResult | GeovecError]:
        """Every query embedded in one forward pass and ranked together; each gets its own result or error."""
        started = time.perf_counter()
        with self._lock:
            vectors = self._embed(prepared)
            found = self._find(prepared, vectors)
        elapsed = (time.perf_counter() - started) * 1000
        return [hits if isinstance(hits, GeovecError) else SearchResult(hits, elapsed, p.request)
                for p, hits in zip(prepared, found)]

    def _embed(self, prepared: Sequence[PreparedQuery]) -> list[np.ndarray | GeovecError]:
        """Vectors from the cache, the rest encoded at once (one by one only to tell whose input fails).

        Text is checked against the model's window here, under the lock: tokenizers are not thread-safe.
        """
        known: dict[str, np.ndarray | GeovecError] = {}
        todo: dict[str, Interleaved] = {}
        for p in prepared:
            if p.key not in known and p.key not in todo:
                cached = self.cache.get(p.key)
                if cached is not None:
                    known[p.key] = cached
                    continue
                try:
                    if p.request.text is not None:
                        check_text_fits(self.embedder, p.request.text, p.request.instruction)
                    todo[p.key] = p.query
                except GeovecError as exc:
                    known[p.key] = exc
        if todo:
            try:
                known.update(zip(todo, self.embedder.encode(list(todo.values()), batch_size=len(todo))))
            except GeovecError:
                for key, query in todo.items():
                    try:
                        known[key] = self.embedder.encode([query])[0]
                    except GeovecError as exc:
                        known[key] = exc
            for key in todo:
                if isinstance(known[key], np.ndarray):
                    self.cache.put(key, known[key])  # type: ignore[arg-type]
        return [known[p.key] for p in prepared]

    def _find(self, prepared: Sequence[PreparedQuery], vectors: Sequence[np.ndarray | GeovecError]
              ) -> list[list[Hit] | GeovecError]:
        """One ``search_many`` over the index; per query for a description index (it groups hits by image)."""
        found: list[list[Hit] | GeovecError] = list(vectors)  # type: ignore[arg-type]
        rows = [n for n, vector in enumerate(vectors) if isinstance(vector, np.ndarray)]
        exact = [True if prepared[n].request.exact else None for n in rows]
        if self.descriptions is None and len(rows) > 1:
            try:
                batched = self.store.search_many(np.stack([vectors[n] for n in rows]),  # type: ignore[arg-type]
                                                 [prepared[n].request.top_k for n in rows],
                                                 [prepared[n].geo for n in rows], exact)
                for n, hits in zip(rows, batched):
                    found[n] = hits
                return found
            except GeovecError:
                pass  # one query's problem: search them one by one so only that one fails
        search = self.store.search if self.descriptions is None else self.descriptions.search
        for n, mode in zip(rows, exact):
            try:
                found[n] = search(vectors[n], prepared[n].request.top_k, filter=prepared[n].geo, exact=mode)
            except GeovecError as exc:
                found[n] = exc
        return found

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Searcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QueryBatcher:
    """Serves one ``Searcher`` to many concurrent callers from one worker thread, in batches.

    The worker takes the first waiting request and, when recent batches held more than one (users are
    concurrent), waits up to ``max_wait_ms`` for as many as the largest recent batch, up to ``max_batch``; a lone
    user never waits. Requests are validated in the caller's thread, so a bad one fails at once and never delays
    the others.
    """

    RECENT_BATCHES = 8  # batches remembered when deciding whether users are concurrent

    def __init__(self, searcher: Searcher, max_batch: int = 32, max_wait_ms: float = 5.0) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise GeovecInputError("batching", f"max_batch must be >= 1 and max_wait_ms >= 0, got {max_batch} "
                                               f"and {max_wait_ms}")
        self.searcher, self.max_batch, self.max_wait_s = searcher, max_batch, max_wait_ms / 1000
        self.batches = self.queries = self.largest = 0
        self._recent: list[int] = []
        self._queue: queue.SimpleQueue[tuple[PreparedQuery, Future] | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._serve, name="geovec-query-batcher", daemon=True)
        self._worker.start()

    def submit(self, request: SearchRequest) -> Future[SearchResult]:
        """Validate now (raising ``GeovecError`` here) and queue; the future holds the result or its error."""
        prepared = self.searcher.prepare(request)
        future: Future[SearchResult] = Future()
        self._queue.put((prepared, future))
        return future

    def search(self, request: SearchRequest) -> SearchResult:
        return self.submit(request).result()

    def stats(self) -> dict[str, Any]:
        return {"max_batch": self.max_batch, "max_wait_ms": self.max_wait_s * 1000, "batches": self.batches,
                "queries": self.queries, "largest_batch": self.largest}

    def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        self._queue.put(None)
        self._worker.join()

    def _gather(self, first: tuple[PreparedQuery, Future]) -> tuple[list[tuple[PreparedQuery, Future]], bool]:
        """The batch that starts with ``first``, and whether the worker was told to stop meanwhile.

        While users are concurrent it waits (up to ``max_wait_ms``) until as many requests as the largest recent
        batch have come, since clients answered together come back together; then it takes only what is queued.
        """
        batch = [first]
        peak = min(self.max_batch, max(self._recent, default=1))
        deadline = time.monotonic() + (self.max_wait_s if peak > 1 else 0.0)
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic() if len(batch) < peak else 0.0
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = self._gather(first)
            self._recent = [*self._recent[-(self.RECENT_BATCHES - 1):], len(batch)]
            self.batches, self.queries = self.batches + 1, self.queries + len(batch)
            self.largest = max(self.largest, len(batch))
            try:
                results: list[SearchResult | GeovecError] = self.searcher.search_batch([p for p, _ in batch])
            except Exception as exc:  # a bug, not bad input: every caller of this batch sees it
                results = [exc] * len(batch)  # type: ignore[list-item]
            for (_, future), result in zip(batch, results):
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
