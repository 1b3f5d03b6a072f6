"""Geographic filters on an item's WGS84 centre point.

A filter is evaluated in two steps: SQLite narrows the items with a lat/lon bounding rectangle (cheap, uses the
``(lat, lon)`` index and may let through a few items too many), then ``mask`` applies the exact test (point in box,
haversine distance) to what is left. Items without coordinates never match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geovec.errors import GeovecInputError

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
_BOX_MARGIN_DEG = 1e-6  # widens SQL prefilter boxes so float rounding never drops a point on the circle's edge

Box = tuple[float, float, float, float]  # minlon, minlat, maxlon, maxlat; minlon > maxlon crosses the antimeridian


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km; works on floats and numpy arrays alike."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _numbers(field: str, values, count: int) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise GeovecInputError(field, f"expected {count} numbers, got {values!r}") from None
    if len(numbers) != count:
        raise GeovecInputError(field, f"expected {count} numbers, got {len(numbers)}")
    if not all(math.isfinite(v) for v in numbers):
        raise GeovecInputError(field, f"numbers must be finite, got {values!r}")
    return numbers


def check_lat_lon(field: str, lat: float, lon: float) -> None:
    """Raise a ``GeovecInputError`` naming ``field`` unless lat/lon are valid WGS84 degrees."""
    if not -90 <= lat <= 90:
        raise GeovecInputError(field, f"latitude {lat:g} is outside [-90, 90]")
    if not -180 <= lon <= 180:
        raise GeovecInputError(field, f"longitude {lon:g} is outside [-180, 180]")


def check_box(field: str, values) -> Box:
    """A validated (minlon, minlat, maxlon, maxlat) box; minlon > maxlon is allowed and crosses the antimeridian."""
    minlon, minlat, maxlon, maxlat = _numbers(field, values, 4)
    check_lat_lon(field, minlat, minlon)
    check_lat_lon(field, maxlat, maxlon)
    if minlat > maxlat:
        raise GeovecInputError(field, f"minimum latitude {minlat:g} is greater than maximum latitude {maxlat:g}")
    return minlon, minlat, maxlon, maxlat


def _in_box(box: Box, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    minlon, minlat, maxlon, maxlat = box
    in_lon = (lons >= minlon) & (lons <= maxlon) if minlon <= maxlon else (lons >= minlon) | (lons <= maxlon)
    return (lats >= minlat) & (lats <= maxlat) & in_lon


def _box_sql(box: Box) -> tuple[str, list[float]]:
    minlon, minlat, maxlon, maxlat = box
    lon_sql = "lon BETWEEN ? AND ?" if minlon <= maxlon else "(lon >= ? OR lon <= ?)"
    return f"lat BETWEEN ? AND ? AND {lon_sql}", [minlat, maxlat, minlon, maxlon]


def _circle_box(lat: float, lon: float, radius_km: float) -> Box:
    """Smallest lat/lon rectangle holding a spherical cap (Matuschek's bounding coordinates)."""
    angle = radius_km / EARTH_RADIUS_KM
    dlat = math.degrees(angle) + _BOX_MARGIN_DEG
    minlat, maxlat = lat - dlat, lat + dlat
    if minlat <= -90 or maxlat >= 90:  # a pole is inside: every longitude can match
        return -180.0, max(minlat, -90.0), 180.0, min(maxlat, 90.0)
    ratio = math.sin(angle) / math.cos(math.radians(lat))
    if ratio >= 1:
        return -180.0, minlat, 180.0, maxlat
    dlon = math.degrees(math.asin(ratio)) + _BOX_MARGIN_DEG
    minlon, maxlon = lon - dlon, lon + dlon
    return (minlon + 360 if minlon < -180 else minlon), minlat, (maxlon - 360 if maxlon > 180 else maxlon), maxlat


@dataclass(frozen=True)
class GeoFilter:
    """Keep items whose lat/lon lies ``within`` a box and/or within ``radius_km`` of ``near`` (lat, lon).

    ``within`` is (minlon, minlat, maxlon, maxlat), GeoJSON bbox order; minlon > maxlon means the box crosses the
    antimeridian. Both conditions must hold when both are given.
    """

    within: Box | None = None
    near: tuple[float, float] | None = None
    radius_km: float | None = None

    def __post_init__(self) -> None:
        if (self.near is None) != (self.radius_km is None):
            raise GeovecInputError("filter.radius_km", "`near` and `radius_km` go together")
        if self.within is None and self.near is None:
            raise GeovecInputError("filter", "give `within` (a box) and/or `near` with `radius_km`")
        if self.within is not None:
            object.__setattr__(self, "within", check_box("filter.within", self.within))
        if self.near is not None:
            lat, lon = _numbers("filter.near", self.near, 2)
            check_lat_lon("filter.near", lat, lon)
            (radius,) = _numbers("filter.radius_km", [self.radius_km], 1)
            if radius <= 0:
                raise GeovecInputError("filter.radius_km", f"radius must be > 0 km, got {radius:g}")
            object.__setattr__(self, "near", (lat, lon))
            object.__setattr__(self, "radius_km", radius)

    def prefilter_boxes(self) -> list[Box]:
        """Rectangles every matching point lies in (all must hold); a superset test for the SQL prefilter."""
        boxes = [self.within] if self.within is not None else []
        if self.near is not None:
            boxes.append(_circle_box(*self.near, self.radius_km))
        return boxes

    def sql(self) -> tuple[str, list[float]]:
        """A WHERE clause on columns ``lat``/``lon`` (with its parameters) that every matching item satisfies."""
        parts = [_box_sql(box) for box in self.prefilter_boxes()]
        return " AND ".join(f"({clause})" for clause, _ in parts), [p for _, params in parts for p in params]

    def mask(self, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
        """The exact test for many points at once; NaN coordinates (items without a location) never match."""
        lats, lons = np.asarray(lats, dtype=np.float64), np.asarray(lons, dtype=np.float64)
        keep = np.isfinite(lats) & np.isfinite(lons)
        if self.within is not None:
            keep &= _in_box(self.within, lats, lons)
        if self.near is not None:
            keep &= haversine_km(*self.near, lats, lons) <= self.radius_km
        return keep

    def matches(self, lat: float | None, lon: float | None) -> bool:
        if lat is None or lon is None:
            return False
        return bool(self.mask(np.array([lat]), np.array([lon]))[0])
