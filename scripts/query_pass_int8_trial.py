"""A trial, not a pass "auto" may choose: geovec-mini's BERT with torch's dynamic int8 linear layers, through the
query-pass protocol (speed: 1 and 8 typical queries with the search instruction, least of a few rounds, beside every
shipped pass; quality: RSICD t2i mR as ``scripts/query_pass_quality.py`` scores it).

    python scripts/query_pass_int8_trial.py [--data /work/shared/data]

Writes ``results/query_pass_int8_trial.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from query_pass_quality import image_vectors, score, task_data

from geovec.index.kernels import cpu_line
from geovec.models import load_model
from geovec.models.query_pass import measure_passes, timer
from geovec.models.registry import get_spec
from geovec.models.trainable import EncoderEmbedder

RESULTS = Path(__file__).resolve().parents[1] / "results" / "query_pass_int8_trial.json"
INT8 = "transformers/int8-dynamic"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    mini = load_model("geovec-mini")
    encoder = copy.deepcopy(mini.encoder)  # its own module: int8 layers replace the float32 ones in it
    torch.ao.quantization.quantize_dynamic(encoder.bert, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    int8 = EncoderEmbedder(encoder, mini.name, mini.revision)
    embedders = {**{str(p): mini.with_query_pass(p) for p in mini.query_passes()}, INT8: int8}
    instruction = get_spec("geovec-mini").query_instruction
    measure = timer(lambda label, texts: embedders[str(label)].encode(texts, batch_size=len(texts),
                                                                        instruction=instruction))
    timings = measure_passes(list(embedders), measure)  # labels: the int8 trial is no QueryPass
    print(cpu_line())
    for label, times in sorted(timings.items(), key=lambda item: sum(item[1].values())):
        print(f"{label}: {times['1']:.2f} ms (1 query), {times['8']:.2f} ms (8 queries)", flush=True)
    meta, data = task_data(args.data)
    images = image_vectors(mini, meta, data)
    quality = {label: score(label, embedders[label], images, meta, data) for label in ("transformers/float32", INT8)}
    record = {"model": f"{mini.name}@{mini.revision}", "machine": cpu_line(), "timings_ms": timings,
              "quality": quality, "note": "int8: torch.ao dynamic quantisation of every BERT Linear (per-tensor "
              "qint8 weights, activations quantised per batch); the vision tower stays float32"}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
