"""The folder index's vectors in memory (``LiveVectors``) and their derived cache file ``vectors.npz``.

The cache holds the live vectors and their rowids at some generation, so reopening a large index reads one file
instead of every SQLite row. Since rowids only grow and a row's vector never changes, a cache made at an earlier
generation is brought up to date by applying newer tombstones and appending rows with larger rowids; a missing,
damaged or foreign (other index uuid) cache is rebuilt from SQLite.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from geovec.fileio import atomic_write
from geovec.index.record_store import RecordStore
from geovec.index.vectors import LiveVectors


class VectorCache:
    """``state`` is None until the first search loads it; ``sync`` keeps it at the database's generation."""

    def __init__(self, file: Path, dim: int, index_uuid: str) -> None:
        self.file, self.dim, self.uuid = file, dim, index_uuid
        self.state: LiveVectors | None = None
        self.saved_generation = -1  # the generation of the cache file on disk, as far as this process knows

    @property
    def unsaved(self) -> bool:
        """Whether this process brought the vectors past what the cache file holds."""
        return self.state is not None and self.state.generation != self.saved_generation

    def sync(self, records: RecordStore) -> LiveVectors:
        """Bring the in-memory vectors up to the database's generation (call inside a transaction)."""
        generation = records.generation()
        if self.state is None:
            self.state = self._load(generation)
        state = self.state
        if state.generation != generation:
            state.kill(records.deleted_since(state.generation))
            for rowids, vectors in records.vectors_after(state.max_rowid, self.dim):
                state.append(rowids, vectors)
            state.generation = generation
        return state

    def written(self, removed: list[int], added: tuple[np.ndarray, np.ndarray] | None, generation: int) -> None:
        """Apply a write this process committed (rows ``removed``, ``(rowids, vectors)`` added) if loaded."""
        if self.state is None:
            return
        self.state.kill(removed)
        if added is not None:
            self.state.append(*added)
        self.state.generation = generation

    def _load(self, generation: int) -> LiveVectors:
        try:
            with np.load(self.file, allow_pickle=False) as cache:
                cached, vectors = int(cache["generation"]), cache["vectors"]
                if str(cache["uuid"]) == self.uuid and cached <= generation and vectors.shape[1:] == (self.dim,):
                    self.saved_generation = cached
                    return LiveVectors(self.dim, cache["rowids"], vectors, cached)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # missing or damaged: rebuild from SQLite
        return LiveVectors(self.dim)

    def save(self) -> None:
        state = self.state
        assert state is not None, "save() before the vectors were loaded"
        keep = slice(None) if state.dead == 0 else state.live

        def write(temp: str) -> None:
            with open(temp, "wb") as out:
                np.savez(out, uuid=self.uuid, generation=state.generation,
                         rowids=state.rowids[keep], vectors=state.matrix[keep])

        atomic_write(self.file, write)
        self.saved_generation = state.generation
