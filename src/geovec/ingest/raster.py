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
(on a decimated read) over valid pixels only, so neighbouring chips share one contrast. Known product scalings
(GDAL scales/offsets, CF ``scale_factor``/``add_offset`` band tags, Sentinel-2 ``QUANTIFICATION_VALUE`` and
``BOA_ADD_OFFSET``/``RADIO_ADD_OFFSET`` tags) turn DNs into physical values first, so the recorded stretch is in
reflectance where the product says so. One band becomes grey RGB; 4+ bands default to the bands whose colour
interpretation is red, green, blue (else 1, 2, 3).

No-data, first source that applies (``RasterFile.nodata`` says which): the dataset's GDAL mask (nodata value,
alpha, internal mask); else the user's ``TileOptions.nodata``; else a *detected* fill: raw Landsat and Sentinel-2
products declare no nodata but pad the rotated scene with a zero collar, which would otherwise count as data (2 %
percentile 0: washed-out chips; black chips winning searches). Detection looks at the decimated stats read: a
value (0, -9999 or the type's minimum) that all bands share on enough of the image border, and its region
connected to the border; the stretch excludes that region. Chip reads then treat pixels where every band equals
the fill value as no-data (a re-read needs no global pass, and for these products an all-band fill value is fill
wherever it lies). Non-finite floats are always no-data. No-data is painted black; a chip whose nodata fraction
exceeds ``max_nodata`` (all-nodata chips always) is skipped, and a kept chip's footprint is the bounding box of
its valid pixels, not of its window.

Limits: a file that would make more than ``max_chips`` chips (a huge or sparse raster) is refused with the
resolution that would fit, and PNG/JPEG/GIF files above ``MAX_SEQUENTIAL_PIXELS`` are refused (they decode from
the top for every window: a decompression bomb or hours of work).

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
from rasterio.enums import ColorInterp, MaskFlags, Resampling
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
MAX_CHIPS = 50_000  # per file; a 100000 x 100000 px raster at 256 px chips would be 152,881
MAX_SEQUENTIAL_PIXELS = 89_478_485  # PIL's decompression-bomb warning size, for formats without random access
_SEQUENTIAL_DRIVERS = ("PNG", "JPEG", "GIF")
_FILL_MIN_BORDER = 0.05  # a fill value must cover this fraction of the image border (pixels, all bands)
_S2_QUANTIFICATION = ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE")
_S2_OFFSETS = ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET")


@dataclass(frozen=True)
class TileOptions:
    """How a raster is cut into chips; the fields that change a chip's pixels (window, resolution, bands, a declared
    nodata) are part of its id (see ``archive.chip_id``)."""

    chip_size: int = 256
    overlap: int = 0
    resolution: float | None = None  # metres per output pixel; None: the source's own
    bands: tuple[int, ...] | None = None  # 1-based; None: RGB by colour interpretation, else 1,2,3 / grey
    max_nodata: float = 0.5  # chips with a larger nodata fraction are skipped
    nodata: float | None = None  # declared no-data value (used when the file has no mask of its own)
    max_chips: int = MAX_CHIPS  # per file: more is refused (a huge or sparse raster), with a --resolution hint

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
        if self.nodata is not None and not math.isfinite(self.nodata):
            raise GeovecInputError("nodata", f"must be a finite number, got {self.nodata!r}")
        if isinstance(self.max_chips, bool) or not isinstance(self.max_chips, int) or self.max_chips < 1:
            raise GeovecInputError("max_chips", f"must be a positive integer, got {self.max_chips!r}")


@dataclass(frozen=True)
class Nodata:
    """Where a file's no-data came from: ``mask`` (its own), ``declared`` (the user's), ``detected`` (an edge
    fill) or ``none``; ``value`` is the fill value for the latter two, ``fraction`` the share of the scene."""

    source: str
    value: float | None = None
    fraction: float | None = None

    def describe(self) -> str:
        if self.source in ("mask", "none"):
            return {"mask": "the file's own mask", "none": "none (every pixel is data)"}[self.source]
        share = f", {self.fraction:.0%} of the scene" if self.fraction is not None else ""
        kind = "detected edge fill" if self.source == "detected" else "declared"
        return f"{kind} {self.value:g}{share}"

    def to_dict(self) -> dict:
        return {"source": self.source, "value": self.value}


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


def _fill_candidates(dtype: str) -> list[float]:
    """Values raw products pad a scene with: 0, -9999 and the type's minimum."""
    lowest = np.iinfo(dtype).min if np.issubdtype(np.dtype(dtype), np.integer) else None
    return list(dict.fromkeys(v for v in (0.0, -9999.0, lowest) if v is not None and _representable(v, dtype)))


def _representable(value: float, dtype: str) -> bool:
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        return info.min <= value <= info.max
    return True


def _border(mask: np.ndarray) -> np.ndarray:
    return np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]])


def _spread_along_rows(reached: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Every run of ``allowed`` pixels in a row that holds a reached pixel becomes reached (vectorised)."""
    height, width = allowed.shape
    runs = np.cumsum(~allowed, axis=1) + np.arange(height)[:, None] * (width + 1)
    hit = np.zeros(height * (width + 1) + 1, dtype=bool)
    hit[runs[reached]] = True
    return allowed & hit[runs]


def edge_connected(allowed: np.ndarray) -> np.ndarray:
    """The pixels of ``allowed`` 4-connected to the image border; alternating row and column run passes converge
    in as many passes as the paths have turns, far fewer than pixel-by-pixel growing."""
    reached = np.zeros_like(allowed)
    reached[[0, -1], :] = allowed[[0, -1], :]
    reached[:, [0, -1]] = allowed[:, [0, -1]]
    count = -1
    while count != int(reached.sum()):
        count = int(reached.sum())
        reached = _spread_along_rows(reached, allowed)
        reached = _spread_along_rows(reached.T, allowed.T).T
    return reached


def detect_edge_fill(data: np.ndarray, dtype: str) -> tuple[float, np.ndarray] | None:
    """(value, region) of a constant fill around the scene in a (bands, h, w) sample, or None.

    A fill value is shared by every band on at least ``_FILL_MIN_BORDER`` of the border pixels; the region is its
    part connected to the border, so the same value inside the scene is not cut out of the statistics.
    """
    shared = (data == data[:1]).all(axis=0)
    for value in _fill_candidates(dtype):
        allowed = shared & (data[0] == value)
        if _border(allowed).mean() >= _FILL_MIN_BORDER:
            return value, edge_connected(allowed)
    return None


def _first_tag(tags: dict, keys: Sequence[str]) -> float | None:
    """The first numeric tag named ``key`` or ``key_<band>`` (Sentinel-2 writes ``BOA_ADD_OFFSET_B2`` ...; the
    offsets are equal across bands in every processing baseline)."""
    for key in keys:
        for name, text in tags.items():
            if name.upper() == key or name.upper().startswith(key + "_"):
                try:
                    return float(text)
                except ValueError:
                    continue
    return None


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
            self._check_size()
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

    def _check_size(self) -> None:
        """Refuse PNG/JPEG/GIF files too big to decode window by window (decompression bombs)."""
        pixels = self.ds.width * self.ds.height
        if self.ds.driver in _SEQUENTIAL_DRIVERS and pixels > MAX_SEQUENTIAL_PIXELS:
            raise GeovecError(f"{self.path}: a {self.ds.width}x{self.ds.height} {self.ds.driver} ({pixels / 1e6:.0f} "
                              f"Mpx, over {MAX_SEQUENTIAL_PIXELS / 1e6:.0f}) is decoded from the top for every "
                              "chip: convert it to a tiled GeoTIFF (gdal_translate -co TILED=YES) or downsample it")

    @property
    def native_resolution(self) -> float | None:
        """Metres per source pixel (the larger axis), or None without a CRS."""
        if not self.georeferenced:
            return None
        a, b, _, d, e, _ = tuple(self.ds.transform)[:6]
        size = max(math.hypot(a, d), math.hypot(b, e))
        return size * (METRES_PER_DEGREE if self.ds.crs.is_geographic else self.ds.crs.linear_units_factor[1])

    def windows(self) -> list[Window]:
        """Chip windows in source pixels, row by row; more than ``max_chips`` is refused before any is made."""
        size = max(1, round(self.options.chip_size * self.factor))
        stride = max(1, round((self.options.chip_size - self.options.overlap) * self.factor))
        w, h = self.ds.width, self.ds.height
        rows, cols = _starts(h, size, stride), _starts(w, size, stride)
        if len(rows) * len(cols) > self.options.max_chips:
            raise GeovecError(self._too_many_chips(len(rows) * len(cols)))
        return [Window(col, row, min(size, w), min(size, h)) for row in rows for col in cols]

    def _too_many_chips(self, chips: int) -> str:
        """The refusal, with the coarser --resolution that would fit under the limit."""
        text = (f"{self.path}: {self.ds.width}x{self.ds.height} px make {chips:,} chips of "
                f"{self.options.chip_size} px, more than --max-chips {self.options.max_chips:,}")
        native = self.native_resolution
        if native:
            coarser = self.resolution * math.ceil(math.sqrt(chips / self.options.max_chips) * 10) / 10
            return text + f": read it coarser (--resolution {coarser:.3g} or more) or raise --max-chips"
        return text + ": downsample it or raise --max-chips"

    def out_shape(self, window: Window) -> tuple[int, int]:
        return max(1, round(window.height / self.factor)), max(1, round(window.width / self.factor))

    @cached_property
    def scaling(self) -> list[tuple[float, float]]:
        """Per selected band (scale, offset) from raw DN to physical value; (1, 0) where the file says nothing."""
        tags = self.ds.tags()
        quantification, shift = _first_tag(tags, _S2_QUANTIFICATION), _first_tag(tags, _S2_OFFSETS)
        out = []
        for band in self.bands:
            scale, offset = float(self.ds.scales[band - 1]), float(self.ds.offsets[band - 1])
            band_tags = self.ds.tags(band)
            if (scale, offset) == (1.0, 0.0) and "scale_factor" in band_tags:
                scale, offset = float(band_tags["scale_factor"]), float(band_tags.get("add_offset", 0.0))
            elif (scale, offset) == (1.0, 0.0) and quantification:
                scale, offset = 1.0 / quantification, (shift or 0.0) / quantification
            out.append((scale, offset))
        return out

    @cached_property
    def _sample(self) -> tuple[np.ndarray, np.ndarray]:
        """The decimated read (<= ``_STATS_MAX_SIDE`` px a side) that statistics and fill detection look at."""
        scale = max(1.0, max(self.ds.width, self.ds.height) / _STATS_MAX_SIDE)
        shape = (max(1, round(self.ds.height / scale)), max(1, round(self.ds.width / scale)))
        return self._read_raw(None, shape, Resampling.nearest)

    def survey(self) -> Nodata:
        """Read the decimated sample and decide the no-data: at planning time, so a truncated or corrupt file
        fails before any of its chips is scheduled."""
        self._sample  # noqa: B018 (the read is the point)
        return self.nodata

    def _has_own_mask(self) -> bool:
        return any(flags != [MaskFlags.all_valid] for flags in (self.ds.mask_flag_enums[b - 1] for b in self.bands))

    @cached_property
    def nodata(self) -> Nodata:
        """The file's no-data, by the precedence of the module docstring."""
        if self._has_own_mask():
            return Nodata("mask", self.ds.nodata)
        if self.options.nodata is not None:
            return Nodata("declared", self.options.nodata)
        fill = self._edge_fill
        if fill is None:
            return Nodata("none")
        return Nodata("detected", fill[0], round(float(fill[1].mean()), 4))

    @cached_property
    def _edge_fill(self) -> tuple[float, np.ndarray] | None:
        return detect_edge_fill(self._sample[0], self.ds.dtypes[self.bands[0] - 1])

    def _sample_valid(self) -> np.ndarray:
        """Validity of the sample: the GDAL mask, the declared value, the detected fill region."""
        data, valid = self._sample
        nodata = self.nodata
        if nodata.source == "declared":
            return valid & ~(data == nodata.value).any(axis=0)
        if nodata.source == "detected" and self._edge_fill is not None:
            return valid & ~self._edge_fill[1]
        return valid

    @cached_property
    def stretch(self) -> list[tuple[float, float]] | None:
        """Per-band (low, high) percentiles over valid pixels of the sample (physical units); None for uint8."""
        if all(self.ds.dtypes[b - 1] == "uint8" for b in self.bands):
            return None
        valid = self._sample_valid()
        data = self._scaled(self._sample[0])
        limits = []
        for band in data:
            values = band[valid]
            lo, hi = (np.percentile(values, STRETCH_PERCENTILES) if values.size else (0.0, 1.0))
            limits.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
        return limits

    def _read_raw(self, window: Window | None, shape: tuple[int, int],
                  resampling: Resampling) -> tuple[np.ndarray, np.ndarray]:
        """Selected bands as raw float64 (bands, h, w) and the GDAL validity (h, w), decimated to ``shape``."""
        out = (len(self.bands), *shape)
        try:
            data = self.ds.read(self.bands, window=window, out_shape=out, resampling=resampling)
            masks = self.ds.read_masks(self.bands, window=window, out_shape=out, resampling=Resampling.nearest)
        except RasterioError as exc:
            cause = exc.__cause__ or exc
            raise GeovecError(f"{self.path}: cannot read its pixels, the file is truncated or corrupt "
                              f"({cause})") from None
        data = data.astype(np.float64)
        return data, (masks > 0).all(axis=0) & np.isfinite(data).all(axis=0)

    def _scaled(self, data: np.ndarray) -> np.ndarray:
        if all(pair == (1.0, 0.0) for pair in self.scaling):
            return data
        scales = np.array([s for s, _ in self.scaling])[:, None, None]
        offsets = np.array([o for _, o in self.scaling])[:, None, None]
        return data * scales + offsets

    def _read(self, window: Window | None, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Selected bands in physical units (bands, h, w) and the validity (h, w) under ``nodata``."""
        data, valid = self._read_raw(window, shape, Resampling.average)
        nodata = self.nodata
        if nodata.source == "declared":
            valid &= ~(data == nodata.value).any(axis=0)
        elif nodata.source == "detected":
            valid &= ~(data == nodata.value).all(axis=0)
        return self._scaled(data), valid

    def read_with_extent(self, window: Window) -> tuple[np.ndarray, float, Window | None]:
        """The chip's HxWx3 uint8 pixels, its nodata fraction and the source window its valid pixels span."""
        data, valid = self._read(window, self.out_shape(window))
        if self.stretch is not None:
            lows = np.array([lo for lo, _ in self.stretch])[:, None, None]
            highs = np.array([hi for _, hi in self.stretch])[:, None, None]
            data = (data - lows) / (highs - lows) * 255.0
        pixels = np.clip(np.nan_to_num(data), 0, 255).round().astype(np.uint8)
        pixels[:, ~valid] = 0
        if pixels.shape[0] == 1:
            pixels = np.repeat(pixels, 3, axis=0)
        return (np.ascontiguousarray(pixels.transpose(1, 2, 0)), 1.0 - float(valid.mean()),
                self._valid_extent(window, valid))

    def read(self, window: Window) -> tuple[np.ndarray, float]:
        """The chip's HxWx3 uint8 pixels and its nodata fraction."""
        return self.read_with_extent(window)[:2]

    @staticmethod
    def _valid_extent(window: Window, valid: np.ndarray) -> Window | None:
        """The part of ``window`` (source pixels) that the valid output pixels span; None when none is valid."""
        rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
        if not rows.size:
            return None
        sy, sx = window.height / valid.shape[0], window.width / valid.shape[1]
        col0, row0 = window.col_off + cols[0] * sx, window.row_off + rows[0] * sy
        return Window(col0, row0, (cols[-1] + 1 - cols[0]) * sx, (rows[-1] + 1 - rows[0]) * sy)

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
        t = np.linspace(0.0, 1.0, _EDGE_POINTS, endpoint=False)
        ring_u = np.concatenate([t, np.ones_like(t), 1 - t, np.zeros_like(t)])  # TL->TR->BR->BL, fraction of w
        ring_v = np.concatenate([np.zeros_like(t), t, np.ones_like(t), 1 - t])
        u, v = np.append(ring_u, 0.5), np.append(ring_v, 0.5)  # the ring, then the centre
        cols = np.array([[w.col_off, w.width] for w in windows], dtype=np.float64)
        rows = np.array([[w.row_off, w.height] for w in windows], dtype=np.float64)
        px, py = cols[:, :1] + u[None, :] * cols[:, 1:], rows[:, :1] + v[None, :] * rows[:, 1:]
        a, b, c, d, e, f = tuple(self.ds.transform)[:6]
        x, y = a * px + b * py + c, d * px + e * py + f
        lons, lats = self._to_wgs84.transform(x, y)
        if not (np.isfinite(lons).all() and np.isfinite(lats).all()):
            raise GeovecError(f"{self.path}: some chip corners cannot be reprojected from {self.ds.crs} to WGS84")
        return [lonlat_footprint(lo[:-1], la[:-1], (lo[-1], la[-1]), _EDGE_POINTS) for lo, la in zip(lons, lats)]

    @cached_property
    def _to_wgs84(self):
        """One transformer per file: chips with no-data get their footprint one at a time."""
        from pyproj import Transformer

        return Transformer.from_crs(self.ds.crs.to_wkt(), "EPSG:4326", always_xy=True)

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
