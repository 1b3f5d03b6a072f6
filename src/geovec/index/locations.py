"""One way to open or create any index from where it is: a folder path, or ``chroma://HOST:PORT/COLLECTION``."""

from __future__ import annotations

from pathlib import Path

from geovec.index.base import VectorStore
from geovec.index.chroma import ChromaIndex, is_chroma_url
from geovec.index.store import VectorIndex


def open_index(location: str | Path) -> VectorStore:
    """An index folder, or ``chroma://HOST:PORT/COLLECTION`` for a collection on a Chroma server."""
    return ChromaIndex.open(location) if is_chroma_url(location) else VectorIndex.open(location)  # type: ignore[arg-type]


def create_index(location: str | Path, dim: int, *, model: dict | None = None, exist_ok: bool = False) -> VectorStore:
    """A new empty index for ``dim``-d vectors made by ``model``; ``exist_ok`` opens one already there instead."""
    if is_chroma_url(location):
        return ChromaIndex.create(location, dim, model=model, exist_ok=exist_ok)  # type: ignore[arg-type]
    return VectorIndex.create(location, dim, model=model, exist_ok=exist_ok)
