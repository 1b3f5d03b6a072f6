"""RSMEB harness overhead (time outside the model) per 10k candidates, and the cache hit on a second run.

    python benchmarks/bench_harness.py [--queries 1000] [--candidates 10] [--model minilm]

A candidates task is built from real RSITMD captions (each query: a caption; candidates: its image's other caption
plus seeded distractors). Run 1 starts from an empty embedding cache, run 2 reuses it. Model time is measured
inside ``embed_batch``; everything else (input hashing, de-duplication, cache I/O, scoring) is harness overhead.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from geovec.bench.evaluate import evaluate_data
from geovec.bench.task import TaskMetadata
from geovec.config import data_dir
from geovec.datasets import CandidateQuery, read_caption_split
from geovec.inputs import as_input
from geovec.models import load_model
from geovec.models.cache import EmbeddingCache


def build_task(queries: int, candidates: int) -> list[CandidateQuery]:
    images = [i for i in read_caption_split(data_dir() / "rs_caption_splits", "rsitmd", "train")
              if sum(bool(c.strip()) for c in i.captions) >= 2]
    rng = np.random.default_rng(0)
    out = []
    for n, index in enumerate(rng.choice(len(images), queries, replace=False)):
        own = [c for c in images[index].captions if c.strip()]
        others = rng.choice(len(images), candidates - 1, replace=False)
        pool = [own[1]] + [next(c for c in images[o].captions if c.strip()) for o in others if o != index]
        out.append(CandidateQuery(f"q{n}", as_input(own[0]), tuple(as_input(c) for c in pool), frozenset({0})))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--model", default="minilm")
    args = parser.parse_args()
    data = build_task(args.queries, args.candidates)
    slots = sum(len(q.candidates) for q in data)
    meta = TaskMetadata(name="bench-harness", category="cross-modal-retrieval", description="", dataset="RSITMD",
                        split="train", data_path="", query_kinds=("text",), candidate_kinds=("text",),
                        protocol="candidates")
    embedder = load_model(args.model)
    model_seconds = 0.0
    inner = embedder.embed_batch

    def timed(items):
        nonlocal model_seconds
        started = time.perf_counter()
        try:
            return inner(items)
        finally:
            model_seconds += time.perf_counter() - started

    embedder.embed_batch = timed  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as folder:
        cache = EmbeddingCache(Path(folder) / "cache.sqlite")
        print(f"{len(data)} queries x {args.candidates} candidates = {slots} candidate slots, model {args.model}")
        for run in (1, 2):
            model_seconds = 0.0
            started = time.perf_counter()
            outcome = evaluate_data(meta, data, embedder, cache, batch_size=64)
            total = time.perf_counter() - started
            overhead = total - model_seconds
            print(f"run {run}: total {total:7.2f} s, in model {model_seconds:7.2f} s, harness overhead "
                  f"{overhead:5.2f} s = {overhead / slots * 10_000:5.2f} s per 10k candidates; cache hits "
                  f"{outcome.cache['hits']}, misses {outcome.cache['misses']}; P@1 {outcome.scores['precision_at_1']:.1f}")
        cache.close()


if __name__ == "__main__":
    main()
