"""Mosaic scenes (geovec.datasets.mosaics): seeded, boxes exactly on their tiles, one class and one image per tile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixture_data import make_fixtures
from PIL import Image

from geovec.datasets import CaptionedImage, DatasetError, mosaics

CLASSES = ["airport", "beach", "bridge", "church", "desert", "farmland", "forest", "park", "pond", "port", "river",
           "school"]


def pool(folder: Path, classes: list[str] = CLASSES) -> list[CaptionedImage]:
    """One image per class (a second airport, to be kept apart from the first), each with its captions."""
    names = [f"{c}_{k}.jpg" for k, c in enumerate(classes)] + ["airport_99.jpg"]
    for k, name in enumerate(names):
        make_fixtures.write_image(folder / name, (20 * k % 256, 255 - 15 * k, 40 + 10 * k), (12 + k, 12))
    return [CaptionedImage("rsicd", "train", name, (f"a photo of {name}", "", f"{name} again")) for name in names]


def test_mosaics_are_seeded_and_boxes_cover_their_tiles_exactly(tmp_path):
    records = pool(tmp_path)
    for layout in mosaics.LAYOUTS:
        first = mosaics.compose(records, [layout], "test", cell=10)
        assert first == mosaics.compose(records, [layout], "test", cell=10)  # same key, same scenes
        used = [name for m in first for name in m.sources]
        assert len(used) == len(set(used))  # an image is in one scene at most, once
        for mosaic in first:
            scene = np.asarray(mosaic.render(tmp_path))
            assert np.array_equal(scene, np.asarray(mosaic.render(tmp_path)))
            assert scene.shape == (mosaic.size, mosaic.size, 3) == (10 * mosaics.LAYOUTS[layout][0],) * 2 + (3,)
            covered = np.zeros(scene.shape[:2], int)
            for tile in mosaic.tiles:
                x1, y1, x2, y2 = tile.box
                covered[y1:y2, x1:x2] += 1
                with Image.open(tmp_path / tile.image.filename) as im:
                    own = np.asarray(im.convert("RGB").resize((x2 - x1, y2 - y1), Image.BICUBIC))
                assert np.array_equal(scene[y1:y2, x1:x2], own), (layout, tile)  # the box holds exactly its tile
            assert (covered == 1).all()  # tiles neither overlap nor leave gaps
            assert len({t.image.scene for t in mosaic.tiles}) == len(mosaic.tiles)  # one class per tile
            assert len({t.place for t in mosaic.tiles}) == len(mosaic.tiles)  # a place word names one tile
            assert all(t.captions and "" not in t.captions for t in mosaic.tiles)
    mixed = mosaics.compose(records, list(mosaics.LAYOUTS), "test")
    assert mixed != mosaics.compose(records, list(mosaics.LAYOUTS), "other")


def test_place_words_come_from_the_layout(tmp_path):
    records = pool(tmp_path)
    places = {layout: [t.place for t in mosaics.compose(records, [layout], "p", cell=4)[0].tiles]
              for layout in ("2x2", "3x3", "big-top-left", "big-bottom-right")}
    assert places["2x2"] == ["top left", "top right", "bottom left", "bottom right"]
    assert places["3x3"] == ["top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom",
                             "bottom right"]
    assert places["big-top-left"] == ["top left", "top right", "right", "bottom left", "bottom", "bottom right"]
    assert places["big-bottom-right"][0] == "bottom right"
    tile = mosaics.compose(records, ["2x2"], "p")[0].tiles[0]
    assert tile.expression() == f"the {tile.label} in the top left" and tile.box == (0, 0, 224, 224)


def test_a_pool_without_enough_classes_is_an_error(tmp_path):
    four = pool(tmp_path, CLASSES[:3])  # four images, but two airports
    with pytest.raises(DatasetError, match=r"mosaics: 4 captioned images of 3 scene classes fill no 2x2 scene"):
        mosaics.compose(four, ["2x2"], "few")
    with pytest.raises(DatasetError, match="unknown layout"):
        mosaics.compose(pool(tmp_path), ["4x4"], "bad")


def test_scenes_are_written_once_to_their_cache_folder(tmp_path):
    mosaic = mosaics.compose(pool(tmp_path / "images"), ["2x2"], "cache", cell=8)[0]
    path = mosaics.write_scene(mosaic, tmp_path / "images", tmp_path / "cache")
    stamp = path.stat().st_mtime_ns
    assert mosaics.write_scene(mosaic, tmp_path / "images", tmp_path / "cache") == path
    assert path.stat().st_mtime_ns == stamp and mosaic.digest() in path.name
    with Image.open(path) as im:
        assert im.size == (16, 16)
