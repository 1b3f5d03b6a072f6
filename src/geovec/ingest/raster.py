"""Reading rasters (GeoTIFF, COG, PNG/JPEG with world files) as display-ready uint8 chips with WGS84 footprints.

Everything goes through rasterio/GDAL, which already reads world files (``.pgw``/``.jgw``/``.wld``) and a
``.aux.xml`` CRS beside PNG/JPEG files. An image without a CRS (no world file, or a world file but no CRS) is still
chipped, but without coordinates and with ``georeferenced=False``: guessing a CRS would put it in the wrong place.

Tiling (``TileOptions``): chips are ``chip_size`` pixels of the *output* grid, which is the source grid decimated to
``resolution`` (CRS units per pixel; metres for projected CRSs; degrees x 111,320 m for geographic ones). Chips
never upsample: a source coarser than ``resolution`` is read at its own resolution. Reads pass ``out_shape`` to
GDAL, which serves a decimated read from the nearest COG overview level, so coarse chips of a big COG cost little
I/O. The last chip of a row/column is moved back to end at the image edge (full-size chips, a little more
overlap) and an image smaller than a chip is one smaller chip.

Pixels: uint8 bands are used as they are; other types get a 2-98 percentile stretch computed once per source
(on a decimated read), so neighbouring chips share one contrast. One band becomes grey RGB; 4+ bands default to
the bands whose colour interpretation is red, green, blue (else 1, 2, 3). Nodata (GDAL masks: nodata value,
alpha, internal masks, and non-finite floats) is painted black; a chip whose nodata fraction exceeds
``max_nodata`` (all-nodata chips always) is skipped.

Footprints: the chip's pixel-space outline, densified along each edge, is reprojected to WGS84 in one vectorised
pyproj call per file. Longitudes along the ring are unwrapped (no jump > 180 degrees between neighbours), so a
chip whose edge lies on +-180 keeps ``min_lon <= max_lon``; only a chip that really crosses the antimeridian gets
``min_lon > max_lon`` (the convention of ``GeoFilter.within`` and GeoJSON bboxes). The stored polygon keeps
the unwrapped corners (continuous ring; longitudes may pass +-180 for crossing chips). Chips containing a pole
are not handled specially.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from geovec.errors import GeovecError, GeovecInputError
from geovec.inputs import GeoRef

RASTER_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2")
METRES_PER_DEGREE = 111_320.0  # at the equator; only used to state geographic pixel sizes in metres
STRETCH_PERCENTILES = (2.0, 98.0)
_STATS_MAX_SIDE = 1024  # the decimated read used for percentile stretch statistics
_EDGE_POINTS = 8  # points per chip edge when reprojecting footprints
_RGB = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)


@dataclass(frozen=True)
class TileOptions:
    """How a raster is cut into chips; every field is part of the chip id (see ``archive.chip_id``)."""

    chip_size: int = 256
    overlap: int = 0
    resolution: float | None = None  # metres per output pixel; None: the source's own
    bands: tuple[int, ...] | None = None  # 1-based; None: RGB by colour interpretation, else 1,2,3 / grey
    max_nodata: float = 0.9  # chips with a larger nodata fraction are skipped

    def __post_init__(self) -> None:
        if isinstance(self.chip_size, bool) or not isinstance(self.chip_size, int) or self.chip_size < 8:
            raise GeovecInputError("chip_size", f"must be an integer >= 8 pixels, got {self.chip_size!r}")
        if not isinstance(self.overlap, int) or not 0 <= self.overlap < self.chip_size:
            raise GeovecInputError("overlap", f"must be an integer in [0, chip_size={self.chip_size}), "
                                   f"got {self.overlap!r}")
        if self.resolution is not None and not (math.isfinite(self.resolution) and self.resolution > 0):
            raise GeovecInputError("resolution", f"must be a positive number of metres, got {self.resolution!r}")
        if self.bands is not None and (len(self.bands) not in (1, 3) or min(self.bands) < 1):
            raise GeovecInputError("bands", f"give 1 or 3 band numbers counted from 1, got {self.bands!r}")
        if not 0.0 <= self.max_nodata <= 1.0:
            raise GeovecInputError("max_nodata", f"must be a fraction in [0, 1], got {self.max_nodata!r}")


@dataclass(frozen=True)
class Footprint:
    """A chip's place on Earth in WGS84: centre, bbox (min_lon > max_lon only if it crosses +-180), 4 corners."""

    lat: float
    lon: float
    bbox: tuple[float, float, float, float]
    corners: tuple[tuple[float, float], ...]  # (lon, lat): top-left, top-right, bottom-right, bottom-left

    def geojson(self) -> dict:
        ring = [list(c) for c in self.corners]
        return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


@dataclass(frozen=True)
class Chip:
    window: Window  # in source pixels
    pixels: np.ndarray  # HxWx3 uint8
    nodata_fraction: float
    georef: GeoRef | None
    footprint: Footprint | None


def _wrap_min(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0  # [-180, 180)


def _wrap_max(lon: float) -> float:
    return 180.0 - (180.0 - lon) % 360.0  # (-180, 180]


def lonlat_footprint(lons: np.ndarray, lats: np.ndarray, centre: tuple[float, float], n_edge: int) -> Footprint:
    """Footprint from a densified ring (``4 * n_edge`` points, corners at multiples of ``n_edge``) + centre."""
    lons = np.unwrap(np.asarray(lons, dtype=np.float64), period=360.0)
    lo, hi = float(lons.min()), float(lons.max())
    bbox_lon = (-180.0, 180.0) if hi - lo >= 360.0 else (_wrap_min(lo), _wrap_max(hi))
    bbox = (bbox_lon[0], float(np.min(lats)), bbox_lon[1], float(np.max(lats)))
    corners = tuple((float(lons[i]), float(lats[i])) for i in range(0, 4 * n_edge, n_edge))
    lon, lat = centre
    lon = float(lon) if -180.0 <= lon <= 180.0 else _wrap_min(float(lon))
    return Footprint(lat=float(lat), lon=lon, bbox=bbox, corners=corners)


def _starts(length: int, size: int, stride: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


class RasterFile:
    """One open raster plus the reading parameters derived from ``TileOptions`` (bands, decimation, stretch)."""

    def __init__(self, path: str | Path, options: TileOptions) -> None:
        self.path, self.options = Path(path), options
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self.ds = rasterio.open(self.path)
        except RasterioError as exc:
            raise GeovecError(f"{self.path}: not a readable raster ({exc})") from None
        try:
            self.bands = self._pick_bands()
        except GeovecError:
            self.ds.close()
            raise
        self.georeferenced = self.ds.crs is not None and not self.ds.transform.is_identity
        native = self.native_resolution
        self.factor = max(1.0, options.resolution / native) if options.resolution and native else 1.0
        self.resolution = native * self.factor if native else None  # metres per output pixel

    def close(self) -> None:
        self.ds.close()

    def __enter__(self) -> RasterFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _pick_bands(self) -> tuple[int, ...]:
        count = self.ds.count
        bands = self.options.bands
        if bands is None:
            interp = self.ds.colorinterp
            if count >= 3 and all(c in interp for c in _RGB):
                bands = tuple(interp.index(c) + 1 for c in _RGB)
            else:
                bands = (1, 2, 3) if count >= 3 else (1,)
        if max(bands) > count:
            raise GeovecInputError("bands", f"{self.path} has {count} band(s); cannot select bands {list(bands)}")
        return tuple(bands)

    @property
    def native_resolution(self) -> float | None:
        """Metres per source pixel (the larger axis), or None without a CRS."""
        if not self.georeferenced:
            return None
        a, b, _, d, e, _ = tuple(self.ds.transform)[:6]
        size = max(math.hypot(a, d), math.hypot(b, e))
        return size * (METRES_PER_DEGREE if self.ds.crs.is_geographic else self.ds.crs.linear_units_factor[1])

    def windows(self) -> list[Window]:
        """Chip windows in source pixels, row by row."""
        size = max(1, round(self.options.chip_size * self.factor))
        stride = max(1, round((self.options.chip_size - self.options.overlap) * self.factor))
        w, h = self.ds.width, self.ds.height
        return [Window(col, row, min(size, w), min(size, h))
                for row in _starts(h, size, stride) for col in _starts(w, size, stride)]

    def out_shape(self, window: Window) -> tuple[int, int]:
        return max(1, round(window.height / self.factor)), max(1, round(window.width / self.factor))

    @cached_property
    def stretch(self) -> list[tuple[float, float]] | None:
        """Per-band (low, high) percentiles over valid pixels of a decimated read; None for uint8 data."""
        if all(self.ds.dtypes[b - 1] == "uint8" for b in self.bands):
            return None
        scale = max(1.0, max(self.ds.width, self.ds.height) / _STATS_MAX_SIDE)
        shape = (max(1, round(self.ds.height / scale)), max(1, round(self.ds.width / scale)))
        data, valid = self._read(None, shape)
        limits = []
        for band in data:
            values = band[valid]
            lo, hi = (np.percentile(values, STRETCH_PERCENTILES) if values.size else (0.0, 1.0))
            limits.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
        return limits

    def _read(self, window: Window | None, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Selected bands as float64 (bands, h, w) and a validity mask (h, w), decimated to ``shape``."""
        out = (len(self.bands), *shape)
        data = self.ds.read(self.bands, window=window, out_shape=out, resampling=Resampling.average)
        masks = self.ds.read_masks(self.bands, window=window, out_shape=out, resampling=Resampling.nearest)
        data = data.astype(np.float64)
        return data, (masks > 0).all(axis=0) & np.isfinite(data).all(axis=0)

    def read(self, window: Window) -> tuple[np.ndarray, float]:
        """The chip's HxWx3 uint8 pixels and its nodata fraction."""
        data, valid = self._read(window, self.out_shape(window))
        if self.stretch is not None:
            lows = np.array([lo for lo, _ in self.stretch])[:, None, None]
            highs = np.array([hi for _, hi in self.stretch])[:, None, None]
            data = (data - lows) / (highs - lows) * 255.0
        pixels = np.clip(np.nan_to_num(data), 0, 255).round().astype(np.uint8)
        pixels[:, ~valid] = 0
        if pixels.shape[0] == 1:
            pixels = np.repeat(pixels, 3, axis=0)
        return np.ascontiguousarray(pixels.transpose(1, 2, 0)), 1.0 - float(valid.mean())

    def georef(self, window: Window) -> GeoRef | None:
        """CRS + affine transform of the chip's output pixels."""
        if not self.georeferenced:
            return None
        height, width = self.out_shape(window)
        transform = (self.ds.transform @ Affine.translation(window.col_off, window.row_off)
                     @ Affine.scale(window.width / width, window.height / height))
        return GeoRef(crs=self.ds.crs.to_string(), transform=tuple(transform)[:6])

    def footprints(self, windows: Sequence[Window]) -> list[Footprint | None]:
        """WGS84 footprints of many windows in one reprojection call."""
        if not self.georeferenced or not windows:
            return [None] * len(windows)
        from pyproj import Transformer

        t = np.linspace(0.0, 1.0, _EDGE_POINTS, endpoint=False)
        ring_u = np.concatenate([t, np.ones_like(t), 1 - t, np.zeros_like(t)])  # TL->TR->BR->BL, fraction of w
        ring_v = np.concatenate([np.zeros_like(t), t, np.ones_like(t), 1 - t])
        u, v = np.append(ring_u, 0.5), np.append(ring_v, 0.5)  # the ring, then the centre
        cols = np.array([[w.col_off, w.width] for w in windows], dtype=np.float64)
        rows = np.array([[w.row_off, w.height] for w in windows], dtype=np.float64)
        px, py = cols[:, :1] + u[None, :] * cols[:, 1:], rows[:, :1] + v[None, :] * rows[:, 1:]
        a, b, c, d, e, f = tuple(self.ds.transform)[:6]
        x, y = a * px + b * py + c, d * px + e * py + f
        to_wgs84 = Transformer.from_crs(self.ds.crs.to_wkt(), "EPSG:4326", always_xy=True)
        lons, lats = to_wgs84.transform(x, y)
        if not (np.isfinite(lons).all() and np.isfinite(lats).all()):
            raise GeovecError(f"{self.path}: some chip corners cannot be reprojected from {self.ds.crs} to WGS84")
        return [lonlat_footprint(lo[:-1], la[:-1], (lo[-1], la[-1]), _EDGE_POINTS) for lo, la in zip(lons, lats)]

    def chip(self, window: Window, footprint: Footprint | None) -> Chip:
        pixels, nodata = self.read(window)
        return Chip(window, pixels, nodata, self.georef(window), footprint)


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """``"4,3,2"`` -> (4, 3, 2), for the CLI."""
    if text is None or not text.strip():
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise GeovecInputError("--bands", f"expected comma-separated band numbers such as 1,2,3, got {text!r}") from None
