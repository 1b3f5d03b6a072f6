"""Text-to-text retrieval latency: one query against 10k and 100k descriptions (5 per image), per aggregation.

Two consumers: the benchmark's ``DescriptionIndex`` (per-image sums built once, build time printed; every image
scored), and ``geovec search`` on a description index (``geovec.t2t.search``: a folder index, top 10 images by
their best description). Latencies are per query.

    python benchmarks/bench_t2t.py [--sizes 10000 100000] [--dim 384] [--repeats 20]

Vectors are seeded random unit vectors (the embedding is not timed). The references, in the same process, are the
bare similarity product ``query @ descriptions.T`` and the same folder index searched for its top 10 descriptions
without grouping, so the ratios show what aggregation and grouping add.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from geovec.index import Record, VectorIndex
from geovec.t2t import AGGREGATIONS, DescriptionIndex
from geovec.t2t.search import DESCRIPTIONS, REPRESENTS, DescriptionSearch, description_id


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
        search_description_index(descriptions, owner, query[0], args.repeats)


def search_description_index(descriptions: np.ndarray, owner: np.ndarray, query: np.ndarray, repeats: int) -> None:
    """Top 10 images from a folder description index against its top 10 descriptions, ungrouped."""
    with tempfile.TemporaryDirectory() as folder:
        store = VectorIndex.create(folder, descriptions.shape[1], model={"name": "minilm", REPRESENTS: DESCRIPTIONS})
        seen: dict[int, int] = {}
        records = []
        for image in owner.tolist():
            n = seen[image] = seen.get(image, -1) + 1
            records.append(Record(description_id(f"img{image}", n), extra={"image_id": f"img{image}"}))
        store.add(records, descriptions)
        images = DescriptionSearch(store)
        images.search(query, 10)  # warm: loads the vector cache and counts descriptions per image once
        flat = best_of(repeats, lambda: store.search(query, k=10))
        grouped = best_of(repeats, lambda: images.search(query, 10))
        print(f"  description index: top 10 descriptions {flat:6.2f} ms, top 10 images {grouped:6.2f} ms "
              f"(ratio {grouped / flat:4.1f})")
        store.close()


if __name__ == "__main__":
    main()
