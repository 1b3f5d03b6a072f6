"""geovec-mini's query embedding, as a server's batch share: transformers' BertModel pass vs the lean inference pass,
with the instruction attended by and attending to the query (full attention) and isolated (computed once).

    python benchmarks/bench_query_pass.py [--share 4] [--shares 16] [--rounds 6]

Shares of ``--share`` queries, each with the index's default query instruction, in the precision of the query
pass "auto" chooses here (``geovec.models.query_pass``), on one thread (what each serving process uses). Two query
sets: bench_web's uniform synthetic texts and real RSICD test captions, whose mixed lengths pad a share. Three passes of the shipped weights in the same
process, rounds interleaved, the median per share: transformers (``BertModel``, as training runs it) with full
attention, the lean pass with full attention (how geovec-mini 2 was served) and the lean pass with the isolated
instruction (``isolated_instruction``, how it is served now: the instruction's states come from its cache). Each is
also given as a ratio to transformers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_web import distinct_queries  # noqa: E402

from geovec.config import data_dir  # noqa: E402
from geovec.datasets import read_caption_split  # noqa: E402
from geovec.models import load_model  # noqa: E402
from geovec.models.registry import get_spec  # noqa: E402
from geovec.search_request import SearchRequest  # noqa: E402
from geovec.threads import use_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--share", type=int, default=4, help="queries a process embeds at once")
    parser.add_argument("--shares", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    use_threads(1)
    instruction = get_spec("geovec-mini").query_instruction  # what an index of it records for text queries
    embedder = load_model("geovec-mini").with_precision("auto", instruction=instruction)
    precision = embedder.precision
    rng = np.random.default_rng(0)
    synthetic = distinct_queries()
    captions = [c for image in read_caption_split(data_dir() / "rs_caption_splits", "rsicd", "test")
                for c in image.captions if c.strip()]
    sets = {"uniform synthetic": [next(synthetic) for _ in range(args.share * args.shares)],
            "RSICD test captions": list(rng.choice(captions, args.share * args.shares))}
    encoder = embedder.encoder
    shipped = encoder.settings.isolated_instruction

    def transformers_pass(batch: dict) -> None:
        with torch.inference_mode(), embedder.autocast():
            encoder(batch, query_pass="transformers")

    def lean_pass(batch: dict) -> None:
        with torch.inference_mode(), embedder.autocast():
            encoder(batch, query_pass="lean")

    passes = {"transformers, full": (False, transformers_pass), "lean, full": (False, lean_pass),
              "lean, isolated (served)": (True, lean_pass)}
    print(f"geovec-mini, {precision}, 1 thread, shares of {args.share} queries with the instruction {instruction!r}")
    print(f"{'queries':<22}{'padding':>9}  " + "".join(f"{name:>24}" for name in passes))
    for name, texts in sets.items():
        items = [SearchRequest(text=text, instruction=instruction).query() for text in texts]
        batches = {}
        for isolated in (False, True):
            encoder.settings.isolated_instruction = isolated  # what prepare lays out for the forward pass
            batches[isolated] = [encoder.prepare(items[i:i + args.share]) for i in range(0, len(items), args.share)]
        encoder.settings.isolated_instruction = shipped
        full = batches[False]
        padding = 1 - sum(int(b["attention_mask"].sum()) for b in full) / sum(b["attention_mask"].numel()
                                                                               for b in full)
        times: dict[str, list[float]] = {label: [] for label in passes}
        for _ in range(args.rounds):
            for label, (isolated, run) in passes.items():
                run(batches[isolated][0])  # warm
                started = time.perf_counter()
                for batch in batches[isolated]:
                    run(batch)
                times[label].append((time.perf_counter() - started) / len(batches[isolated]) * 1000)
        reference = statistics.median(times["transformers, full"])
        cells = "".join(f"{statistics.median(t):>14.2f} ms ({reference / statistics.median(t):.2f}x)"
                        for t in times.values())
        print(f"{name:<22}{padding:>8.1%}  {cells}")


if __name__ == "__main__":
    main()
