"""VectorIndex throughput and latency on seeded random unit vectors: add, reopen, exact and HNSW top-10.

    python benchmarks/bench_index.py [--sizes 100000 1000000] [--dim 384] [--queries 200]
                                     [--M 32] [--ef-construction 80] [--ef-search 64 128 256 512 1024 2048]
                                     [--data random|clustered]

Uniform random vectors on the sphere are the hardest case for graph search (no structure to exploit), which is
what the issue asks for; ``--data clustered`` shows the same pipeline on embedding-like data. Latencies are single
queries through ``VectorIndex.search`` (records fetched from SQLite included). The ratio against a bare numpy
brute force over the same matrix in the same process makes figures comparable across machines.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import faiss
import numpy as np

from geovec.index import Record, VectorIndex

ADD_BATCH = 50_000


def unit_vectors(n: int, dim: int, seed: int, clustered: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(12345).standard_normal((1000, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, ADD_BATCH):  # in chunks to keep float64 temporaries small
        rows = rng.standard_normal((min(ADD_BATCH, n - start), dim), dtype=np.float32)
        if clustered:
            rows = centres[rng.integers(0, len(centres), len(rows))] + 0.7 * rows
        out[start:start + len(rows)] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def latencies(run, queries: np.ndarray) -> tuple[np.ndarray, list]:
    run(queries[0])  # warm-up
    times, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(run(query))
        times.append(time.perf_counter() - started)
    return np.array(times) * 1000, results


def describe(ms: np.ndarray) -> str:
    return f"mean {ms.mean():7.2f}  p50 {np.percentile(ms, 50):7.2f}  p95 {np.percentile(ms, 95):7.2f} ms"


def bench(size: int, args: argparse.Namespace, folder: str) -> None:
    clustered = args.data == "clustered"
    vectors = unit_vectors(size, args.dim, seed=size, clustered=clustered)
    queries = unit_vectors(args.queries, args.dim, seed=1, clustered=clustered)
    path = os.path.join(folder, f"idx-{size}")
    print(f"\n== {size:,} {args.data} {args.dim}-d vectors, {args.queries} queries, "
          f"{faiss.omp_get_max_threads()} threads ==", flush=True)

    started = time.perf_counter()
    index = VectorIndex.create(path, args.dim, model={"name": "bench"})
    for start in range(0, size, ADD_BATCH):
        stop = min(start + ADD_BATCH, size)
        index.add([Record(id=f"v{i}") for i in range(start, stop)], vectors[start:stop])
    seconds = time.perf_counter() - started
    print(f"add        {size / seconds:10,.0f} items/s ({seconds:.1f} s, batches of {ADD_BATCH:,}, one "
          f"transaction each)", flush=True)
    started = time.perf_counter()
    index.search(queries[0], k=10)
    print(f"first search (vectors read from SQLite)  {time.perf_counter() - started:6.2f} s", flush=True)
    started = time.perf_counter()
    index.close()
    print(f"close (writes the vector cache)          {time.perf_counter() - started:6.2f} s", flush=True)
    started = time.perf_counter()
    index = VectorIndex.open(path)
    index.search(queries[0], k=10)
    print(f"reopen + first search (vector cache)     {time.perf_counter() - started:6.2f} s", flush=True)

    def reference(query: np.ndarray) -> np.ndarray:
        scores = vectors @ query
        top = np.argpartition(scores, -10)[-10:]
        return top[np.argsort(-scores[top])]

    ref_ms, expected = latencies(reference, queries)
    exact_ms, exact = latencies(lambda q: index.search(q, k=10, exact=True), queries)
    assert all([h.id for h in hits] == [f"v{i}" for i in ids] for hits, ids in zip(exact, expected))
    print(f"exact top-10      {describe(exact_ms)}   (ratio to numpy reference {exact_ms.mean() / ref_ms.mean():.2f})")
    print(f"numpy reference   {describe(ref_ms)}", flush=True)

    started = time.perf_counter()
    index.build_ann(M=args.M, ef_construction=args.ef_construction)
    print(f"build_ann M={args.M} ef_construction={args.ef_construction}: {time.perf_counter() - started:.1f} s",
          flush=True)
    truth = [{h.id for h in hits} for hits in exact]
    meets = None
    for ef in args.ef_search:
        ann_ms, found = latencies(lambda q: index.search(q, k=10, exact=False, ef_search=ef), queries)
        recall = np.mean([len({h.id for h in hits} & want) / 10 for hits, want in zip(found, truth)])
        meets = meets or (ef if recall >= 0.95 else None)
        print(f"ANN ef_search={ef:<5d} {describe(ann_ms)}  recall@10 {recall:.3f}  "
              f"(ratio to numpy reference {ann_ms.mean() / ref_ms.mean():.3f})", flush=True)
    print(f"smallest ef_search with recall@10 >= 0.95: {meets or 'none tried'}")
    index.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--M", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048])
    parser.add_argument("--data", choices=["random", "clustered"], default="random")
    parser.add_argument("--dir", default=None, help="where to build the indexes (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for size in args.sizes:
            bench(size, args, folder)


if __name__ == "__main__":
    main()
