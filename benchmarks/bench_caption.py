"""Captioning throughput (images/s) of ``geovec caption`` at batch sizes 1, 4 and 8, on real RSICD test images.

    python benchmarks/bench_caption.py [--images 16] [--variants 2] [--max-new-tokens 16] [--batch-sizes 1 4 8]

The model is a tiny randomly initialised Qwen2-VL (built as the tests build it, tests/caption/tiny_vlm.py), so the
absolute numbers say little about a real 2B model; the ratio to batch size 1 shows what batching buys the whole
pipeline (image decoding, preprocessing, generate, quality checks, journal fsyncs, corpus write). Random weights
rarely emit EOS, so every description runs to ``--max-new-tokens``: equal work at every batch size. Quality checks
other than "empty" are off and there are no re-asks, for the same reason.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from geovec.caption import caption_images, load_caption_model
from geovec.config import data_dir
from geovec.datasets import read_caption_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "caption"))
from tiny_vlm import build_qwen2_vl, build_tokenizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--variants", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    names = [r.filename for r in read_caption_split(data_dir() / "rs_caption_splits", "rsicd", "test")]
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        listing = root / "images.txt"
        listing.write_text("\n".join(str(data_dir() / "rsicd" / "images" / n) for n in names[:args.images]) + "\n")
        model = load_caption_model(build_qwen2_vl(root / "tiny-qwen2-vl", build_tokenizer(root)), args.device)

        def run(batch_size: int, limit: int | None = None) -> float:
            output = root / f"run-{time.perf_counter_ns()}.jsonl"
            started = time.perf_counter()
            report = caption_images(listing, model, output, variants=args.variants, batch_size=batch_size,
                                    max_new_tokens=args.max_new_tokens, retries=0, checks=("empty",), limit=limit,
                                    show_progress=False)
            seconds = time.perf_counter() - started
            assert report.images == (limit or args.images), report
            return seconds

        run(max(args.batch_sizes), limit=max(args.batch_sizes))  # warm-up
        best = {b: float("inf") for b in args.batch_sizes}
        for _ in range(args.repeats):  # interleaved repeats, best of each
            for batch_size in args.batch_sizes:
                best[batch_size] = min(best[batch_size], run(batch_size))
    print(f"tiny random Qwen2-VL, {args.images} RSICD test images x {args.variants} variants, "
          f"max_new_tokens {args.max_new_tokens}, {args.device}, {torch.get_num_threads()} torch threads")
    print(f"  {'batch':>5} {'images/s':>9} {'x batch 1':>9}")
    reference = best[args.batch_sizes[0]]
    for batch_size, seconds in best.items():
        print(f"  {batch_size:5d} {args.images / seconds:9.2f} {reference / seconds:9.2f}")


if __name__ == "__main__":
    main()
