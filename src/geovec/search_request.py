"""What a user asks of an index, validated without loading any model or index.

Kept apart from ``geovec.query`` so the CLI can refuse a bad argument (a latitude of 95, a box without an image)
in a fraction of a second, before torch, FAISS or the index are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from pathlib import PurePath
from typing import Any

from geovec.errors import GeovecInputError
from geovec.index.filters import GeoFilter
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment, check_utf8

MAX_TOP_K = 1000
MAX_QUERY_CHARS = 10_000  # longer texts are refused before tokenizing; the model's token window is checked too


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

    def describe(self) -> dict[str, Any]:
        """What was asked, JSON-ready (an image as its path, or its type when it is in memory): what a saved
        result (a GeoJSON file) says about the query that made it."""
        image = self.image
        if image is not None and not isinstance(image, (str, PurePath)):
            image = f"<{type(image).__name__}>"
        fields = {"text": self.text, "image": None if image is None else str(image), "box": self.box,
                  "point": self.point, "within": self.within, "near": self.near, "radius_km": self.radius_km,
                  "top_k": self.top_k, "instruction": self.instruction, "exact": self.exact}
        return {name: list(value) if isinstance(value, tuple) else value for name, value in fields.items()}

    def geo_filter(self) -> GeoFilter | None:
        if self.near is None and self.within is None and self.radius_km is None:
            return None
        return GeoFilter(within=self.within, near=self.near, radius_km=self.radius_km)

    def check(self) -> None:
        """The checks every front end shares, done before a query joins a batch: one bad query must fail alone."""
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, Integral):
            raise GeovecInputError("top_k", f"must be a whole number between 1 and {MAX_TOP_K}, got {self.top_k!r}")
        if not 1 <= self.top_k <= MAX_TOP_K:
            raise GeovecInputError("top_k", f"must be between 1 and {MAX_TOP_K}, got {self.top_k}")
        if self.text is not None and len(self.text) > MAX_QUERY_CHARS:
            raise GeovecInputError("text", f"query text is {len(self.text):,} characters long; at most "
                                           f"{MAX_QUERY_CHARS:,} are accepted (no model reads more): shorten it")
        for name, text in (("text", self.text), ("instruction", self.instruction)):
            if text is not None:
                check_utf8(name, text)

    def validate(self) -> None:
        """Every check that needs no model: k, text length, the query's segments and the area filter."""
        self.check()
        self.query()
        self.geo_filter()
