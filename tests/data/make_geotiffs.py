"""Write the small, seeded raster fixtures of ``tests/data/geotiff/`` (archive ingestion tests).

Run ``python tests/data/make_geotiffs.py`` to regenerate; the output is deterministic (seeded pixels, fixed
georeferencing), and every file is far below 50 kB. Geometry is chosen so tests can compute expectations by hand:

* ``utm31_rgb.tif``   96x64 px, 3 x uint8, EPSG:32631, 20 m, top-left (500000, 5700000); nodata 0 fills the
  top-left 32x32 block (one whole chip at chip size 32).
* ``wgs84_east.tif``  64x32 px, 3 x uint8, EPSG:4326, 0.15625 deg, lon 170..180, lat 10..5 (its right edge is the
  antimeridian).
* ``uint16_4band.tif`` 48x48 px, 4 x uint16 (values 1000-4000), EPSG:32631, 10 m, nodata 0 in the last 8 rows.
* ``scene.png`` + ``scene.pgw`` + ``scene.png.aux.xml``  40x30 RGB PNG, world file (10 m, top-left 600000,
  5650000) and its CRS (EPSG:32631) in the GDAL sidecar.
* ``plain.jpg``       40x30 RGB JPEG without any georeferencing.
* ``corrupt.tif``     a TIFF header followed by garbage.
* ``other.json``      a JSON file that is not a STAC item (ignored by a folder walk).
* ``bad_images/bomb.png`` a PNG whose header claims 30000x30000 px (900 Mpx, a decompression bomb) in 1 kB.
* ``bad_images/big.png``  a PNG header of 10000x10000 px (100 Mpx: PIL only warns, then decodes 300 MB).
* ``bad_images/truncated.tif`` the first half of ``uint16_4band.tif``: a valid header, missing pixel data.
  (``bad_images/`` is beside ``geotiff/``, so the archive tests' folder walks do not meet these files.)
* ``stac/item.json``  a STAC item with a ``visual`` GeoTIFF asset (``stac/visual.tif``, 32x32, EPSG:32631, 10 m,
  top-left (510000, 5690000)) and a ``thumbnail`` PNG asset (``stac/thumb.png``), which is not ingested.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin

OUT = Path(__file__).resolve().parent / "geotiff"
BAD = Path(__file__).resolve().parent / "bad_images"
UTM31 = "EPSG:32631"


def smooth_rgb(rng: np.random.Generator, height: int, width: int, bands: int = 3, low: int = 20,
               high: int = 235, dtype=np.uint8) -> np.ndarray:
    """Gradients plus mild noise: compresses well yet differs chip to chip (so embeddings differ)."""
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for band in range(bands):
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(x / (5 + 3 * band) + phase) * np.cos(y / (7 + 2 * band) - phase)
        out.append(low + (high - low) * (0.5 + 0.45 * wave) + rng.normal(0, 2, (height, width)))
    return np.clip(np.stack(out), low, high).astype(dtype)


def write_tif(path: Path, data: np.ndarray, crs: str, transform, nodata=None) -> None:
    profile = dict(driver="GTiff", count=data.shape[0], height=data.shape[1], width=data.shape[2], dtype=data.dtype,
                   crs=crs, transform=transform, compress="deflate", predictor=2, nodata=nodata)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels; its data is ten compressed black rows."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\x00" * (1 + width * 3) * 10, 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def write_bad_images() -> None:
    BAD.mkdir(exist_ok=True)
    (BAD / "bomb.png").write_bytes(png_claiming(30000, 30000))
    (BAD / "big.png").write_bytes(png_claiming(10000, 10000))
    whole = (OUT / "uint16_4band.tif").read_bytes()
    (BAD / "truncated.tif").write_bytes(whole[: len(whole) // 2])


def main() -> None:
    rng = np.random.default_rng(20240611)
    (OUT / "stac").mkdir(parents=True, exist_ok=True)

    rgb = smooth_rgb(rng, 64, 96)
    rgb[:, :32, :32] = 0
    write_tif(OUT / "utm31_rgb.tif", rgb, UTM31, from_origin(500000, 5700000, 20, 20), nodata=0)

    write_tif(OUT / "wgs84_east.tif", smooth_rgb(rng, 32, 64), "EPSG:4326", from_origin(170, 10, 0.15625, 0.15625))

    multi = smooth_rgb(rng, 48, 48, bands=4, low=1000, high=4000, dtype=np.uint16)
    multi[:, 40:, :] = 0
    write_tif(OUT / "uint16_4band.tif", multi, UTM31, from_origin(505000, 5695000, 10, 10), nodata=0)

    Image.fromarray(smooth_rgb(rng, 30, 40).transpose(1, 2, 0)).save(OUT / "scene.png")
    (OUT / "scene.pgw").write_text("10\n0\n0\n-10\n600005\n5649995\n")  # centre of the top-left pixel
    (OUT / "scene.png.aux.xml").write_text(f"<PAMDataset><SRS>{CRS.from_string(UTM31).to_wkt()}</SRS></PAMDataset>\n")
    Image.fromarray(smooth_rgb(rng, 30, 40).transpose(1, 2, 0)).save(OUT / "plain.jpg", quality=80)

    (OUT / "corrupt.tif").write_bytes(b"II*\x00" + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    (OUT / "other.json").write_text(json.dumps({"note": "not a STAC item"}) + "\n")

    write_tif(OUT / "stac" / "visual.tif", smooth_rgb(rng, 32, 32), UTM31, from_origin(510000, 5690000, 10, 10))
    Image.fromarray(smooth_rgb(rng, 8, 8).transpose(1, 2, 0)).save(OUT / "stac" / "thumb.png")
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "fixture-item-1", "collection": "fixtures",
            "geometry": None, "bbox": None, "properties": {"datetime": "2024-06-11T10:00:00Z"}, "links": [],
            "assets": {"thumbnail": {"href": "./thumb.png", "type": "image/png", "roles": ["thumbnail"]},
                       "visual": {"href": "./visual.tif", "type": "image/tiff; application=geotiff",
                                  "roles": ["visual"]},
                       "B08": {"href": "https://example.com/B08.tif", "type": "image/tiff", "roles": ["data"]}}}
    (OUT / "stac" / "item.json").write_text(json.dumps(item, indent=2) + "\n")
    write_bad_images()


if __name__ == "__main__":
    main()
