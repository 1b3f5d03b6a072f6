"""VectorIndex (folder) vs ChromaIndex (server) on the same seeded random unit vectors with lat/lon, in one process.

    python benchmarks/bench_chroma.py [--size 100000] [--dim 384] [--queries 200] [--ef-search 100]
                                      [--url chroma://HOST:PORT]   # default: start `chroma run` in a temp folder

Reports add throughput (items/s, records included), single-query top-10 latency p50/p95 without and with a
``within`` filter, and recall@10 against exact search, for: the folder index searched exactly, the folder
index's default (its FAISS HNSW graph, exact for small filters) and Chroma's HNSW (same M / ef_construction /
ef_search; with the filter as grid cells, and as lat/lon ranges as collections made before cells do), then Chroma /
folder ratios. Chroma latencies include the HTTP round trip and the JSON
(de)serialisation of the query vector and the records it returns: the cost every user of a server pays.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from contextlib import ExitStack

import numpy as np

from geovec.index import ChromaIndex, GeoFilter, Record, VectorIndex
from geovec.index.chroma import local_server

FOLDER_BATCH = 50_000
WITHIN = GeoFilter(within=(-10.0, 35.0, 30.0, 60.0))  # a Europe-sized box: about 1.5 % of uniform points
M, EF_CONSTRUCTION = 16, 100  # Chroma's defaults, used for both graphs


def dataset(size: int, dim: int, seed: int) -> tuple[list[Record], np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((size, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    lats, lons = np.degrees(np.arcsin(rng.uniform(-1, 1, size))), rng.uniform(-180, 180, size)  # uniform on Earth
    records = [Record(id=f"v{i}", lat=float(lat), lon=float(lon), captions=[f"item {i}"])
               for i, (lat, lon) in enumerate(zip(lats, lons))]
    return records, vectors


def timed_add(index, records: list[Record], vectors: np.ndarray, batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(records), batch):
        index.add(records[start:start + batch], vectors[start:start + batch])
    return len(records) / (time.perf_counter() - started)


def latencies(search, queries: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
    search(queries[0])  # warm-up
    times, found = [], []
    for query in queries:
        started = time.perf_counter()
        hits = search(query)
        times.append(time.perf_counter() - started)
        found.append([hit.id for hit in hits])
    return np.array(times) * 1000, found


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / max(1, len(t)) for f, t in zip(found, truth)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef-search", type=int, default=100)
    parser.add_argument("--url", help="chroma://HOST:PORT of a running server (default: start one here)")
    args = parser.parse_args()

    records, vectors = dataset(args.size, args.dim, seed=0)
    queries = dataset(args.queries, args.dim, seed=1)[1]
    with ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-chroma-"))
        server = args.url.removeprefix("chroma://").rstrip("/") if args.url else stack.enter_context(
            local_server(f"{folder}/chroma"))
        print(f"== {args.size:,} random {args.dim}-d unit vectors with lat/lon, {args.queries} single queries, "
              f"top-10, HNSW M={M} ef_construction={EF_CONSTRUCTION} ef_search={args.ef_search}; server {server} ==")
        local = stack.enter_context(VectorIndex.create(f"{folder}/folder", args.dim, model={"name": "bench"}))
        remote = stack.enter_context(ChromaIndex.create(
            f"chroma://{server}/bench-{uuid.uuid4().hex[:8]}", args.dim, model={"name": "bench"},
            ef_search=args.ef_search, ef_construction=EF_CONSTRUCTION, max_neighbors=M))

        add_local = timed_add(local, records, vectors, FOLDER_BATCH)
        add_remote = timed_add(remote, records, vectors, remote.batch_size)
        started = time.perf_counter()
        local.build_ann(M=M, ef_construction=EF_CONSTRUCTION, ef_search=args.ef_search)
        print(f"add items/s: folder {add_local:,.0f} (SQLite, batches of {FOLDER_BATCH:,}; FAISS HNSW build "
              f"{time.perf_counter() - started:.1f} s more), chroma {add_remote:,.0f} (HTTP upserts of "
              f"{remote.batch_size:,}, HNSW built as it goes); ratio chroma/folder {add_remote / add_local:.2f}")

        print(f"search (within = {WITHIN.within}; 'folder default' = HNSW, exact when a filter keeps few)")
        print(f"  {'filter':10} {'index':15} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>10}")
        for label, geo in (("none", None), ("within", WITHIN)):
            _, truth = latencies(lambda q: local.search(q, k=10, filter=geo, exact=True), queries)
            rows = {}
            runs = [("folder exact", local, True, True), ("folder default", local, None, True),
                    ("chroma hnsw", remote, None, True)]
            if geo is not None:
                runs.append(("chroma ranges", remote, None, False))
            for name, index, exact, cells in runs:
                remote.geocells = cells
                ms, found = latencies(lambda q: index.search(q, k=10, filter=geo, exact=exact), queries)
                rows[name] = np.percentile(ms, [50, 95])
                print(f"  {label:10} {name:15} {rows[name][0]:8.2f} {rows[name][1]:8.2f} "
                      f"{recall(found, truth):10.3f}")
            for name in ("folder exact", "folder default", "chroma ranges"):
                if name in rows:
                    ratio = rows["chroma hnsw"] / rows[name]
                    print(f"  {label:10} chroma hnsw / {name}: p50 x{ratio[0]:.2f}, p95 x{ratio[1]:.2f}")


if __name__ == "__main__":
    main()
