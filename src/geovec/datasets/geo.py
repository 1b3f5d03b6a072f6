"""Semantic geo-localization on geo-referenced GeoTIFF tiles: image -> its centre point, point -> its image.

Georeferencing is read from the GeoTIFF tags with PIL alone (ModelPixelScaleTag 33550, ModelTiepointTag 33922,
GeoKeyDirectoryTag 34735), so no GDAL stack is needed. EPSG:4326 coordinates are used as they are and EPSG:3857
(Web Mercator) is inverted in closed form; other CRSs raise a clear error until reprojection is available.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, TiffImagePlugin, UnidentifiedImageError

from geovec.datasets.common import image, need_dir, subsample, with_distractors
from geovec.datasets.samples import CandidateQuery, DatasetError
from geovec.inputs import Interleaved, PointSegment

EARTH_RADIUS_M = 6378137.0  # WGS84 semi-major axis, the sphere of Web Mercator
WEB_MERCATOR = frozenset({3857, 3785, 900913, 102100, 102113})  # official code and its legacy aliases


def web_mercator_to_wgs84(x: float, y: float) -> tuple[float, float]:
    """EPSG:3857 metres -> (lat, lon) degrees: lon = x/R, lat = 2 atan(exp(y/R)) - pi/2."""
    return (math.degrees(2 * math.atan(math.exp(y / EARTH_RADIUS_M)) - math.pi / 2),
            math.degrees(x / EARTH_RADIUS_M))


def _geokeys(raw: tuple) -> dict[int, int]:
    """Short-valued keys of a GeoKeyDirectoryTag: header of 4, then (key, location, count, value) per key."""
    values = [int(v) for v in raw]
    return {values[i]: values[i + 3] for i in range(4, 4 + 4 * values[3], 4) if values[i + 1] == 0}


def tile_centre(path: Path) -> tuple[float, float]:
    """(lat, lon) in WGS84 of the centre of a north-up GeoTIFF."""
    try:
        with Image.open(path) as im:
            if not isinstance(im, TiffImagePlugin.TiffImageFile):
                raise DatasetError(f"{path.name}: not a TIFF file")
            tags, (w, h) = im.tag_v2, im.size
            scale, tie, keys = tags.get(33550), tags.get(33922), tags.get(34735)
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path.name}: cannot read ({exc})") from None
    if scale is None or tie is None or keys is None:
        what = "a ModelTransformationTag (rotated grid), not supported yet" if 34264 in tags else \
            "no ModelPixelScaleTag/ModelTiepointTag/GeoKeyDirectoryTag"
        raise DatasetError(f"{path.name}: not a north-up GeoTIFF: {what}")
    geokeys = _geokeys(keys)
    model = geokeys.get(1024)  # GTModelTypeGeoKey: 1 projected, 2 geographic
    epsg = geokeys.get(3072 if model == 1 else 2048)
    i, j, _, x0, y0, _ = tie[:6]
    half = 0.5 if geokeys.get(1025) == 2 else 0.0  # PixelIsPoint: the tie point is a pixel's centre
    x = x0 + (w / 2 - i - half) * scale[0]
    y = y0 - (h / 2 - j - half) * scale[1]
    if epsg == 4326:
        lat, lon = y, x
    elif epsg in WEB_MERCATOR:
        lat, lon = web_mercator_to_wgs84(x, y)
    else:
        raise DatasetError(f"{path.name}: CRS EPSG:{epsg} (model type {model}) is not supported yet; only "
                           "EPSG:4326 and EPSG:3857 are read without rasterio")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise DatasetError(f"{path.name}: centre ({lat:g}, {lon:g}) is not a valid WGS84 position")
    return lat, lon


@dataclass(frozen=True)
class Tile:
    id: str
    path: Path
    lat: float
    lon: float


def read_tiles(folder: Path) -> list[Tile]:
    """Every ``*.tif`` in ``folder`` with its centre, in natural id order (``2.tif`` before ``10.tif``)."""
    paths = [p for p in need_dir(folder).iterdir() if p.suffix.lower() in (".tif", ".tiff") and p.is_file()]
    if not paths:
        raise DatasetError(f"{folder}: no GeoTIFF tiles")
    paths.sort(key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)])
    return [Tile(p.stem, p, *tile_centre(p)) for p in paths]


def geolocation_queries(folder: Path, direction: str, distractors: int = 9,
                        limit: int | None = None) -> list[CandidateQuery]:
    """``direction`` ``"image-to-point"`` or ``"point-to-image"``; candidates = the true tile and ``distractors``
    other tiles (seeded), tiles with the same centre counting as right too."""
    if direction not in ("image-to-point", "point-to-image"):
        raise ValueError(f"unknown direction {direction!r}")
    tiles = read_tiles(folder)
    pictures = {t.id: Interleaved((image(t.path, f"{folder.name}/{t.path.name}"),)) for t in tiles}
    points = {t.id: Interleaved((PointSegment(t.lat, t.lon),)) for t in tiles}
    query_side, candidate_side = (pictures, points) if direction == "image-to-point" else (points, pictures)
    out = []
    for t in subsample(tiles, limit, "geoloc", folder.name):
        chosen, positives = with_distractors(t, [o for o in tiles if o.id != t.id], distractors, "geoloc", t.id,
                                             same=lambda a, b: (a.lat, a.lon) == (b.lat, b.lon))
        out.append(CandidateQuery(t.id, query_side[t.id], tuple(candidate_side[c.id] for c in chosen), positives))
    return out
