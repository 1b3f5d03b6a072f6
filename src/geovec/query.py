"""Searching an index: one implementation behind the Python API, the CLI and the web server.

A ``SearchRequest`` is what a user asks (text, an example image, a region of it, a place, an area filter); it is
validated once, here, so every front end reports the same clear errors. ``Searcher`` keeps the index and the
model that built it open, so repeated queries (a web server) pay for loading once.

Many users at once: ``QueryBatcher`` gathers concurrent requests for a few milliseconds, embeds them in one
forward pass and ranks them with one matrix product (``Searcher.search_batch``), because on a CPU one batched
pass costs far less than the same queries one by one. ``SearchWorkers`` splits each batch over more processes,
one per core, since one Python process computes a small batch on about one core. ``QueryEmbeddingCache`` lets a
repeated query skip the encoder altogether.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from geovec.errors import GeovecError, GeovecInputError
from geovec.index import GeoFilter, Hit, open_index
from geovec.index.geojson import hits_feature_collection
from geovec.inputs import Interleaved
from geovec.models import load_model
from geovec.models.registry import check_index_revision
from geovec.models.base import Embedder, check_text_fits, model_identity
from geovec.search_request import MAX_QUERY_CHARS, MAX_TOP_K, SearchRequest, parse_numbers
from geovec.t2t.search import DescriptionSearch, check_text_query, is_description_index
from geovec.threads import pin_to_cores, use_threads

DEFAULT_REPLY_TIMEOUT_S = 2.0  # a worker's slack past the server's own share of a batch: ~100x a usual batch

__all__ = ["DEFAULT_REPLY_TIMEOUT_S", "MAX_QUERY_CHARS", "MAX_TOP_K", "PreparedQuery", "QueryBatcher",
           "QueryEmbeddingCache", "SearchRequest", "SearchResult", "SearchWorkers", "Searcher",
           "open_index", "parse_numbers"]  # open_index: from geovec.index, kept here


@dataclass
class SearchResult:
    hits: list[Hit]
    elapsed_ms: float
    request: SearchRequest = field(repr=False)
    vector: np.ndarray | None = field(default=None, repr=False)  # the query's embedding (None: a ready answer)

    def to_dict(self) -> dict[str, Any]:
        return {"results": [hit.to_dict() for hit in self.hits], "elapsed_ms": round(self.elapsed_ms, 2)}

    def to_geojson(self) -> dict[str, Any]:
        """The hits as an RFC 7946 FeatureCollection (see ``geovec.index.geojson``), the query as a member."""
        return hits_feature_collection(self.hits, self.request.describe())


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


def index_embedder(recorded: dict[str, Any], model_path: str | Path | None = None) -> Embedder:
    """The model an index records (``store.model``; minilm for an index that records none), from ``model_path``
    when given."""
    return load_model(recorded.get("name", "minilm"), model_path or recorded.get("path"))


class Searcher:
    """An open index (see ``geovec.index.open_index``) plus the embedder it was built with (or ``embedder`` to override).

    A description index (``geovec.t2t.search``) answers with images, each scored by its best description.
    ``query_cache`` entries of query vectors are kept (0: none), keyed by model name and revision + the input.
    ``precision`` is what queries are embedded in (see ``BaseEmbedder.with_precision``; "auto", the fastest
    quality-checked pass measured here, suits a server); ``query_pass`` ("lean/bfloat16") fixes the pass instead.
    Queries are embedded by a copy of ``embedder`` with that setting: the caller's own is left as it was.
    """

    def __init__(self, index: str | Path, embedder: Embedder | None = None, model_path: str | Path | None = None,
                 query_cache: int = 0, precision: str = "float32", query_pass: str | None = None):
        self.store = open_index(index)
        recorded = self.store.model or {}
        given = embedder or index_embedder(recorded, model_path)
        check_index_revision(recorded, given, index)
        self.query_instruction: str | None = recorded.get("query_instruction")
        self.embedder = given.with_query_pass(query_pass) if query_pass is not None else \
            given.with_precision(precision, instruction=self.query_instruction)
        self.query_pass: str = str(self.embedder.query_pass)  # what worker processes embed with too
        self.precision: str = self.embedder.query_pass.precision
        self.item_instruction: str | None = recorded.get("item_instruction")
        self.descriptions = DescriptionSearch(self.store) if is_description_index(recorded) else None
        self.cache = QueryEmbeddingCache(query_cache)
        self.identity = model_identity(self.embedder)  # what cache keys and worker processes must agree on
        self.location, self.model_path = str(index), model_path and str(model_path)
        self._lock = threading.Lock()  # the SQLite connection and torch model are used one batch at a time

    def query_pass_info(self) -> dict[str, Any]:
        """The pass queries are embedded with and, where "auto" measured it, the timings it was chosen by."""
        choice = getattr(self.embedder, "pass_choice", None)
        if choice is not None:
            return choice.describe()
        return {"query_pass": self.query_pass, "measured_now": False, "timings_ms": {}, "key": {},
                "summary": f"query pass: {self.query_pass} (as asked: not measured)"}

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
        return PreparedQuery(request, query, request.geo_filter(), f"{self.identity}\x1f{query.cache_key()}")

    def warm_up(self) -> None:
        """Load what the first search would (the index's vectors, the exact kernel measured for them) now, not on a
        user's time."""
        if self.store.dim:
            probe = np.zeros(self.store.dim, np.float32)
            probe[0] = 1.0
            self.store.search(probe, 1)  # the mode serving uses: exact, or the ANN graph where built

    def search(self, request: SearchRequest) -> SearchResult:
        (result,) = self.search_batch([self.prepare(request)])
        if isinstance(result, GeovecError):
            raise result
        return result

    def search_batch(self, prepared: Sequence[PreparedQuery], known: Sequence[np.ndarray | None] | None = None
                     ) -> list[SearchResult | GeovecError]:
        """Every query embedded in one forward pass and ranked together; each gets its own result or error.

        ``known``: per query, its vector if the caller already has it (then the cache is not asked), else None.
        """
        started = time.perf_counter()
        with self._lock:
            vectors = self._embed(prepared, known)
            found = self._find(prepared, vectors)
        elapsed = (time.perf_counter() - started) * 1000
        return [hits if isinstance(hits, GeovecError) else SearchResult(hits, elapsed, p.request, vector)
                for p, hits, vector in zip(prepared, found, vectors)]

    def _embed(self, prepared: Sequence[PreparedQuery], given: Sequence[np.ndarray | None] | None
               ) -> list[np.ndarray | GeovecError]:
        """Vectors given or from the cache, the rest encoded at once (one by one only to tell whose input fails).

        Text is checked against the model's window here, under the lock: tokenizers are not thread-safe.
        """
        known: dict[str, np.ndarray | GeovecError] = {}
        todo: dict[str, PreparedQuery] = {}
        for n, p in enumerate(prepared):
            if p.key not in known and p.key not in todo:
                cached = self.cache.get(p.key) if given is None else given[n]
                if cached is not None:
                    known[p.key] = cached
                    continue
                try:
                    if p.request.text is not None:
                        check_text_fits(self.embedder, p.request.text, p.request.instruction)
                    todo[p.key] = p
                except Exception as exc:  # noqa: BLE001 - whatever one query raises is that query's error
                    known[p.key] = query_error(exc, p)
        if todo:
            try:
                queries = [p.query for p in todo.values()]
                known.update(zip(todo, self.embedder.encode(queries, batch_size=len(todo))))
            except Exception:  # noqa: BLE001 - one query's problem: embed them one by one so only that one fails
                for key, p in todo.items():
                    try:
                        known[key] = self.embedder.encode([p.query])[0]
                    except Exception as exc:  # noqa: BLE001
                        known[key] = query_error(exc, p)
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
            except Exception:  # noqa: BLE001, S110 - one query's problem: search them one by one so only that one fails
                pass
        search = self.store.search if self.descriptions is None else self.descriptions.search
        for n, mode in zip(rows, exact):
            try:
                found[n] = search(vectors[n], prepared[n].request.top_k, filter=prepared[n].geo, exact=mode)
            except Exception as exc:  # noqa: BLE001 - whatever one query raises is that query's error
                found[n] = query_error(exc, prepared[n])
        return found

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Searcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def query_error(exc: Exception, prepared: PreparedQuery) -> GeovecError:
    """The error one query's request answers with, whatever the model or index raised for it.

    A ``GeovecError`` is the user's to read as it is; anything else is a bug or an input no check foresaw: its
    traceback goes to the server's stderr, and the user gets the field and what to do, not the internals.
    """
    if isinstance(exc, GeovecError):
        return exc
    print(f"geovec: one query of a batch failed ({type(exc).__name__}); answering it alone with an error:",
          file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)
    request = prepared.request
    field_name = "text" if request.text is not None and request.image is None and request.point is None else "query"
    return GeovecInputError(field_name, f"this query could not be embedded or searched ({type(exc).__name__}): "
                                        "change its input; the server's log has the details")


class QueryBatcher:
    """Serves one ``Searcher`` to many concurrent callers from one worker thread, in batches.

    The worker takes the first waiting request and, when users were recently concurrent, waits up to
    ``max_wait_ms`` for as many requests as were recently outstanding at once (a batch plus those that queued
    while it ran), up to ``max_batch``; a lone user never waits. Counting the queued ones matters: users split
    into two groups that take turns would otherwise stay split, each waiting a whole extra batch every time.
    Requests are validated in the caller's thread, so a bad one fails at once and never delays the others.
    """

    RECENT_BATCHES = 8  # batches remembered when deciding whether users are concurrent

    def __init__(self, searcher: Searcher, max_batch: int = 32, max_wait_ms: float = 5.0,
                 workers: "SearchWorkers | None" = None) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise GeovecInputError("batching", f"max_batch must be >= 1 and max_wait_ms >= 0, got {max_batch} "
                                               f"and {max_wait_ms}")
        self.searcher, self.max_batch, self.max_wait_s = searcher, max_batch, max_wait_ms / 1000
        self.workers = workers
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
                "queries": self.queries, "largest_batch": self.largest,
                "processes": 1 + (len(self.workers) if self.workers else 0)}

    def close(self) -> None:
        """Finish what is queued, then stop the worker (and the worker processes)."""
        self._queue.put(None)
        self._worker.join()
        if self.workers:
            self.workers.close()

    def _gather(self, first: tuple[PreparedQuery, Future]) -> tuple[list[tuple[PreparedQuery, Future]], bool]:
        """The batch that starts with ``first``, and whether the worker was told to stop meanwhile.

        While users are concurrent it waits (up to ``max_wait_ms``) until as many requests as were recently
        outstanding have come, since clients answered together come back together; then it takes only what is
        queued.
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
        if self.workers:  # this thread computes one share of each batch; each worker process another
            pin_to_cores(0, len(self.workers) + 1)
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = self._gather(first)
            self.batches, self.queries = self.batches + 1, self.queries + len(batch)
            self.largest = max(self.largest, len(batch))
            prepared = [p for p, _ in batch]
            try:
                results: list[SearchResult | GeovecError] = (self.workers or self.searcher).search_batch(prepared)
            except Exception as exc:  # a bug, not bad input: every caller of this batch sees it
                results = [exc] * len(batch)  # type: ignore[list-item]
            outstanding = len(batch) + self._queue.qsize()  # this batch's users and those who came meanwhile
            self._recent = [*self._recent[-(self.RECENT_BATCHES - 1):], outstanding]
            for (_, future), result in zip(batch, results):
                if not future.set_running_or_notify_cancel():  # its caller gave up waiting
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


class SearchWorkers:
    """Processes that each open the searcher's index and load its model, so a batch is computed on many cores.

    Why: one Python process embeds a small batch on about one core (more intra-op threads barely help at a few
    dozen tokens, and threads of one process contend for the GIL); a batch split over processes finishes sooner.
    ``search_batch`` computes one share of the batch with ``searcher`` in this process and sends the others out. A
    worker that dies is dropped and its share computed here, so the server goes on with fewer processes.

    Every job carries a batch number that its reply repeats: a reply left unread (an exception between sending and
    reading) is discarded, never taken for a later batch's, so no failure can hand one user another's results. A
    worker that has not replied ``reply_timeout_s`` (plus twice what this process took for its own share) after this
    process finished its share is frozen or swamped: it is killed, dropped, and its share computed here.
    """

    def __init__(self, searcher: Searcher, count: int, threads: int = 1,
                 reply_timeout_s: float = DEFAULT_REPLY_TIMEOUT_S) -> None:
        if count < 1:
            raise GeovecInputError("workers", f"must be >= 1 extra process, got {count}")
        if not reply_timeout_s > 0:
            raise GeovecInputError("worker_timeout", f"must be > 0 seconds, got {reply_timeout_s}")
        self.searcher, self.reply_timeout_s = searcher, reply_timeout_s
        self._batches = 0  # the number of the last batch sent out
        settings = [searcher.location, searcher.model_path, searcher.query_pass, threads]
        # A fresh interpreter, not multiprocessing: forking would copy torch's running threads, and its "spawn"
        # re-runs the caller's main script, which a script without a __main__ guard cannot survive.
        source = str(Path(__file__).resolve().parents[1])  # the folder geovec is imported from
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source,
                                                                                 os.environ.get("PYTHONPATH")]))}
        self._workers: list[tuple[subprocess.Popen, Connection]] = []
        for number in range(1, count + 1):  # share 0 of the cores is the batcher thread's
            here, there = socket.socketpair()
            process = subprocess.Popen([sys.executable, "-c", WORKER_COMMAND, str(there.fileno()),
                                        json.dumps([*settings, number, count + 1])],
                                       pass_fds=[there.fileno()], env=environment)
            there.close()
            self._workers.append((process, Connection(here.detach())))
        identities = [_receive(connection) for _, connection in self._workers]
        problem = next((answer for answer in identities if isinstance(answer, BaseException)), None)
        if isinstance(problem, (EOFError, OSError)):  # it died: most often the memory for one more copy ran out
            dead = next(process for (process, _), answer in zip(self._workers, identities) if answer is problem)
            try:
                code: int | str = dead.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = "unknown"
            problem = GeovecError(f"a search worker process exited while opening the index and model (exit code "
                                  f"{code}; out of memory?): each holds its own copy, so serve with fewer "
                                  "(--workers 1 for none)")
        elif problem is None and set(identities) != {searcher.identity}:
            problem = GeovecInputError("workers", f"worker processes load {identities[0]!r} (what the index "
                                                  f"records), not this searcher's {searcher.identity!r}")
        if problem is not None:
            self.close()
            raise problem if isinstance(problem, GeovecError) else GeovecError(f"search worker: {problem}")

    def __len__(self) -> int:
        return len(self._workers)

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (for an operator's ``ps``/``kill``, and tests)."""
        return [process.pid for process, _ in self._workers]

    def search_batch(self, prepared: Sequence[PreparedQuery]) -> list[SearchResult | GeovecError]:
        """Like ``Searcher.search_batch``, with the queries to embed dealt out evenly over the processes; this
        process's cache answers first and keeps the vectors the workers computed."""
        started = time.perf_counter()
        known = [self.searcher.cache.get(p.key) for p in prepared]
        order = sorted(range(len(prepared)), key=lambda n: known[n] is not None)  # the queries to embed first
        shares = [order[start::len(self._workers) + 1] for start in range(len(self._workers) + 1)]
        self._batches += 1
        batch = self._batches
        sent = []
        for (process, connection), share in zip(list(self._workers), shares[1:]):
            if not share:
                continue
            try:
                connection.send((batch, [prepared[n] for n in share], [known[n] for n in share]))
                sent.append((process, connection, share))
            except OSError:
                self._drop(process)
                shares[0] += share
        results: list[SearchResult | GeovecError] = [None] * len(prepared)  # type: ignore[list-item]
        own_started = time.monotonic()
        for n, result in zip(shares[0], self._here(prepared, known, shares[0])):
            results[n] = result
        now = time.monotonic()
        deadline = now + self.reply_timeout_s + 2 * (now - own_started)  # the workers' shares are no larger
        for process, connection, share in sent:
            answers = _reply(connection, batch, deadline)
            if isinstance(answers, TimeoutError):
                self._drop(process, f"did not answer within {deadline - own_started:.1f} s, so it was killed")
            elif isinstance(answers, (EOFError, OSError)):  # the process is gone
                self._drop(process)
            if not isinstance(answers, list) or len(answers) != len(share):  # gone, frozen, or a bug in it
                answers = self._here(prepared, known, share)
            for n, answer in zip(share, answers):
                results[n] = answer
                if known[n] is None and isinstance(answer, SearchResult):
                    self.searcher.cache.put(prepared[n].key, answer.vector)  # type: ignore[arg-type]
        elapsed = (time.perf_counter() - started) * 1000
        return [replace(r, elapsed_ms=elapsed, request=p.request) if isinstance(r, SearchResult) else r
                for p, r in zip(prepared, results)]

    def close(self) -> None:
        """Tell every worker to stop, and wait for it (a few seconds at most)."""
        for _, connection in self._workers:
            try:
                connection.send(None)
            except OSError:
                pass
        for process, connection in self._workers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            connection.close()
        self._workers = []

    def _here(self, prepared: Sequence[PreparedQuery], known: Sequence[np.ndarray | None], share: Sequence[int]
              ) -> list[SearchResult | GeovecError]:
        return self.searcher.search_batch([prepared[n] for n in share], [known[n] for n in share])

    def _drop(self, process: subprocess.Popen, why: str = "stopped") -> None:
        """Go on without a worker; one still running is killed first (SIGKILL stops a SIGSTOPped one too), since a
        worker that missed a reply could still send it, or hold its copy of the model for nothing."""
        if process.poll() is None:
            process.kill()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        print(f"geovec: search worker process {process.pid} {why} (exit code {process.poll()}); going on "
              "without it", file=sys.stderr)
        for _, connection in (entry for entry in self._workers if entry[0] is process):
            connection.close()
        self._workers = [(p, c) for p, c in self._workers if p is not process]


def _receive(connection: Any) -> Any:
    """The next message, or the exception that says the other end is gone."""
    try:
        return connection.recv()
    except (EOFError, OSError) as exc:
        return exc


def _reply(connection: Connection, batch: int, deadline: float) -> Any:
    """Batch ``batch``'s reply, skipping stale ones; ``TimeoutError`` if none came by ``deadline`` (monotonic), or
    the exception that says the other end is gone."""
    while True:
        try:
            if not connection.poll(max(0.0, deadline - time.monotonic())):
                return TimeoutError(f"no reply to batch {batch}")
            message = connection.recv()
        except (EOFError, OSError) as exc:
            return exc
        if isinstance(message, tuple) and len(message) == 2 and message[0] == batch:
            return message[1]
        print(f"geovec: discarded a search worker's stale reply (waiting for batch {batch})", file=sys.stderr)


WORKER_COMMAND = "import sys; from geovec.query import serve_searches; serve_searches(int(sys.argv[1]), sys.argv[2])"


def serve_searches(descriptor: int, settings: str) -> None:
    """A worker process (``SearchWorkers``): open the index and model, say ready (its model identity) or why not,
    then answer batches with ``SearchResult``s or the queries' errors until told to stop or the server is gone.

    ``descriptor``: its end of the socket to the server; ``settings``: JSON [index, model path, the server's query
    pass (so every process embeds alike), threads, its share of the cores, how many shares].
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the server stops us
    connection = Connection(descriptor)
    location, model_path, query_pass, threads, share, shares = json.loads(settings)
    try:
        pin_to_cores(share, shares)
        use_threads(threads)
        searcher = Searcher(location, model_path=model_path, query_pass=query_pass)
        searcher.warm_up()  # vectors and exact kernel ready before it says so: a first batch has the same deadline
        connection.send(searcher.identity)
    except Exception as exc:
        connection.send(exc if isinstance(exc, GeovecError) else GeovecError(f"{type(exc).__name__}: {exc}"))
        return
    with searcher:
        while (job := _receive(connection)) is not None and not isinstance(job, BaseException):
            batch, prepared, known = job  # the batch number goes back with the reply, so it cannot be misread
            try:
                results = searcher.search_batch(prepared, known)
            except Exception as exc:  # a bug, not bad input: the server computes this share itself
                connection.send((batch, RuntimeError(f"{type(exc).__name__}: {exc}")))
                continue
            # the request goes back stripped of any image: the server has its own
            connection.send((batch, [replace(r, request=None) if isinstance(r, SearchResult) else r
                                     for r in results]))
