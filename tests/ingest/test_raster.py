"""Reading and tiling rasters: windows, WGS84 footprints against hand-computed corners, overviews, bands, nodata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from geovec.config import data_dir
from geovec.errors import GeovecError, GeovecInputError
from geovec.ingest.raster import RasterFile, TileOptions, lonlat_footprint, parse_bands

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "geotiff"
REAL = data_dir()
needs_real = pytest.mark.skipif(not (REAL / "geotiff" / "RGB.byte.tif").is_file(), reason="shared data missing")


def utm31_to_wgs84(x, y):
    return Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform(x, y)


def test_utm_chip_footprints_match_hand_computed_corners():
    with RasterFile(FIXTURES / "utm31_rgb.tif", TileOptions(chip_size=32)) as raster:
        windows = raster.windows()
        footprints = raster.footprints(windows)
    assert [(w.col_off, w.row_off) for w in windows] == [(0, 0), (32, 0), (64, 0), (0, 32), (32, 32), (64, 32)]
    # chip (col 32, row 32): 20 m pixels from top-left (500000, 5700000) -> x 500640..501280, y 5699360..5698720
    fp = footprints[4]
    x = np.array([500640, 501280, 501280, 500640])
    y = np.array([5699360, 5699360, 5698720, 5698720])
    lons, lats = utm31_to_wgs84(x, y)
    np.testing.assert_allclose(np.array(fp.corners), np.stack([lons, lats], axis=1), atol=1e-9)
    clon, clat = utm31_to_wgs84(500960, 5699040)
    assert fp.lat == pytest.approx(clat, abs=1e-9) and fp.lon == pytest.approx(clon, abs=1e-9)
    assert fp.bbox[0] == pytest.approx(lons.min(), abs=1e-9) and fp.bbox[2] == pytest.approx(lons.max(), abs=1e-7)
    assert fp.bbox[1] == pytest.approx(lats.min(), abs=1e-7) and fp.bbox[3] == pytest.approx(lats.max(), abs=1e-9)
    assert fp.geojson()["coordinates"][0][0] == fp.geojson()["coordinates"][0][-1]


def test_overlap_and_edge_chip_snapped_to_image_edge():
    with RasterFile(FIXTURES / "utm31_rgb.tif", TileOptions(chip_size=40, overlap=8)) as raster:
        windows = raster.windows()
    assert sorted({w.col_off for w in windows}) == [0, 32, 56]  # stride 32, last chip ends at the 96 px edge
    assert sorted({w.row_off for w in windows}) == [0, 24]
    assert all(w.width == 40 and w.height == 40 for w in windows)


def test_nodata_fraction_and_black_fill():
    with RasterFile(FIXTURES / "utm31_rgb.tif", TileOptions(chip_size=32)) as raster:
        pixels, nodata = raster.read(Window(0, 0, 32, 32))
        assert nodata == 1.0 and not pixels.any()
        pixels, nodata = raster.read(Window(16, 16, 32, 32))
        assert nodata == pytest.approx(0.25) and not pixels[:16, :16].any() and pixels[16:, 16:].all()


def test_antimeridian_edge_does_not_wrap():
    with RasterFile(FIXTURES / "wgs84_east.tif", TileOptions(chip_size=32)) as raster:
        footprints = raster.footprints(raster.windows())
    assert [fp.bbox for fp in footprints] == [pytest.approx((170, 5, 175, 10)), pytest.approx((175, 5, 180, 10))]
    assert footprints[1].lon == pytest.approx(177.5)


def test_lonlat_footprint_of_a_chip_crossing_the_antimeridian():
    # a ring from lon 179 to -179 (crossing +-180), as a reprojection returns it: wrapped into [-180, 180]
    lons = np.array([179.0, -179.0, -179.0, 179.0])
    lats = np.array([1.0, 1.0, -1.0, -1.0])
    fp = lonlat_footprint(lons, lats, (180.0, 0.0), 1)
    assert fp.bbox == (179.0, -1.0, -179.0, 1.0)  # min_lon > max_lon: crosses, as GeoFilter.within expects
    assert fp.corners[1][0] == pytest.approx(181.0)  # continuous ring
    # a whole-world ring whose east edge came back normalised to -180
    ring = [-180, -90, 0, 90] + [-180] * 4 + [-180, 90, 0, -90] + [-180] * 4
    world = lonlat_footprint(np.array(ring, dtype=float), np.zeros(16), (0.0, 0.0), 4)
    assert world.bbox[0] == -180.0 and world.bbox[2] == 180.0


def test_uint16_four_bands_stretched_and_selected():
    with RasterFile(FIXTURES / "uint16_4band.tif", TileOptions(chip_size=48)) as raster:
        assert raster.bands == (1, 2, 3) and len(raster.stretch) == 3
        pixels, nodata = raster.read(raster.windows()[0])
        assert pixels.dtype == np.uint8 and pixels.shape == (48, 48, 3)
        assert nodata == pytest.approx(8 / 48)
        valid = pixels[:40]
        assert valid.min() == 0 and valid.max() == 255  # 2-98 % stretch saturates both tails
        assert 60 < valid.mean() < 200
    with RasterFile(FIXTURES / "uint16_4band.tif", TileOptions(chip_size=48, bands=(4,))) as grey:
        pixels, _ = grey.read(grey.windows()[0])
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


def test_bad_options_and_bands_are_clear_errors():
    with pytest.raises(GeovecInputError, match="overlap"):
        TileOptions(chip_size=32, overlap=32)
    with pytest.raises(GeovecInputError, match="resolution"):
        TileOptions(resolution=-1)
    with pytest.raises(GeovecInputError, match="bands"):
        RasterFile(FIXTURES / "utm31_rgb.tif", TileOptions(bands=(1, 2, 5)))
    with pytest.raises(GeovecInputError, match="--bands"):
        parse_bands("red,green")
    assert parse_bands("4,3,2") == (4, 3, 2)
    with pytest.raises(GeovecError, match="corrupt.tif: not a readable raster"):
        RasterFile(FIXTURES / "corrupt.tif", TileOptions())


def test_png_world_file_and_plain_jpeg():
    with RasterFile(FIXTURES / "scene.png", TileOptions()) as png:
        assert png.georeferenced and png.native_resolution == pytest.approx(10)
        (fp,) = png.footprints(png.windows())
        lon, lat = utm31_to_wgs84(600000, 5650000)
        assert fp.corners[0] == pytest.approx((lon, lat), abs=1e-9)
    with RasterFile(FIXTURES / "plain.jpg", TileOptions()) as jpg:
        assert not jpg.georeferenced and jpg.footprints(jpg.windows()) == [None]
        assert jpg.georef(jpg.windows()[0]) is None and jpg.read(jpg.windows()[0])[0].shape == (30, 40, 3)


@needs_real
def test_real_rgb_byte_nodata_border_and_transform_bounds():
    with RasterFile(REAL / "geotiff" / "RGB.byte.tif", TileOptions(chip_size=128)) as raster:
        windows = raster.windows()
        footprints = raster.footprints(windows)
        for window, fp in zip(windows, footprints):
            expected = transform_bounds(raster.ds.crs, "EPSG:4326", *raster.ds.window_bounds(window))
            assert fp.bbox == pytest.approx(expected, abs=1e-6)
            assert fp.bbox[0] < fp.bbox[2]
        fractions = [raster.read(w)[1] for w in windows]
    assert sum(f == 1.0 for f in fractions) >= 2  # the rotated scene leaves whole corner chips empty
    assert min(fractions) == 0.0
    union = (min(f.bbox[0] for f in footprints), min(f.bbox[1] for f in footprints),
             max(f.bbox[2] for f in footprints), max(f.bbox[3] for f in footprints))
    assert union == pytest.approx((-78.9586, 23.5650, -76.5749, 25.5509), abs=1e-3)  # MANIFEST bounds


@needs_real
def test_real_cog_coarse_read_uses_an_overview():
    path = REAL / "geotiff" / "cogeo.tif"
    with rasterio.open(path) as ds:
        native = ds.res[0]
    with RasterFile(path, TileOptions(chip_size=128, resolution=native * 4)) as raster:
        windows = raster.windows()
        assert raster.factor == pytest.approx(4) and len(windows) == 4 and windows[1] == Window(512, 0, 512, 512)
        pixels, _ = raster.read(windows[1])
        georef = raster.georef(windows[1])
    assert pixels.shape == (128, 128, 3)
    assert georef.transform[0] == pytest.approx(native * 4)
    with rasterio.open(path, overview_level=1) as overview:  # the 4x overview, read directly
        assert overview.width == 256
        expected = overview.read(window=Window(128, 0, 128, 128)).transpose(1, 2, 0)
    with rasterio.open(path, OVERVIEW_LEVEL="NONE") as full:  # the same decimation from full-resolution pixels
        decimated = full.read(window=Window(512, 0, 512, 512), out_shape=(3, 128, 128),
                              resampling=Resampling.average).transpose(1, 2, 0)
    np.testing.assert_array_equal(pixels, expected)
    assert not np.array_equal(pixels, decimated)


@needs_real
def test_real_world_image_no_wrong_wrap():
    with RasterFile(REAL / "geotiff" / "world.rgb.tif", TileOptions(chip_size=128)) as raster:
        footprints = raster.footprints(raster.windows())
    assert len(footprints) == 8
    for fp in footprints:
        assert fp.bbox[0] < fp.bbox[2] and fp.bbox[2] - fp.bbox[0] == pytest.approx(90)
    assert {fp.bbox[2] for fp in footprints} >= {180.0} and {fp.bbox[0] for fp in footprints} >= {-180.0}
    with RasterFile(REAL / "geotiff" / "world.rgb.tif", TileOptions(chip_size=512)) as whole:
        (fp,) = whole.footprints(whole.windows())
    assert fp.bbox == pytest.approx((-180, -90, 180, 90))


@needs_real
def test_real_multispectral_band_selection():
    path = REAL / "multispectral" / "rgbn.tif"
    with RasterFile(path, TileOptions(chip_size=128, bands=(4, 3, 2))) as false_colour:
        window = false_colour.windows()[0]
        pixels, _ = false_colour.read(window)
        assert false_colour.stretch is None  # uint8: used as is
    with rasterio.open(path) as ds:
        raw = ds.read([4, 3, 2], window=window).transpose(1, 2, 0)
    np.testing.assert_array_equal(pixels, raw)
    with RasterFile(path, TileOptions(chip_size=128)) as default:
        assert default.bands == (1, 2, 3)
