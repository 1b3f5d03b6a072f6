"""On-disk embedding cache keyed by (model identity, input hash): a second benchmark run re-encodes nothing.

Shared by the benchmark, the T2T corpora and captioning (nearest-neighbour captions). Stored in SQLite; missing inputs are embedded in chunks and each chunk is committed, so an interrupted run keeps
what it finished. The model identity is ``name@revision``, where the revision changes whenever the weights do.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from geovec.config import home_dir
from geovec.inputs import Interleaved
from geovec.models.base import Embedder, model_identity

CHUNK = 2048


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


class EmbeddingCache:
    """Vectors of ``inputs`` per model identity; ``encode`` embeds only what is not stored yet."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, key TEXT NOT NULL, "
                         "vector BLOB NOT NULL, PRIMARY KEY (model, key))")
        self.stats = CacheStats()

    def close(self) -> None:
        self._db.close()

    def _lookup(self, model: str, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self._db.execute(f"SELECT key, vector FROM embeddings WHERE model = ? AND key IN "
                                    f"({','.join('?' * len(chunk))})", [model, *chunk])
            found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in rows)
        return found

    def encode(self, embedder: Embedder, inputs: Sequence[Interleaved], batch_size: int = 32,
               show_progress: bool = False, truncate: bool = False) -> np.ndarray:
        """Embeddings of ``inputs`` in order, computing only those not cached for this model (``truncate``: as in
        ``encode``, cut texts longer than the model's window instead of refusing them)."""
        model = model_identity(embedder)
        keys = [item.cache_key() for item in inputs]
        unique = list(dict.fromkeys(keys))
        vectors = self._lookup(model, unique)
        self.stats.hits += len(vectors)
        first_of = {key: position for position, key in reversed(list(enumerate(keys)))}
        missing = [key for key in unique if key not in vectors]
        self.stats.misses += len(missing)
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start:start + CHUNK]
            encoded = embedder.encode([inputs[first_of[key]] for key in chunk], batch_size=batch_size,
                                      show_progress=show_progress, truncate=truncate)
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                                     [(model, key, vector.astype(np.float32).tobytes())
                                      for key, vector in zip(chunk, encoded)])
            vectors.update(zip(chunk, encoded))
        if not keys:
            return np.zeros((0, embedder.dim), dtype=np.float32)
        return np.stack([vectors[key] for key in keys]).astype(np.float32, copy=False)


def default_cache() -> EmbeddingCache:
    """The cache every command shares: ``$GEOVEC_HOME/cache/embeddings.sqlite``."""
    return EmbeddingCache(home_dir() / "cache" / "embeddings.sqlite")
