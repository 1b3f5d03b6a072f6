"""RSICD text-to-image retrieval of the shipped geovec-mini with each query pass: which passes "auto" may choose.

    python scripts/query_pass_quality.py [--data /work/shared/data]

The rsicd-retrieval task (AMFMN test split: 1,093 images x 5 captions, the task's own instructions): the images
embedded once, in float32 by the normal path (transformers/float32); the captions (the queries of text-to-image
retrieval) embedded with each pass the model runs. Writes every pass's scores to
``results/query_pass_quality.json`` and its t2i mR to ``geovec/models/query_pass_quality.json``, which
``geovec.models.query_pass.admissible`` reads: a pass more than ``MAX_MR_LOSS`` below transformers/float32 is never
chosen by "auto".
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from geovec.bench.metrics import retrieval_scores
from geovec.bench.tasks import get_task
from geovec.config import data_dir
from geovec.index.kernels import cpu_line
from geovec.models import load_model
from geovec.models.base import Embedder, weights_identity
from geovec.models.query_pass import AS_TRAINED, MAX_MR_LOSS, QUALITY_FILE, admissible

RESULTS = Path(__file__).resolve().parents[1] / "results" / "query_pass_quality.json"
TASK = "rsicd-retrieval"


def task_data(root: Path | None) -> tuple[Any, Any]:
    """The rsicd-retrieval task's metadata and its test split."""
    task = get_task(TASK)
    return task.metadata, task.load(root or data_dir())


def image_vectors(embedder: Embedder, meta: Any, data: Any) -> np.ndarray:
    """The test images, embedded once in float32 by the normal path."""
    started = time.perf_counter()
    images = embedder.encode(list(data.images), instruction=meta.query_instruction, show_progress=True)
    print(f"{len(images)} images in {time.perf_counter() - started:.0f} s ({embedder.query_pass})", flush=True)
    return images


def score(label: str, embedder: Embedder, images: np.ndarray, meta: Any, data: Any) -> dict[str, Any]:
    """The captions embedded by ``embedder`` against ``images``: t2i mR, mR, every recall, seconds taken."""
    started = time.perf_counter()
    texts = embedder.encode(list(data.texts), instruction=meta.candidate_instruction)
    seconds = time.perf_counter() - started
    scores = retrieval_scores(images @ texts.T, data.text_image)
    print(f"{label}: t2i mR {scores['t2i_mean']:.2f}, mR {scores['mean_recall']:.2f} ({seconds:.0f} s)", flush=True)
    return {"t2i_mR": round(scores["t2i_mean"], 3), "mR": round(scores["mean_recall"], 3),
            "scores": {k: round(v, 3) for k, v in scores.items()}, "captions_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="the shared data folder (default: GEOVEC_DATA)")
    args = parser.parse_args()
    meta, data = task_data(args.data)
    mini = load_model("geovec-mini")
    identity = weights_identity(mini)
    images = image_vectors(mini, meta, data)
    passes = {str(p): score(str(p), mini.with_query_pass(p), images, meta, data) for p in mini.query_passes()}
    quality = {name: entry["t2i_mR"] for name, entry in passes.items()}
    chosen = [str(p) for p in admissible(mini.query_passes(), quality)]
    record = {"model": identity, "task": TASK, "images": len(data.images), "captions": len(data.texts),
              "reference": str(AS_TRAINED), "max_t2i_mR_loss": MAX_MR_LOSS, "admissible": chosen,
              "machine": cpu_line(), "passes": passes}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    shipped = json.loads(QUALITY_FILE.read_text()) if QUALITY_FILE.is_file() else {}
    shipped[identity] = {"task": TASK, "t2i_mR": quality, "source": "scripts/query_pass_quality.py"}
    QUALITY_FILE.write_text(json.dumps(shipped, indent=2, sort_keys=True) + "\n")
    print(f"admissible: {', '.join(chosen)}; wrote {RESULTS} and {QUALITY_FILE}")


if __name__ == "__main__":
    main()
