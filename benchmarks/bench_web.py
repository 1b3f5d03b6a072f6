"""Search latency and throughput through the HTTP API (`geovec serve`) under concurrent clients.

Builds (or opens, ``--index``) an index of random 384-d unit vectors with lat/lon records, starts uvicorn on a
free port, and runs text queries (embedded by minilm on the server) from ``--clients`` threads, with and without an
area filter. The reference is ``Searcher.search`` called directly in this process: the ratio is the cost of HTTP,
JSON, the threadpool and the client threads (which share this process and its cores). Not a test.

On a small shared machine run it with ``OMP_NUM_THREADS=1``: with torch's default intra-op threads competing with
other processes, one minilm query encode measured ~700 ms instead of ~15 ms (2 cores, load average 5).

    python benchmarks/bench_web.py [--size 100000] [--clients 8] [--requests 400] [--index DIR]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from geovec.index import Record, VectorIndex
from geovec.progress import progress_bar
from geovec.query import Searcher, SearchRequest
from geovec.web import create_app

DIM, BATCH = 384, 10_000
QUERIES = ["a bridge over a river", "many boats in a harbour", "an airport with two runways", "a dense forest",
           "a stadium surrounded by parking lots", "storage tanks near a port", "a residential area with trees",
           "farmland with irrigation circles", "a beach next to the sea", "an industrial area with warehouses"]
WITHIN = (3.0, 50.0, 8.0, 54.0)  # ~0.3 % of the globe's lat/lon rectangle: a selective area filter


def build(path: Path, size: int) -> None:
    """Random unit vectors at random places; batch b is seeded by b, so an interrupted build resumes identically."""
    with VectorIndex.create(path, DIM, model={"name": "minilm", "path": None}, exist_ok=True) as store:
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


def serve(index: Path) -> tuple[uvicorn.Server, threading.Thread, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(index), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def load(url: str, clients: int, requests: int, within) -> tuple[list[float], float]:
    """Latencies (ms) of ``requests`` searches from ``clients`` threads, and the wall time of the whole run."""
    def worker(worker_id: int) -> list[float]:
        times = []
        with httpx.Client(base_url=url, timeout=60) as client:
            for n in range(worker_id, requests, clients):
                started = time.perf_counter()
                response = client.post("/api/search", json={"text": QUERIES[n % len(QUERIES)], "top_k": 10,
                                                            "within": within})
                times.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
        return times

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for times in pool.map(worker, range(clients)) for t in times]
    return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index folder to open (built there if missing)")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400, help="per scenario, over all clients")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temp:
        index = args.index or Path(temp) / "index"
        build(index, args.size)
        with Searcher(index) as searcher:  # reference: the same search, in process, one at a time
            searcher.search(SearchRequest(text="warm-up"))
            direct = {name: [searcher.search(SearchRequest(text=q, within=within)).elapsed_ms for q in QUERIES * 5]
                      for name, within in (("text", None), ("text + within", WITHIN))}
        server, thread, url = serve(index)
        httpx.post(f"{url}/api/search", json={"text": "warm-up"}, timeout=60).raise_for_status()
        rows = []
        for name, within in (("text", None), ("text + within", WITHIN)):
            latencies, wall = load(url, args.clients, args.requests, within)
            rows.append((name, percentile(latencies, 50), percentile(latencies, 95), args.requests / wall,
                         statistics.median(direct[name])))
        server.should_exit = True
        thread.join()

    print(f"\n{args.size:,} items, {args.clients} concurrent clients, {args.requests} requests per row, "
          "minilm query embedding, exact top-10")
    print(f"{'query':<15} {'HTTP p50 ms':>12} {'HTTP p95 ms':>12} {'req/s':>8} {'direct p50 ms':>14} {'ratio':>6}")
    for name, p50, p95, rate, ref in rows:
        # ratio: the throughput one request at a time would give (1000 / direct p50) over the measured one
        print(f"{name:<15} {p50:>12.1f} {p95:>12.1f} {rate:>8.1f} {ref:>14.1f} {1000 / ref / rate:>6.2f}")


if __name__ == "__main__":
    main()
