"""VectorIndex throughput and latency on seeded random unit vectors: add, reopen, exact and HNSW top-10.

    python benchmarks/bench_index.py [--sizes 100000 1000000] [--dim 384] [--queries 200]
                                     [--M 32] [--ef-construction 80] [--ef-search 64 128 256 512 1024 2048]
                                     [--data random|clustered] [--kernels-only] [--old-rev GIT_REVISION]

Every run starts with the CPU model and its relevant flags (lscpu), then the exact-search kernels at each size:
each candidate's median ms for 1 and 8 queries, the measured choice (what serving and the CLI run), the fastest
float32 kernel, and with ``--old-rev`` the exact search of that revision's ``geovec/index/vectors.py`` (before
kernels were measured: the int8 pass whenever torch is loaded), all in this process. To reproduce another CPU, cap
the instruction set: ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/bench_index.py ...``.

Uniform random vectors on the sphere are the hardest case for graph search (no structure to exploit), which is
what the issue asks for; ``--data clustered`` shows the same pipeline on embedding-like data. Latencies are single
queries through ``VectorIndex.search`` (records fetched from SQLite included). The ratio against a bare numpy
brute force over the same matrix in the same process makes figures comparable across machines.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from geovec.threads import sleeping_openmp_threads

sleeping_openmp_threads()  # as the geovec command does, before FAISS or torch loads

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from geovec.index import Record, VectorIndex  # noqa: E402
from geovec.index.kernels import BATCHES, candidates, cpu_line  # noqa: E402
from geovec.index.vectors import LiveVectors, exact_ranking  # noqa: E402

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


def old_exact_ranking(revision: str):
    """``exact_ranking`` of ``geovec/index/vectors.py`` at a git revision (the path before measured kernels)."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "-C", str(root), "show", f"{revision}:src/geovec/index/vectors.py"],
                            capture_output=True, text=True, check=True).stdout
    spec = importlib.util.spec_from_loader("old_vectors", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_vectors"] = module  # dataclasses look their module up there
    exec(compile(source, f"{revision}:vectors.py", "exec"), module.__dict__)  # noqa: S102  (our own history)
    return module


def interleaved_ms(runs: dict[str, list], repeats: int) -> dict[str, list[float]]:
    """Median ms of every run, timed round-robin (one of each per round) so a neighbour's load spreads evenly."""
    for calls in runs.values():
        for call in calls:
            call()  # warm-up
    times: dict[str, list[list[float]]] = {name: [[] for _ in calls] for name, calls in runs.items()}
    for _ in range(repeats):
        for name, calls in runs.items():
            for slot, call in zip(times[name], calls):
                started = time.perf_counter()
                call()
                slot.append((time.perf_counter() - started) * 1000)
    return {name: [float(np.median(slot)) for slot in slots] for name, slots in times.items()}


def bench_kernels(vectors: np.ndarray, args: argparse.Namespace) -> None:
    """Each kernel's median ms for 1 and 8 queries, the choice (measured again, cached in GEOVEC_HOME), the
    fastest float32 kernel and the old path."""
    import torch  # noqa: F401  (the old path takes its int8 pass only where torch is loaded, as when serving)

    queries = unit_vectors(max(BATCHES), vectors.shape[1], seed=2, clustered=args.data == "clustered")
    state = LiveVectors(vectors.shape[1], np.arange(len(vectors)), vectors)
    started = time.perf_counter()
    choice = state.kernel(remeasure=True)  # what exact_ranking (serving, CLI) then runs
    print(f"choose (measure {len(choice.timings)} kernels): {time.perf_counter() - started:.2f} s; "
          f"{choice.summary()}", flush=True)

    def batches(rank) -> list:
        return [lambda batch=batch: rank(queries[:batch], [10] * batch) for batch in BATCHES]

    runs = {}
    for name, make in candidates(vectors.shape[1]).items():
        kernel = make()
        kernel.prepare(vectors)
        runs[name] = batches(lambda part, ks, kernel=kernel: kernel.rank(part, ks, None))
    runs["new: exact_ranking"] = batches(lambda part, ks: exact_ranking(state, part, ks, None))
    if args.old_rev:
        old = old_exact_ranking(args.old_rev)
        old_state = old.LiveVectors(vectors.shape[1], np.arange(len(vectors)), vectors)
        runs[f"old ({args.old_rev}): exact_ranking"] = batches(lambda part, ks: old.exact_ranking(old_state, part, ks,
                                                                                                  None))
    paths = interleaved_ms(runs, args.repeats)
    floats = [times for name, times in paths.items() if name in ("numpy-float32", "torch-float32", "faiss-flat")]
    best_float = [min(times[i] for times in floats) for i in range(len(BATCHES))]
    print(f"{'kernel (median ms)':34s}" + "".join(f"{f'{b} quer' + ('y' if b == 1 else 'ies'):>12s}{'x fp32':>8s}"
                                                   for b in BATCHES))
    for name, times in paths.items():
        sizes = "/".join(size for size, chosen in choice.names().items() if chosen == name)
        print(f"{name + (f' (chosen for {sizes})' if sizes else ''):34s}"
              + "".join(f"{ms:12.2f}{ms / best:8.2f}" for ms, best in zip(times, best_float)), flush=True)


def bench(size: int, args: argparse.Namespace, folder: str) -> None:
    clustered = args.data == "clustered"
    vectors = unit_vectors(size, args.dim, seed=size, clustered=clustered)
    queries = unit_vectors(args.queries, args.dim, seed=1, clustered=clustered)
    path = os.path.join(folder, f"idx-{size}")
    print(f"\n== {size:,} {args.data} {args.dim}-d vectors, {args.queries} queries, "
          f"{faiss.omp_get_max_threads()} threads ==", flush=True)
    bench_kernels(vectors, args)
    if args.kernels_only:
        return

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
    parser.add_argument("--kernels-only", action="store_true", help="only the exact-search kernels (no index)")
    parser.add_argument("--old-rev", default=None, help="git revision whose exact search to time beside (e.g. HEAD~1)")
    parser.add_argument("--repeats", type=int, default=9, help="timed runs per kernel and batch size (median)")
    parser.add_argument("--dir", default=None, help="where to build the indexes (default: a temporary folder)")
    args = parser.parse_args()
    print(cpu_line(), flush=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for size in args.sizes:
            bench(size, args, folder)


if __name__ == "__main__":
    main()
