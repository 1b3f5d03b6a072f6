"""Search latency through the HTTP API (`geovec serve`) under concurrent clients: old path vs new, in one run.

Builds (or opens, ``--index``) an index of random 384-d unit vectors at random places, recorded as embedded by the
shipped default model (geovec-mini); searches are exact (``--ann``: through an HNSW graph instead, whose recall@10
against exact search is printed; random vectors are its worst case). For each server path it
starts a real uvicorn server in a *separate process* and runs the clients here (threads of this process, so the
server never shares its interpreter with them):

* ``old``: one request at a time, no query cache, float32 queries, torch's default threads (what ``geovec serve`` did
  before batching, run as a new user would, without ``OMP_NUM_THREADS``);
* ``new``: the defaults: dynamic batching split over the server's own choice of processes and threads, the
  query-embedding cache, and its query precision (bfloat16 where the CPU computes it natively); exact search runs
  the kernel measured fastest on this machine (`geovec kernels`).

Every request carries a distinct query text, so the cache never answers (a separate ``new, repeated`` row shows what
it does for a small pool of repeated queries). Rows: 8 clients text, 8 clients text + area filter, 1 client text.
The reference is ``Searcher.search`` called directly in this process, one query at a time; ratios are against it.
Then batched exact search throughput (``VectorIndex.search_many``) at 100k and 1M items for 1, 8 and 64 queries
at once, numpy float32 and with the measured kernel, against the same queries searched one by one. Not a test.

    python benchmarks/bench_web.py [--size 100000] [--clients 8] [--seconds 60] [--short-seconds 20] [--ann]
                                   [--qps-sizes 100000 1000000] [--no-latency] [--no-qps] [--index DIR]
                                   [--new-args "--workers 1"] [--paths new]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import httpx
import numpy as np
import torch

from geovec.index import Record, VectorIndex, kernels
from geovec.models.registry import index_model_record
from geovec.progress import progress_bar
from geovec.query import Searcher, SearchRequest
from geovec.threads import server_threads, use_threads

DIM, BATCH, MODEL = 384, 10_000, "geovec-mini"
WITHIN = (3.0, 50.0, 8.0, 54.0)  # ~0.3 % of the globe's lat/lon rectangle: a selective area filter
SUBJECTS = ["a bridge over a river", "boats in a harbour", "an airport with two runways", "a dense forest",
            "a stadium and parking lots", "storage tanks near a port", "houses among trees", "irrigation circles",
            "a beach next to the sea", "warehouses in an industrial area", "a church on a square", "a golf course"]
PLACES = ["near the coast", "in the mountains", "beside a motorway", "in the desert", "next to a lake",
          "in a large city", "among farmland", "on an island"]
DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice, before this script changes it
PATHS = {"old": ["--max-batch", "1", "--query-cache", "0", "--threads", str(DEFAULT_THREADS), "--precision", "float32"],
         "new": []}


def distinct_queries():
    """An endless stream of different query texts, so the query cache never answers."""
    for n in itertools.count():
        yield f"{SUBJECTS[n % len(SUBJECTS)]} {PLACES[n // len(SUBJECTS) % len(PLACES)]}, view {n}"


def build(path: Path, size: int, ann: bool = False) -> None:
    """Random unit vectors at random places; batch b is seeded by b, so an interrupted build resumes identically.
    ``ann``: also the HNSW graph a served index of this size should have (``geovec index build --ann``)."""
    with VectorIndex.create(path, DIM, model=index_model_record(MODEL, None), exist_ok=True) as store:
        with progress_bar(size, f"building {size:,}-item index") as bar:
            for start in range(0, size, BATCH):
                stop = min(start + BATCH, size)
                if store.contains(f"item-{stop - 1}"):  # batches commit whole: the last id means all are there
                    bar.advance(stop - start)
                    continue
                rng = np.random.default_rng(start // BATCH)
                vectors = rng.standard_normal((stop - start, DIM)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                lats, lons = rng.uniform(-60, 70, stop - start), rng.uniform(-180, 180, stop - start)
                records = [Record(id=f"item-{start + i}", lat=float(lat), lon=float(lon), captions=["random"])
                           for i, (lat, lon) in enumerate(zip(lats, lons))]
                store.add(records, vectors)
                bar.advance(stop - start)
        if ann and not store.has_ann:
            print(f"building the HNSW graph of {size:,} items (minutes) ...", file=sys.stderr)
            store.build_ann()


def ann_recall(index: Path, count: int = 100) -> float:
    """Recall@10 of the served (HNSW) search against exact search, for real geovec-mini query vectors."""
    texts = distinct_queries()
    with Searcher(index) as searcher:
        found = total = 0
        for _ in range(count):
            vector = searcher.embedder.encode(next(texts), instruction=searcher.query_instruction)
            exact = {hit.id for hit in searcher.store.search(vector, 10, exact=True)}
            found += len(exact & {hit.id for hit in searcher.store.search(vector, 10)})
            total += len(exact)
    return found / total


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(index: Path, path: str) -> tuple[subprocess.Popen, str]:
    """``geovec serve`` in its own process; the old path keeps torch's default threads (no OMP_NUM_THREADS)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "geovec.cli.main", "serve", "--index", str(index), "--port",
                                str(port), *PATHS[path]], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{url}/api/search", json={"text": "warm-up"}, timeout=60).raise_for_status()
            return process, url
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read()}")
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start in 120 s")


def load(url: str, clients: int, seconds: float, within, texts) -> tuple[list[float], int, float]:
    """Latencies (ms) of searches from ``clients`` threads for ``seconds``, the error count and the wall time.

    Each client keeps one connection (``http.client``, keep-alive): the lightest client Python has, ~0.2 ms of CPU
    per request against httpx's ~1 ms, so the load generator takes little of the cores it shares with the server.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    lock, errors = threading.Lock(), [0]

    def worker(_: int) -> list[float]:
        times = []
        stop = time.monotonic() + seconds
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        while time.monotonic() < stop:
            with lock:
                body = json.dumps({"text": next(texts), "top_k": 10, "within": within})
            started = time.perf_counter()
            try:
                connection.request("POST", "/api/search", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=60)
                ok = False
            times.append((time.perf_counter() - started) * 1000)
            if not ok:
                with lock:
                    errors[0] += 1
        connection.close()
        return times

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for times in pool.map(worker, range(clients)) for t in times]
    return latencies, errors[0], time.perf_counter() - started


def latency_rows(index: Path, clients: int, seconds: float, short_seconds: float,
                 paths: Sequence[str] = ("old", "new")) -> list[tuple]:
    """``seconds`` for the many-client text row of each path, ``short_seconds`` for the others."""
    texts = distinct_queries()
    with Searcher(index) as searcher:  # reference: the same search, in this process, one at a time
        searcher.search(SearchRequest(text="warm-up"))
        direct = {name: statistics.median(searcher.search(SearchRequest(text=next(texts), within=within)).elapsed_ms
                                          for _ in range(40))
                  for name, within in (("text", None), ("text + within", WITHIN))}
    rows = []
    for path in paths:
        process, url = start_server(index, path)
        try:
            runs = [(f"{clients} clients, text", clients, seconds, None, texts),
                    (f"{clients} clients, text + within", clients, short_seconds, WITHIN, texts),
                    ("1 client, text", 1, short_seconds, None, texts)]
            if path == "new":  # a small pool of repeated queries: what the cache is for
                runs.append((f"{clients} clients, 24 repeated texts", clients, short_seconds, None,
                             itertools.cycle([f"{s} {p}" for s in SUBJECTS for p in PLACES[:2]])))
            for name, count, duration, within, stream in runs:
                latencies, errors, wall = load(url, count, duration, within, stream)
                reference = direct["text + within" if within else "text"]
                rows.append((path, name, np.percentile(latencies, 50), np.percentile(latencies, 95),
                             len(latencies) / wall, errors, len(latencies), reference))
            info = httpx.get(f"{url}/api/info", timeout=60).json()
            print(f"{path}: threads {info['threads']}, {info['precision']} queries, batching {info['batching']}, "
                  f"cache {info['query_cache']}", file=sys.stderr)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return rows


def batched_qps(sizes: list[int], folder: Path, rounds: int = 3) -> list[tuple]:
    """Exact top-10 queries/s through ``search_many`` at 1, 8 and 64 queries at once, with numpy float32 and with
    the kernel measured fastest here (``geovec.index.kernels``), against float32 queries one by one."""
    modes = {"float32": 1 << 62, "measured kernel": kernels.MEASURED_MIN_ROWS}  # rows from which kernels are timed
    rows = []
    rng = np.random.default_rng(7)
    for size in sizes:
        path = folder / f"qps-{size}"
        build(path, size)
        queries = rng.standard_normal((128, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        one_by_one = None
        for mode, min_rows in modes.items():
            kernels.MEASURED_MIN_ROWS = min_rows
            with VectorIndex.open(path) as store:  # opened per mode: the kernel is chosen when vectors load
                store.search(queries[0], k=10, exact=True)  # loads the matrix, chooses the kernel
                if one_by_one is None:
                    started = time.perf_counter()
                    for query in queries[:64]:
                        store.search(query, k=10, exact=True)
                    one_by_one = 64 / (time.perf_counter() - started)
                for batch in (1, 8, 64):
                    best = 0.0
                    for _ in range(rounds):
                        started = time.perf_counter()
                        for start in range(0, 64, batch):
                            chunk = queries[start:start + batch]
                            store.search_many(chunk, [10] * len(chunk), [None] * len(chunk), [True] * len(chunk))
                        best = max(best, 64 / (time.perf_counter() - started))
                    rows.append((size, mode, batch, best, one_by_one))
        kernels.MEASURED_MIN_ROWS = modes["measured kernel"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index folder to open (built there if missing)")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0, help="the many-client text row of each path")
    parser.add_argument("--short-seconds", type=float, default=20.0, help="every other latency row")
    parser.add_argument("--qps-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--no-latency", action="store_true", help="only the batched search throughput")
    parser.add_argument("--no-qps", action="store_true", help="only the HTTP latency rows")
    parser.add_argument("--ann", action="store_true", help="search through an HNSW graph (built if missing)")
    parser.add_argument("--new-args", default="", help="extra `geovec serve` options for the new path")
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS), help="server paths to run")
    args = parser.parse_args()
    PATHS["new"] += args.new_args.split()

    with tempfile.TemporaryDirectory() as temp:
        index = args.index or Path(temp) / "index"
        rows, qps = [], []
        if not args.no_latency:
            build(index, args.size, ann=args.ann)
            recall = ann_recall(index) if args.ann else None
            rows = latency_rows(index, args.clients, args.seconds, args.short_seconds, args.paths)
        threads = server_threads()
        use_threads(threads)
        if not args.no_qps:
            qps = batched_qps(args.qps_sizes, Path(temp))

    if rows:
        search = "exact top-10" if recall is None else f"HNSW top-10 (recall@10 {recall:.3f} against exact)"
        print(f"\n{args.size:,} items, {MODEL} query embedding, {search}, clients in a separate process, distinct "
              "query texts")
        print(f"{'path':<5} {'clients, query':<32} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8} {'errors':>7} "
              f"{'requests':>9} {'direct ms':>10} {'ratio':>6}")
        for path, name, p50, p95, rate, errors, count, reference in rows:
            # ratio: measured throughput over what one query at a time would give (1000 / direct p50)
            print(f"{path:<5} {name:<32} {p50:>8.1f} {p95:>8.1f} {rate:>8.1f} {errors:>7} {count:>9} "
                  f"{reference:>10.1f} {rate * reference / 1000:>6.2f}")
        old = {name: (p50, rate) for path, name, p50, _, rate, *_ in rows if path == "old"}
        for path, name, p50, _, rate, *_ in rows:
            if path == "new" and name in old:
                print(f"new / old, {name}: p50 x{p50 / old[name][0]:.2f}, req/s x{rate / old[name][1]:.2f}")
    if not qps:
        return
    print(f"\nbatched exact top-10 (search_many), {threads} thread(s); ratio against the same queries one by one in "
          "float32")
    print(f"{'items':>10} {'scoring':>14} {'queries at once':>16} {'queries/s':>10} {'one by one':>11} {'ratio':>6}")
    for size, mode, batch, rate, one_by_one in qps:
        print(f"{size:>10,} {mode:>14} {batch:>16} {rate:>10.1f} {one_by_one:>11.1f} {rate / one_by_one:>6.2f}")


if __name__ == "__main__":
    main()
