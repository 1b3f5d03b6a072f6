"""Records and search hits as RFC 7946 GeoJSON, the form GIS tools (QGIS, GeoPandas, GDAL) open directly.

A record's geometry is, best first: the chip's true 4-corner polygon that ingest keeps in ``extra["footprint"]``
(a reprojected UTM chip is a slightly rotated quadrilateral, not its lat/lon box), else its WGS84 ``footprint``
box, else its centre point, else ``null`` (valid GeoJSON: a feature without a location). Coordinates are
longitude, latitude (WGS84), exterior rings counterclockwise. A box that crosses the antimeridian
(``minlon > maxlon``) becomes a MultiPolygon cut at +-180 (RFC 7946 section 3.1.9); a stored polygon whose
longitudes leave [-180, 180] (a chip over the antimeridian) is replaced by that cut box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from geovec.index.records import Hit, Record

Geometry = dict[str, Any]


def _ring_area(ring: Sequence[Sequence[float]]) -> float:
    """Twice the signed area (shoelace): positive when the ring runs counterclockwise."""
    return sum(x1 * y2 - x2 * y1 for (x1, y1, *_), (x2, y2, *_) in pairwise(ring))


def _oriented(ring: list[list[float]], counterclockwise: bool) -> list[list[float]]:
    """The right-hand rule of RFC 7946: exterior rings counterclockwise, holes clockwise."""
    return ring if (_ring_area(ring) > 0) == counterclockwise else ring[::-1]


def _position(value: object) -> list[float] | None:
    """A lon/lat position inside WGS84's range, or None."""
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        return None
    try:
        lon, lat = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        return None
    return [lon, lat]


def _stored_polygon(value: object) -> Geometry | None:
    """``extra["footprint"]`` when it is a well-formed Polygon within [-180, 180]; None otherwise."""
    if not isinstance(value, dict) or value.get("type") != "Polygon" or not isinstance(value.get("coordinates"), list):
        return None
    rings = []
    for ring in value["coordinates"]:
        positions = [_position(p) for p in ring] if isinstance(ring, list) else [None]
        if len(positions) < 4 or None in positions or positions[0] != positions[-1]:
            return None
        rings.append(positions)
    if not rings:
        return None
    return {"type": "Polygon", "coordinates": [_oriented(ring, n == 0) for n, ring in enumerate(rings)]}  # type: ignore[arg-type]


def _box_ring(minlon: float, minlat: float, maxlon: float, maxlat: float) -> list[list[float]]:
    return [[minlon, minlat], [maxlon, minlat], [maxlon, maxlat], [minlon, maxlat], [minlon, minlat]]


def box_geometry(box: Sequence[float]) -> Geometry:
    """A (minlon, minlat, maxlon, maxlat) box as a Polygon, or a MultiPolygon cut at +-180 when it crosses it."""
    minlon, minlat, maxlon, maxlat = (float(v) for v in box)
    if minlon <= maxlon:
        return {"type": "Polygon", "coordinates": [_box_ring(minlon, minlat, maxlon, maxlat)]}
    return {"type": "MultiPolygon", "coordinates": [[_box_ring(minlon, minlat, 180.0, maxlat)],
                                                    [_box_ring(-180.0, minlat, maxlon, maxlat)]]}


def record_geometry(record: Record) -> Geometry | None:
    """The record's place as a GeoJSON geometry (see the module docstring for which one), or None."""
    polygon = _stored_polygon(record.extra.get("footprint")) if isinstance(record.extra, dict) else None
    if polygon is not None:
        return polygon
    if record.footprint is not None:
        return box_geometry(record.footprint)
    if record.lat is not None and record.lon is not None:
        return {"type": "Point", "coordinates": [float(record.lon), float(record.lat)]}
    return None


def captions_text(captions: Sequence[str]) -> str | None:
    """All captions as one string, for tools that show no lists (a QGIS label, a GeoPackage field)."""
    return "\n".join(captions) if captions else None


def hit_feature(hit: Hit, rank: int) -> dict[str, Any]:
    """One Feature: the record's geometry, its footprint box as the feature's ``bbox``, the hit as properties."""
    record = hit.record
    feature: dict[str, Any] = {"type": "Feature", "id": hit.id}
    if record.footprint is not None:
        feature["bbox"] = [float(v) for v in record.footprint]  # west > east when it crosses the antimeridian
    feature["geometry"] = record_geometry(record)
    feature["properties"] = {
        "id": hit.id, "rank": rank, "score": hit.score, "source": record.source, "captions": list(record.captions),
        "text": captions_text(record.captions), "lat": record.lat, "lon": record.lon,
        "pixel_box": None if record.bbox is None else list(record.bbox), "extra": dict(record.extra)}
    return feature


def hits_feature_collection(hits: Sequence[Hit], query: dict[str, Any] | None = None) -> dict[str, Any]:
    """A FeatureCollection of hits, best first (``rank`` from 1), with the query as a top-level member."""
    collection: dict[str, Any] = {"type": "FeatureCollection"}
    if query is not None:
        collection["query"] = query  # a foreign member (RFC 7946 section 6.1): readers keep or ignore it
    collection["features"] = [hit_feature(hit, rank) for rank, hit in enumerate(hits, start=1)]
    return collection
