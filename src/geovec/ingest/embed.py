"""``geovec embed``: a JSONL file of inputs -> an ``.npy`` matrix, resumable chunk by chunk.

Embeddings are written in chunks to ``<output>.partial/`` (each chunk file written to a temporary name and
renamed, so a crash never leaves a half chunk); a rerun with the same inputs and model reuses finished chunks.
The final matrix is also written atomically, and the partial folder removed.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np

from geovec.errors import GeovecError, GeovecInputError
from geovec.fileio import save_npy_atomic, write_text_atomic
from geovec.ingest.jsonl import iter_jsonl
from geovec.inputs import Interleaved, as_input
from geovec.models.base import Embedder, model_identity
from geovec.progress import progress_bar

CHUNK_SIZE = 1024


def read_inputs_jsonl(path: Path, instruction: str | None = None) -> list[Interleaved]:
    """Each line is a JSON string (text) or an interleaved object; errors name the line."""
    inputs = []
    for where, data in iter_jsonl(path, "inputs"):
        try:
            inputs.append(as_input(data if isinstance(data, str) else Interleaved.from_dict(data), instruction))
        except GeovecInputError as exc:
            raise GeovecInputError(f"{where}: {exc.field}", exc.problem) from None
    if not inputs:
        raise GeovecError(f"{path}: no inputs")
    return inputs


def embed_jsonl(inputs_path: Path, output: Path, embedder: Embedder, batch_size: int = 64,
                instruction: str | None = None, show_progress: bool = True) -> np.ndarray:
    inputs = read_inputs_jsonl(Path(inputs_path), instruction)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    keys = "\n".join(item.cache_key() for item in inputs)
    job = hashlib.sha256((keys + model_identity(embedder)).encode()).hexdigest()
    partial = output.with_name(output.name + ".partial")
    if partial.exists() and (partial / "job.txt").is_file() and (partial / "job.txt").read_text() != job:
        shutil.rmtree(partial)  # stale: other inputs or model
    partial.mkdir(exist_ok=True)
    write_text_atomic(partial / "job.txt", job)
    chunks = []
    with progress_bar(len(inputs), f"embedding with {embedder.name}", enabled=show_progress) as bar:
        for number, start in enumerate(range(0, len(inputs), CHUNK_SIZE)):
            chunk_path = partial / f"chunk-{number:06d}.npy"
            batch = inputs[start:start + CHUNK_SIZE]
            if not chunk_path.is_file():
                save_npy_atomic(chunk_path, embedder.encode(batch, batch_size=batch_size))
            chunks.append(np.load(chunk_path))
            bar.advance(len(batch))
    matrix = np.concatenate(chunks).astype(np.float32, copy=False)
    save_npy_atomic(output, matrix)
    shutil.rmtree(partial)
    return matrix
