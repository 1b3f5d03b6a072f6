"""Validation and JSON round-trip of interleaved inputs."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geovec.errors import GeovecInputError
from geovec.inputs import (BoxSegment, GeoRef, ImageSegment, Interleaved, PointSegment, TextSegment, as_input,
                           image_files, segment_from_dict)


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(path)
    return path


def error_of(call) -> GeovecInputError:
    with pytest.raises(GeovecInputError) as info:
        call()
    return info.value


def test_full_input_round_trips_through_json(png):
    item = Interleaved(
        (ImageSegment(png, georef=GeoRef("EPSG:32618", (300.0, 0.0, 101985.0, 0.0, -300.0, 2826915.0))),
         BoxSegment((10, 5, 40, 50), "pixel"), PointSegment(24.5, -77.7), TextSegment("a harbour with boats")),
        instruction="Find the caption of this region")
    text = json.dumps(item.to_dict())
    again = Interleaved.from_dict(json.loads(text))
    assert again == item
    assert again.cache_key() == item.cache_key()
    assert again.segments[0].georef.crs == "EPSG:32618"


def test_in_memory_image_round_trips_as_png_pixels():
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    item = Interleaved((ImageSegment(pixels), BoxSegment((0.1, 0.2, 0.5, 0.9), "normalized")))
    again = Interleaved.from_dict(json.loads(json.dumps(item.to_dict())))
    assert np.array_equal(np.asarray(again.segments[0].load()), pixels)
    assert again.cache_key() == item.cache_key()


@pytest.mark.parametrize("lat, lon, field, words", [
    (91, 0, "point.lat", "outside [-90, 90]"),
    (-90.5, 0, "point.lat", "outside [-90, 90]"),
    (0, 180.01, "point.lon", "outside [-180, 180]"),
    (0, float("nan"), "point.lon", "finite"),
    ("north", 0, "point.lat", "expected a number"),
])
def test_bad_coordinates_name_the_field(lat, lon, field, words):
    err = error_of(lambda: PointSegment(lat, lon))
    assert err.field == field and words in str(err)


def test_coordinate_limits_are_inclusive():
    assert PointSegment(-90, 180).lat == -90.0 and PointSegment(90, -180).lon == -180.0


def test_box_outside_image_is_refused(png):
    err = error_of(lambda: Interleaved((ImageSegment(png), BoxSegment((10, 10, 81, 50), "pixel"))))
    assert err.field == "segments[1].bbox_xyxy" and "outside the 80x60 image" in str(err)


@pytest.mark.parametrize("bbox, units, words", [
    ((40, 10, 20, 30), "pixel", "inverted or empty"),
    ((10, 10, 10, 30), "pixel", "inverted or empty"),
    ((-1, 0, 5, 5), "pixel", "outside"),
    ((0.1, 0.1, 1.2, 0.5), "normalized", "outside [0, 1]"),
    ((1, 2, 3), "pixel", "needs 4 numbers"),
])
def test_bad_boxes(bbox, units, words):
    assert words in str(error_of(lambda: BoxSegment(bbox, units)))


def test_box_units_must_be_stated():
    assert "must be 'pixel' or 'normalized'" in str(error_of(lambda: BoxSegment((0, 0, 1, 1), "px")))
    err = error_of(lambda: segment_from_dict({"type": "box", "bbox_xyxy": [0, 0, 1, 1]}, "segments[0]"))
    assert err.field == "segments[0].units"


def test_pixel_box_needs_an_image_but_normalized_box_may_stand_alone(png):
    assert "needs an image" in str(error_of(lambda: Interleaved((BoxSegment((1, 1, 5, 5), "pixel"),))))
    assert Interleaved((BoxSegment((0.1, 0.1, 0.5, 0.5), "normalized"),)).kinds == {"box"}
    err = error_of(lambda: Interleaved((ImageSegment(png), BoxSegment((1, 1, 5, 5), "pixel", image=1))))
    assert "only 1 image(s) precede it" in str(err)


def test_unreadable_images(tmp_path):
    missing = tmp_path / "nope.tif"
    assert "no such image file" in str(error_of(lambda: ImageSegment(missing)))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert "image file is empty" in str(error_of(lambda: ImageSegment(empty)))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"this is not a jpeg at all" * 10)
    assert "cannot read image" in str(error_of(lambda: ImageSegment(corrupt)))
    assert "no pixels" in str(error_of(lambda: ImageSegment(np.zeros((0, 5, 3), np.uint8))))


def test_truncated_image_fails_clearly_when_decoded(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    segment = ImageSegment(path)  # the header is intact, so the segment can be made...
    assert "cannot decode image" in str(error_of(segment.load))  # ...but decoding names the file and fails


@pytest.mark.parametrize("value", ["", "   ", [], ()])
def test_empty_query_is_refused(value):
    assert "empty" in str(error_of(lambda: as_input(value)))


def test_empty_text_and_unknown_segment_type():
    assert error_of(lambda: TextSegment("  ")).field == "text"
    err = error_of(lambda: Interleaved.from_dict({"segments": [{"type": "video"}]}))
    assert err.field == "segments[0].type" and "unknown segment type 'video'" in str(err)
    err = error_of(lambda: Interleaved.from_dict({"segments": [{"type": "point", "lat": 100, "lon": 0}]}))
    assert err.field == "segments[0].lat"


def test_image_files_lists_each_file_once_in_order_and_skips_in_memory_images(tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    for path in (first, second):
        Image.new("RGB", (8, 8)).save(path)
    items = [Interleaved((ImageSegment(str(second)), TextSegment("x"))),
             Interleaved((ImageSegment(np.zeros((8, 8, 3), np.uint8)),)),
             Interleaved((ImageSegment(str(first)), BoxSegment((0, 0, 4, 4), "pixel"), ImageSegment(str(second))))]
    assert image_files(items) == [str(second), str(first)]  # what a feature cache must hold, no more


BAD = Path(__file__).resolve().parents[1] / "data" / "bad_images"


@pytest.mark.parametrize("name, size", [("bomb.png", "900 Mpx"), ("big.png", "10000x10000 (100 Mpx)")])
def test_decompression_bombs_and_huge_images_are_refused_from_the_header(name, size):
    error = error_of(lambda: ImageSegment(BAD / name))  # old code: PIL's DecompressionBombError, or a 300 MB decode
    assert error.field == "image" and f"{name} is {size}, more than the 89 Mpx" in error.problem
    assert "geovec ingest" in error.problem
    encoded = {"type": "image", "png_base64": base64.b64encode((BAD / name).read_bytes()).decode()}
    assert "more than the 89 Mpx" in str(error_of(lambda: segment_from_dict(encoded)))


def test_a_huge_sparse_geotiff_as_a_query_image_is_refused(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    path = tmp_path / "sparse.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100_000, height=100_000, count=3, dtype="uint8",
                       tiled=True, sparse_ok=True, compress="deflate") as dst:
        dst.write(np.zeros((3, 8, 8), dtype=np.uint8), window=rasterio.windows.Window(0, 0, 8, 8))
    assert "10000 Mpx, more than the 89 Mpx" in str(error_of(lambda: ImageSegment(path)))
