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
from geovec.ingest.raster import (
    Nodata,
    RasterFile,
    TileOptions,
    detect_edge_fill,
    edge_connected,
    lonlat_footprint,
    parse_bands,
)

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "geotiff"
BAD = Path(__file__).resolve().parents[1] / "data" / "bad_images"
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


LANDSAT = REAL / "landsat" / "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
needs_landsat = pytest.mark.skipif(not LANDSAT.is_file(), reason="shared data missing")


def write_raster(path: Path, data: np.ndarray, **profile) -> Path:
    """A small uint16 GeoTIFF in UTM 31 (20 m), with optional extra profile (nodata, tags go in afterwards)."""
    from rasterio.transform import from_origin

    base = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1], "width": data.shape[2],
            "dtype": data.dtype, "crs": "EPSG:32631", "transform": from_origin(500000, 5700000, 20, 20)}
    with rasterio.open(path, "w", **{**base, **profile}) as dst:
        dst.write(data)
    return path


def collared_scene(size: int = 96) -> np.ndarray:
    """A rotated square of uint16 'DN' (1000-5000) in a zero collar, with a few zero pixels inside the scene."""
    y, x = np.mgrid[0:size, 0:size]
    inside = np.abs(x - size / 2) + np.abs(y - size / 2) < size / 2  # a diamond touching the four edge midpoints
    rng = np.random.default_rng(7)
    data = np.where(inside, rng.integers(1000, 5000, (3, size, size)), 0).astype(np.uint16)
    data[:, size // 2, size // 2] = 0  # a zero inside the scene: not connected to the edge
    return data


def test_detected_edge_fill_is_the_collar_connected_to_the_border():
    data = collared_scene().astype(np.float64)
    value, region = detect_edge_fill(data, "uint16")
    assert value == 0.0
    assert region[0, 0] and region[-1, -1] and not region[48, 48]  # the inner zero is scene, not collar
    collar = (data == 0).all(axis=0)
    collar[48, 48] = False
    np.testing.assert_array_equal(region, collar)
    assert detect_edge_fill(np.full((3, 8, 8), 1200.0), "uint16") is None  # no fill: nothing to detect
    ring = np.zeros((20, 20), dtype=bool)
    ring[5:15, 5] = ring[5:15, 14] = ring[5, 5:15] = ring[14, 5:15] = True
    assert not edge_connected(ring).any()  # a closed ring inside the image touches no edge
    ring[0:6, 10] = True  # a corridor from the top edge to the ring: all of it is reached, round every turn
    np.testing.assert_array_equal(edge_connected(ring), ring)


def test_collar_is_nodata_and_out_of_the_stretch_without_a_declared_nodata(tmp_path):
    path = write_raster(tmp_path / "raw.tif", collared_scene())
    with RasterFile(path, TileOptions(chip_size=32)) as raster:
        assert raster.survey() == Nodata("detected", 0.0, pytest.approx(0.5, abs=0.05))
        assert all(low >= 1000 for low, _ in raster.stretch)  # old code: low 0, every chip washed out
        pixels, nodata, extent = raster.read_with_extent(Window(0, 0, 32, 32))  # the top-left corner chip
    assert nodata > 0.5 and not pixels[0, 0].any()
    assert (extent.col_off, extent.row_off, extent.width, extent.height) == (18, 18, 14, 14)  # where the diamond is


def test_declared_nodata_and_the_files_own_mask_come_first(tmp_path):
    data = np.full((3, 32, 32), 3000, dtype=np.uint16)
    data[:, :, :8] = 9  # a fill value that is not 0 and not on every edge
    path = write_raster(tmp_path / "nine.tif", data)
    with RasterFile(path, TileOptions(chip_size=32, nodata=9)) as raster:
        assert raster.survey() == Nodata("declared", 9)
        assert raster.read(Window(0, 0, 32, 32))[1] == pytest.approx(0.25)
    with RasterFile(path, TileOptions(chip_size=32)) as raster:
        assert raster.survey().source == "none" and raster.read(Window(0, 0, 32, 32))[1] == 0.0
    with RasterFile(FIXTURES / "utm31_rgb.tif", TileOptions(nodata=200)) as masked:
        assert masked.survey() == Nodata("mask", 0.0)
    with pytest.raises(GeovecInputError, match="nodata"):
        TileOptions(nodata=float("nan"))


def test_product_scaling_gives_the_stretch_in_reflectance_and_the_fill_stays_raw(tmp_path):
    data = collared_scene()
    data[data > 0] += 1000  # Sentinel-2 baseline 04.00: DN = 10000 * reflectance + 1000
    path = write_raster(tmp_path / "s2.tif", data)
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(BOA_QUANTIFICATION_VALUE="10000", BOA_ADD_OFFSET="-1000")
    with RasterFile(path, TileOptions(chip_size=32)) as raster:
        assert raster.scaling == [(1e-4, -0.1)] * 3
        assert raster.survey().source == "detected"  # raw 0, not reflectance -0.1
        assert all(0.1 <= low < high <= 0.5 for low, high in raster.stretch)  # reflectance, not DN
    cf = write_raster(tmp_path / "cf.tif", np.full((1, 16, 16), 500, dtype=np.uint16))
    with rasterio.open(cf, "r+") as dst:
        dst.scales, dst.offsets = (0.002,), (1.0,)
    with RasterFile(cf, TileOptions()) as raster:
        assert raster.scaling == [(0.002, 1.0)] and raster.stretch == [(2.0, 3.0)]


def test_a_huge_sparse_raster_is_refused_at_once_with_a_resolution_that_fits(tmp_path):
    import time

    path = tmp_path / "sparse.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100_000, height=100_000, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=rasterio.transform.from_origin(500000, 5700000, 1, 1),
                       tiled=True, blockxsize=1024, blockysize=1024, sparse_ok=True, compress="deflate") as dst:
        dst.write(np.full((3, 8, 8), 99, dtype=np.uint8), window=Window(0, 0, 8, 8))
    assert path.stat().st_size < 1_000_000
    started = time.perf_counter()
    with RasterFile(path, TileOptions()) as raster, pytest.raises(GeovecError, match="152,881 chips") as refused:
        raster.windows()
    assert time.perf_counter() - started < 2.0
    hint = float(str(refused.value).split("--resolution ")[1].split()[0])
    with RasterFile(path, TileOptions(resolution=hint)) as coarser:
        assert len(coarser.windows()) <= TileOptions().max_chips


def test_a_png_too_big_to_read_window_by_window_is_refused():
    with pytest.raises(GeovecError, match="30000x30000 PNG.*tiled GeoTIFF"):
        RasterFile(BAD / "bomb.png", TileOptions())


def test_a_truncated_tiff_fails_when_surveyed_with_a_clear_reason():
    with RasterFile(BAD / "truncated.tif", TileOptions()) as raster, \
            pytest.raises(GeovecError, match="truncated.tif: cannot read its pixels, the file is truncated"):
        raster.survey()


@needs_landsat
def test_real_landsat_collar_is_detected_and_kept_chips_are_mostly_scene():
    with RasterFile(LANDSAT, TileOptions()) as raster:
        assert raster.survey().source == "detected" and raster.survey().value == 0
        lows = [low for low, _ in raster.stretch]
        assert min(lows) > 5000  # DN of the scene; old code: [0, 0, 0]
        kept = 0
        for window in raster.windows():
            nodata = raster.read(window)[1]
            raw = raster.ds.read(window=window)
            collar = (raw == 0).all(axis=0).mean()  # measured here from the raw DN, not by the code under test
            assert nodata == pytest.approx(collar, abs=0.01)
            if nodata <= TileOptions().max_nodata:
                kept += 1
                assert collar <= 0.5
    assert kept == 54  # of 64: 10 mostly-collar corner chips are skipped
