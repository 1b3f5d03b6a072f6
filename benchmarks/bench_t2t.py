"""Text-to-text retrieval latency: one query against 10k and 100k descriptions (5 per image), per aggregation.

The ``DescriptionIndex`` (per-image sums) is built once per corpus and its build time printed; latencies are
per query against it.

    python benchmarks/bench_t2t.py [--sizes 10000 100000] [--dim 384] [--repeats 20]

Vectors are seeded random unit vectors (the embedding is not timed). The reference is the bare similarity
product ``query @ descriptions.T`` in the same process, so the ratio shows what aggregation adds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from geovec.t2t import AGGREGATIONS, DescriptionIndex


def best_of(repeats: int, run) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for size in args.sizes:
        descriptions = rng.standard_normal((size, args.dim), dtype=np.float32)
        descriptions /= np.linalg.norm(descriptions, axis=1, keepdims=True)
        owner = np.arange(size) // 5
        query = descriptions[:1].copy()
        started = time.perf_counter()
        index = DescriptionIndex(descriptions, owner, size // 5)
        build = (time.perf_counter() - started) * 1000
        reference = best_of(args.repeats, lambda: query @ descriptions.T)
        print(f"{size:,} descriptions ({size // 5:,} images): index built once in {build:.1f} ms; 1 query: "
              f"bare similarity {reference:.2f} ms")
        for aggregation in AGGREGATIONS:
            ms = best_of(args.repeats, lambda: index.scores(query, aggregation))
            print(f"  {aggregation:9s} {ms:8.2f} ms  (ratio to bare similarity {ms / reference:5.1f})")


if __name__ == "__main__":
    main()
