"""MiniLM throughput through geovec's ``encode`` against sentence-transformers called directly (same process).

    python benchmarks/bench_minilm.py [--n 2048] [--batch-size 64] [--repeats 3]

Texts are real RSITMD test captions (distinct ones, so geovec's de-duplication does not flatter it). The ratio
geovec/direct shows the wrapper's overhead independently of the machine's speed.
"""

from __future__ import annotations

import argparse
import time

import torch

from geovec.config import data_dir
from geovec.datasets import read_caption_split
from geovec.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    captions = sorted({c for split in ("test", "train") for image in
                       read_caption_split(data_dir() / "rs_caption_splits", "rsitmd", split) for c in image.captions if c.strip()})
    texts = captions[: args.n]
    embedder = load_model("minilm")
    embedder.encode(texts[: args.batch_size])  # warm-up
    runs = {"direct sentence-transformers": lambda: embedder.model.encode(
                texts, batch_size=args.batch_size, normalize_embeddings=True),
            "geovec encode": lambda: embedder.encode(texts, batch_size=args.batch_size)}
    timings = {label: float("inf") for label in runs}
    for _ in range(args.repeats):  # interleaved repeats, best of each, so warm-up favours neither side
        for label, run in runs.items():
            started = time.perf_counter()
            run()
            timings[label] = min(timings[label], time.perf_counter() - started)
    print(f"MiniLM, {len(texts)} distinct RSITMD captions, batch {args.batch_size}, "
          f"{torch.get_num_threads()} torch threads")
    for label, seconds in timings.items():
        print(f"  {label:30s} {len(texts) / seconds:8.1f} texts/s")
    print(f"  ratio geovec/direct time: {timings['geovec encode'] / timings['direct sentence-transformers']:.3f}")


if __name__ == "__main__":
    main()
