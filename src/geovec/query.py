"""Searching an index: one implementation behind the Python API, the CLI and the web server.

A ``SearchRequest`` is what a user asks (text, an example image, a region of it, a place, an area filter); it is
validated once, here, so every front end reports the same clear errors. ``Searcher`` keeps the index and the
model that built it open, so repeated queries (a web server) pay for loading once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from geovec.errors import GeovecInputError
from geovec.index import ChromaIndex, GeoFilter, Hit, VectorIndex
from geovec.index.chroma import is_chroma_url
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment
from geovec.models import load_model
from geovec.models.base import Embedder
from geovec.t2t.search import DescriptionSearch, check_text_query, is_description_index

MAX_TOP_K = 1000


def open_index(location: str | Path) -> VectorIndex | ChromaIndex:
    """An index folder, or ``chroma://HOST:PORT/COLLECTION`` for a collection on a Chroma server."""
    return ChromaIndex.open(location) if is_chroma_url(location) else VectorIndex.open(location)


def parse_numbers(field: str, text: str | None, count: int) -> tuple[float, ...] | None:
    """``"x1,y1,x2,y2"`` (a CLI option or form field) as ``count`` numbers; empty or ``None`` means absent."""
    if text is None or not text.strip():
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise GeovecInputError(field, f"expected {count} comma-separated numbers, got {text!r}") from None
    if len(values) != count:
        raise GeovecInputError(field, f"expected {count} comma-separated numbers, got {len(values)} in {text!r}")
    return values


@dataclass(frozen=True)
class SearchRequest:
    """A query and its filters. ``image`` is a path, PIL image or array; ``box`` is a pixel box on it."""

    text: str | None = None
    image: Any = None
    box: tuple[float, float, float, float] | None = None
    point: tuple[float, float] | None = None  # (lat, lon) as part of the query
    within: tuple[float, float, float, float] | None = None  # (min_lon, min_lat, max_lon, max_lat) filter
    near: tuple[float, float] | None = None  # (lat, lon) filter centre
    radius_km: float | None = None
    top_k: int = 10
    instruction: str | None = None
    exact: bool = False

    def query(self) -> Interleaved:
        """The interleaved input to embed: image, its box, the place, then the text."""
        segments: list = []
        if self.image is not None:
            segments.append(self.image if isinstance(self.image, ImageSegment) else ImageSegment(self.image))
        if self.box is not None:
            if self.image is None:
                raise GeovecInputError("box", "needs an image: a box is a region of the query image")
            segments.append(BoxSegment(tuple(self.box), "pixel"))  # type: ignore[arg-type]
        if self.point is not None:
            segments.append(PointSegment(*self.point))
        if self.text is not None:
            if not self.text.strip():
                raise GeovecInputError("text", "empty query text")
            segments.append(TextSegment(self.text))
        if not segments:
            raise GeovecInputError("query", "empty query: give text, an image (with an optional box) or a point")
        return Interleaved(tuple(segments), self.instruction)

    def geo_filter(self) -> GeoFilter | None:
        if self.near is None and self.within is None and self.radius_km is None:
            return None
        return GeoFilter(within=self.within, near=self.near, radius_km=self.radius_km)

    def check(self) -> None:
        if not 1 <= self.top_k <= MAX_TOP_K:
            raise GeovecInputError("top_k", f"must be between 1 and {MAX_TOP_K}, got {self.top_k}")


@dataclass
class SearchResult:
    hits: list[Hit]
    elapsed_ms: float
    request: SearchRequest = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"results": [hit.to_dict() for hit in self.hits], "elapsed_ms": round(self.elapsed_ms, 2)}


class Searcher:
    """An open index (see ``open_index``) plus the embedder it was built with (or ``embedder`` to override).

    A description index (``geovec.t2t.search``) answers with images, each scored by its best description.
    """

    def __init__(self, index: str | Path, embedder: Embedder | None = None, model_path: str | Path | None = None):
        self.store = open_index(index)
        recorded = self.store.model or {}
        self.embedder = embedder or load_model(recorded.get("name", "minilm"), model_path or recorded.get("path"))
        self.query_instruction: str | None = recorded.get("query_instruction")
        self.item_instruction: str | None = recorded.get("item_instruction")
        self.descriptions = DescriptionSearch(self.store) if is_description_index(recorded) else None
        self._lock = threading.Lock()  # the SQLite connection and torch model are used one query at a time

    def search(self, request: SearchRequest) -> SearchResult:
        request.check()
        if self.descriptions is not None:
            check_text_query(request)
        if request.instruction is None:
            # An example-image query is embedded like the indexed images; a text or place query as a query.
            default = self.item_instruction if request.image is not None else self.query_instruction
            if default:
                request = replace(request, instruction=default)
        query, geo = request.query(), request.geo_filter()
        started = time.perf_counter()
        with self._lock:
            vector = self.embedder.encode([query])[0]
            search = self.store.search if self.descriptions is None else self.descriptions.search
            hits = search(vector, request.top_k, filter=geo, exact=True if request.exact else None)
        return SearchResult(hits, (time.perf_counter() - started) * 1000, request)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Searcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
