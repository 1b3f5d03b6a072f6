"""Throughput and peak memory of any saved geovec encoder (vlm2geovec, geovec-mini, ...) on text and image inputs.

    python benchmarks/bench_encoder.py [--model-path ENCODER_FOLDER ...] [--device cuda] [--batch-sizes 1 8 32]
    python benchmarks/bench_encoder.py --model-path OLD_SHIPPED_FOLDER embedded   # old vs new geovec-mini

A folder is loaded with ``load_encoder`` (every registered architecture), or with ``load_embedded`` when it holds
a shipped geovec-mini delta; ``embedded`` names the geovec-mini inside this install. With several models, each is
measured in a fresh subprocess (so peak memory is its own) and the table gives each one's rate as a ratio to the
first. Without ``--model-path`` a tiny randomly initialised Qwen2-VL (real patch and merge sizes, so image token counts match the
real model's) is built in a temporary folder and wrapped as a vlm2geovec encoder: that measures the pipeline's
overhead, not a real model's speed. Texts are real RSITMD captions when the shared data is present; images are
random ``--image-size`` squares (RSICD images are 224x224). Timings include ``prepare`` (tokenising, image
processing), which is part of what a user waits for. Peak memory is the process's max RSS on CPU and
``torch.cuda.max_memory_allocated`` per configuration on GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from geovec.config import data_dir
from geovec.fileio import write_text_atomic
from geovec.inputs import ImageSegment, Interleaved, TextSegment
from geovec.models.trainable import TrainableEncoder, load_encoder

FALLBACK_TEXTS = ["many buildings and green trees are around a playground", "a bridge crosses a wide river",
                  "several planes are parked near the terminal of an airport", "a storage tank farm beside a port"]


def build_tiny_vlm(folder: Path) -> Path:
    """A random Qwen2-VL (hidden 64, 2 layers, vision depth 2, patch 14, merge 2) saved as a vlm2geovec encoder."""
    from transformers import (
        Qwen2Tokenizer,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
    )
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    from geovec.models.vlm import VLMEncoder

    special = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(bytes_to_unicode().values())}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = Qwen2Tokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.add_special_tokens({"additional_special_tokens": special, "eos_token": "<|im_end|>"})
    ids = tokenizer.convert_tokens_to_ids(special)
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         rope_scaling={"type": "mrope", "mrope_section": [4, 2, 2]}),
        vision_config=dict(depth=2, embed_dim=64, hidden_size=64, num_heads=4, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        vision_start_token_id=ids[2], vision_end_token_id=ids[3], image_token_id=ids[4], video_token_id=ids[5])
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder / "base")
    tokenizer.save_pretrained(folder / "base")
    Qwen2VLImageProcessor().save_pretrained(folder / "base")
    return VLMEncoder.from_pretrained(folder / "base", device="cpu").save(folder / "encoder")


def make_inputs(kind: str, n: int, image_size: int) -> list[Interleaved]:
    """``n`` distinct inputs of one kind (distinct so no cache or de-duplication flatters the numbers)."""
    if kind == "text":
        try:
            from geovec.datasets import read_caption_split

            split = read_caption_split(data_dir() / "rs_caption_splits", "rsitmd", "test")
            texts = sorted({c for image in split for c in image.captions if c.strip()})
        except Exception:  # noqa: BLE001 - no shared data: fall back to fixed captions
            texts = FALLBACK_TEXTS
        return [Interleaved((TextSegment(f"{texts[i % len(texts)]} ({i})"),)) for i in range(n)]
    rng = np.random.default_rng(0)
    return [Interleaved((ImageSegment(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)),))
            for _ in range(n)]


def load_any(folder: str, device: str | None) -> TrainableEncoder:
    """A saved encoder folder, a shipped geovec-mini delta folder, or ``embedded`` (this install's geovec-mini)."""
    from geovec.models.mini import EMBEDDED, load_embedded
    from geovec.models.trainable import read_encoder_config

    if folder == "embedded":
        return load_embedded(EMBEDDED, device)
    if read_encoder_config(folder).get("weights") == "delta-float16":
        return load_embedded(folder, device)
    return load_encoder(folder, device)


def compare(args: argparse.Namespace) -> None:
    """Each model in its own subprocess, then one table of rates with ratios to the first model."""
    import subprocess
    import sys

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, folder in enumerate(args.model_path):
            out = Path(tmp) / f"{index}.json"
            command = [sys.executable, __file__, "--model-path", str(folder), "--json", str(out), "--batch-sizes",
                       *map(str, args.batch_sizes), "--batches", str(args.batches), "--image-size",
                       str(args.image_size), "--kinds", *args.kinds] + (["--device", args.device] if args.device else [])
            subprocess.run(command, check=True)
            results.append(json.loads(out.read_text()))
    reference = {(r["input"], r["batch_size"]): r["inputs_per_s"] for r in results[0]["rows"]}
    print(f"\n{'model':>40} {'input':>6} {'batch':>5} {'inputs/s':>10} {'x first':>8} {'peak MiB':>9}")
    for result in results:
        for row in result["rows"]:
            ratio = row["inputs_per_s"] / reference.get((row["input"], row["batch_size"]), float("nan"))
            print(f"{result['encoder'][-40:]:>40} {row['input']:>6} {row['batch_size']:>5} "
                  f"{row['inputs_per_s']:>10.1f} {ratio:>8.2f} {row['peak_mib']:>9.1f}")
    if args.json:
        write_text_atomic(args.json, json.dumps(results, indent=2))


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(encoder: TrainableEncoder, items: list[Interleaved], batch_size: int) -> float:
    """Inputs per second over ``items`` after the first batch, which warms up and is not timed."""
    sync = torch.cuda.synchronize if encoder.device.type == "cuda" else (lambda: None)
    timed = items[batch_size:]
    with torch.inference_mode():
        encoder.embed(items[:batch_size])
        sync()
        started = time.perf_counter()
        for start in range(0, len(timed), batch_size):
            encoder.embed(timed[start:start + batch_size])
        sync()
    return len(timed) / (time.perf_counter() - started)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", nargs="+", default=None,
                        help="saved encoder folders, shipped delta folders or 'embedded' (default: a tiny random "
                             "Qwen2-VL); several are compared, each in its own process")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: the encoder's own choice)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--batches", type=int, default=3, help="timed batches per configuration (at least 16 inputs)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--kinds", nargs="+", default=["text", "image"], choices=["text", "image"])
    parser.add_argument("--json", type=Path, help="also write the rows here (atomically)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.model_path and len(args.model_path) > 1:
        return compare(args)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model_path[0] if args.model_path else build_tiny_vlm(Path(tmp))
        encoder = load_any(str(folder), args.device).eval()
        device = encoder.device
        print(f"encoder {encoder.architecture} ({folder}), dim {encoder.dim}, {device_name(device)}, "
              f"dtype {next(encoder.parameters()).dtype}")
        print(f"{'input':>6} {'batch':>5} {'inputs/s':>10} {'peak MiB':>9}")
        rows = []
        for kind in args.kinds:
            if kind not in encoder.modalities:
                print(f"{kind:>6}  skipped: {encoder.architecture} does not embed {kind} inputs")
                continue
            for batch_size in args.batch_sizes:
                timed = max(args.batches, -(-16 // batch_size)) * batch_size
                items = make_inputs(kind, batch_size + timed, args.image_size)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                try:
                    rate = measure(encoder, items, batch_size)
                except torch.OutOfMemoryError:
                    print(f"{kind:>6} {batch_size:>5}  out of memory; larger batches skipped")
                    break
                rows.append({"input": kind, "batch_size": batch_size, "inputs_per_s": round(rate, 2),
                             "peak_mib": round(peak_memory_mib(device), 1)})
                print(f"{kind:>6} {batch_size:>5} {rate:>10.1f} {rows[-1]['peak_mib']:>9.1f}")
    if args.json:
        write_text_atomic(args.json, json.dumps({"encoder": str(folder), "architecture": encoder.architecture,
                                                 "device": device_name(device), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
