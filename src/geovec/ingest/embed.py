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
from geovec.fileio import save_npy_atomic, write_error, write_text_atomic
from geovec.ingest.jsonl import iter_jsonl
from geovec.inputs import Interleaved, as_input
from geovec.models.base import Embedder, check_windows, model_identity
from geovec.progress import progress_bar

CHUNK_SIZE = 1024


def read_inputs_jsonl(path: Path, instruction: str | None = None) -> list[tuple[str, Interleaved]]:
    """``(FILE:LINE, input)`` for each line, a JSON string (text) or an interleaved object; errors name the line."""
    inputs = []
    for where, data in iter_jsonl(path, "inputs"):
        try:
            value = data if isinstance(data, str) else Interleaved.from_dict(data)
            inputs.append((where, as_input(value, instruction)))
        except GeovecInputError as exc:
            raise GeovecInputError(f"{where}: {exc.field}", exc.problem) from None
    if not inputs:
        raise GeovecError(f"{path}: no inputs")
    return inputs


def _check_output(output: Path) -> None:
    """Refused before any embedding is computed, so a typo costs nothing."""
    if output.is_dir():
        raise GeovecInputError("--output", f"{output} is a folder; give the path of the .npy file to write, e.g. "
                                           f"{output / 'embeddings.npy'}")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(output.parent, exc) from None


def _partial_folder(output: Path, job: str) -> Path:
    """``<output>.partial``, holding the finished chunks of this very job (another job's are removed)."""
    partial = output.with_name(output.name + ".partial")
    try:
        if partial.exists() and (partial / "job.txt").is_file() and (partial / "job.txt").read_text() != job:
            shutil.rmtree(partial)  # stale: other inputs or model
        partial.mkdir(exist_ok=True)
    except OSError as exc:
        raise write_error(partial, exc) from None
    write_text_atomic(partial / "job.txt", job)
    return partial


def embed_jsonl(inputs_path: Path, output: Path, embedder: Embedder, batch_size: int = 64,
                instruction: str | None = None, show_progress: bool = True,
                truncate: bool = False) -> tuple[np.ndarray, int]:
    """The (n, dim) matrix of the file's inputs, also written to ``output``; and how many texts were cut at the
    model's window (only with ``truncate``: otherwise such a text is refused naming its line)."""
    located = read_inputs_jsonl(Path(inputs_path), instruction)
    output = Path(output)
    _check_output(output)
    truncated = check_windows(embedder, located, truncate)
    inputs = [item for _, item in located]
    keys = "\n".join(item.cache_key() for item in inputs)
    partial = _partial_folder(output, hashlib.sha256((keys + model_identity(embedder)).encode()).hexdigest())
    cut = {"truncate": True} if truncate else {}  # checked already; an Embedder need not know the option otherwise
    chunks = []
    with progress_bar(len(inputs), f"embedding with {embedder.name}", enabled=show_progress) as bar:
        for number, start in enumerate(range(0, len(inputs), CHUNK_SIZE)):
            chunk_path = partial / f"chunk-{number:06d}.npy"
            batch = inputs[start:start + CHUNK_SIZE]
            if not chunk_path.is_file():
                save_npy_atomic(chunk_path, embedder.encode(batch, batch_size=batch_size, **cut))
            chunks.append(np.load(chunk_path))
            bar.advance(len(batch))
    matrix = np.concatenate(chunks).astype(np.float32, copy=False)
    save_npy_atomic(output, matrix)
    shutil.rmtree(partial)
    return matrix, truncated
