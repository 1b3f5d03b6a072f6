"""Every dataset reader on its tiny fixture (tests/data, written by tests/data/make_fixtures.py) and on broken copies.

The declared benchmark tasks over the same fixtures are tested in tests/bench/test_tasks.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixture_data import FIXTURES, by_id, copy, make_fixtures, texts
from PIL import Image

from geovec.datasets import DatasetError, captions, common, geo, patterncom, regions, rsvg, rsvqa, scenes
from geovec.inputs import BoxSegment, PointSegment, TextSegment


# ------------------------------------------------------------------------------------------------ scenes
@pytest.mark.parametrize("raw, readable", [
    ("denseresidential", "dense residential"), ("dense_residential", "dense residential"),
    ("DenseResidential", "dense residential"), ("footballField", "football field"), ("SeaLake", "sea or lake"),
    ("golf_course", "golf course"), ("Expressway-Service-area", "expressway service area"),
    ("railwaystation", "railway station"), ("storagetanks", "storage tanks"), ("Airport", "airport")])
def test_class_names_are_readable(raw, readable):
    assert scenes.class_name(raw) == readable


def test_subsampling_is_seeded_and_keeps_order():
    folder = FIXTURES / "PatternNet" / "images"
    everything = [q.id for q in scenes.read_scene_folders(folder)]
    first = [q.id for q in scenes.read_scene_folders(folder, 5, key="a")]
    assert first == [q.id for q in scenes.read_scene_folders(folder, 5, key="a")]
    assert len(first) == 5 and first == [i for i in everything if i in first]
    assert first != [q.id for q in scenes.read_scene_folders(folder, 5, key="b")]
    assert common.subsample(list(range(100)), 10, "k") == common.subsample(list(range(100)), 10, "k")
    assert common.subsample([1, 2], 10, "k") == [1, 2]


def test_candidate_sampling_is_seeded_shuffled_and_capped():
    picks = [common.with_distractors("p", list("abcdefgh"), 3, "q", i) for i in range(20)]
    assert picks == [common.with_distractors("p", list("abcdefgh"), 3, "q", i) for i in range(20)]
    assert all(len(c) == 4 and c[min(p)] == "p" and len(p) == 1 for c, p in picks)
    assert len({min(p) for _, p in picks}) > 1, "the positive must not sit in a fixed slot"
    candidates, positives = common.with_distractors("p", ["a"], 9, "q")
    assert sorted(candidates) == ["a", "p"] and len(positives) == 1


# ------------------------------------------------------------------------------------------------ captions
def test_image_without_any_caption_is_dropped_and_duplicates_refused(tmp_path):
    copy(tmp_path, "RSITMD")
    path = tmp_path / "RSITMD" / "dataset_RSITMD.json"
    data = json.loads(path.read_text())
    data["images"][1]["sentences"] = [{"raw": "  "}]
    path.write_text(json.dumps(data))
    split = captions.read_karpathy(path, tmp_path / "RSITMD" / "images")
    assert split.image_ids == ("airport_1.jpg", "00003.jpg") and len(split.texts) == 9
    data["images"].append(dict(data["images"][0]))
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"dataset_RSITMD\.json: image 'airport_1\.jpg' is listed twice"):
        captions.read_karpathy(path, tmp_path / "RSITMD" / "images")


# ------------------------------------------------------------------------------------------------ RSVQA
def _edit_json(path: Path, kind: str, edit) -> None:
    data = json.loads(path.read_text())
    edit(data[kind])
    path.write_text(json.dumps(data))


def test_rsvqa_bad_records(tmp_path):
    folder = copy(tmp_path, "RSVQA-LR") / "RSVQA-LR"
    read = lambda: rsvqa.read_rsvqa(folder, "LR", folder / "Images_LR")
    questions = folder / "LR_split_test_questions.json"
    original = questions.read_text()
    _edit_json(questions, "questions", lambda rows: rows[2].update(answers_ids=[999]))
    with pytest.raises(DatasetError, match=r"question 1: its answer 999 is not an active record of "
                                           r"LR_split_test_answers\.json, so the positive is missing"):
        read()
    questions.write_text(original)
    _edit_json(questions, "questions", lambda rows: rows[2].update(img_id=99))
    with pytest.raises(DatasetError, match=r"LR_split_test_questions\.json: question 1 refers to image 99 which is "
                                           r"not an active record of LR_split_test_images\.json"):
        read()
    questions.write_text(original)
    _edit_json(questions, "questions", lambda rows: rows.append(dict(rows[2])))
    with pytest.raises(DatasetError, match=r"LR_split_test_questions\.json: duplicate id 1"):
        read()
    questions.write_text(original)
    (folder / "Images_LR" / "2.tif").unlink()
    with pytest.raises(DatasetError, match=r"question 4: image 2: no such image file"):
        read()


def test_rsvqa_hr_images_are_found_in_either_published_folder(tmp_path):
    assert rsvqa.hr_images_dir(tmp_path) == tmp_path / "Data"  # neither present: the Zenodo name, reported missing
    (tmp_path / "Images").mkdir()
    assert rsvqa.hr_images_dir(tmp_path) == tmp_path / "Images"
    (tmp_path / "Data").mkdir()
    assert rsvqa.hr_images_dir(tmp_path) == tmp_path / "Data"


# ------------------------------------------------------------------------------------------------ DIOR-RSVG
def test_refexp_candidates_are_the_boxes_of_the_image():
    queries = by_id(rsvg.refexp_queries(FIXTURES / "DIOR-RSVG"))
    assert sorted(queries) == ["obj0", "obj2"]
    for qid, own, other in (("obj0", (4, 6, 20, 18), [(36, 30, 56, 50)]), ("obj2", (10, 12, 30, 40), [])):
        q = queries[qid]
        picture, text = q.query.segments
        boxes = [c.segments[1].bbox_xyxy for c in q.candidates]
        assert isinstance(text, TextSegment) and len(boxes) == 4
        assert all(c.segments[0] == picture for c in q.candidates)
        assert [boxes[i] for i in q.positives] == [own] and all(b in boxes for b in other)
        for decoy in set(boxes) - {own, *other}:
            assert 0 <= decoy[0] < decoy[2] <= 64 and 0 <= decoy[1] < decoy[3] <= 64
            assert all(rsvg._iou(decoy, real) < 0.3 for real in [own, *other])
    again = by_id(rsvg.refexp_queries(FIXTURES / "DIOR-RSVG"))
    assert [c.segments[1] for c in again["obj2"].candidates] == [c.segments[1] for c in queries["obj2"].candidates]


def test_region_caption_candidates():
    queries = by_id(rsvg.region_caption_queries(FIXTURES / "DIOR-RSVG"))
    q = queries["obj0"]
    assert isinstance(q.query.segments[1], BoxSegment) and q.query.segments[1].bbox_xyxy == (4, 6, 20, 18)
    assert sorted(texts(q.candidates)) == ["the storage tank on the lower right", "the vehicle on the upper left",
                                           "the windmill in the middle"]  # fewer than 8 exist in the fixture
    assert [texts(q.candidates)[i] for i in q.positives] == ["the vehicle on the upper left"]


def test_rsvg_box_outside_image_and_bad_split_index(tmp_path):
    folder = copy(tmp_path, "DIOR-RSVG") / "DIOR-RSVG"
    xml = folder / "Annotations" / "00001.xml"
    original = xml.read_text()
    xml.write_text(original.replace("<xmax>56</xmax>", "<xmax>80</xmax>"))
    with pytest.raises(DatasetError, match=r"Annotations/00001\.xml object 1: box \(36, 30, 80, 50\) lies outside "
                                           r"the 64x64 image 00001\.jpg"):
        rsvg.refexp_queries(folder)
    xml.write_text(original)
    (folder / "test.txt").write_text("0\n7\n")
    with pytest.raises(DatasetError, match=r"test\.txt line 2: '7' is not an object index"):
        rsvg.region_caption_queries(folder)
    (folder / "test.txt").write_text("0\n2\n0\n")
    with pytest.raises(DatasetError, match=r"test\.txt line 3: duplicate object index 0"):
        rsvg.region_caption_queries(folder)


# ------------------------------------------------------------------------------------------------ PatternCom
def test_patterncom_queries():
    queries = by_id(patterncom.read_patterncom(FIXTURES / "PatternNet"))
    assert len(queries) == 19  # each row x each other value of its attribute within its class group
    q = queries["color/airplane001.jpg->gray"]
    picture, text = q.query.segments
    names = [Path(c.segments[0].path).name for c in q.candidates]
    assert picture.path.endswith("airplane001.jpg") and text.text == "gray"
    assert [names[i] for i in q.positives] == ["airplane004.jpg"] and "airplane001.jpg" not in names
    assert sorted(names) == ["airplane002.jpg", "airplane003.jpg", "airplane004.jpg"]
    merged = queries["density/sparseresidential001.jpg->dense"]  # dense + sparse residential are one group
    names = [Path(c.segments[0].path).name for c in merged.candidates]
    assert next(names[i] for i in merged.positives) in {"denseresidential001.jpg", "denseresidential002.jpg"}
    capped = patterncom.read_patterncom(FIXTURES / "PatternNet", distractors=1, limit=4)
    assert len(capped) == 4 and all(len(c.candidates) <= 2 for c in capped)


def test_patterncom_unknown_image_and_missing_file(tmp_path):
    folder = copy(tmp_path, "PatternNet") / "PatternNet"
    with (folder / "PatternCom" / "shape.csv").open("a") as handle:
        handle.write("ghost001.jpg,shape,round\n")
    with pytest.raises(DatasetError, match=r"PatternCom/shape\.csv line 3: image 'ghost001\.jpg' is not in images/"):
        patterncom.read_patterncom(folder)
    (folder / "PatternCom" / "shape.csv").unlink()
    with pytest.raises(DatasetError, match=r"shape\.csv: file not found"):
        patterncom.read_patterncom(folder)


# ------------------------------------------------------------------------------------------------ geo
def test_inverse_web_mercator_against_hand_computed_values():
    assert geo.web_mercator_to_wgs84(0.0, 0.0) == (0.0, 0.0)
    lat, lon = geo.web_mercator_to_wgs84(556597.4539663679, 6446275.841017158)  # R*rad(5), R*ln(tan(70 deg))
    assert lat == pytest.approx(50.0, abs=1e-9) and lon == pytest.approx(5.0, abs=1e-12)
    assert geo.web_mercator_to_wgs84(20037508.342789244, 0.0)[1] == pytest.approx(180.0)


def test_geotiff_centres():
    centres = {t.id: (t.lat, t.lon) for t in geo.read_tiles(FIXTURES / "rsvqa_lr")}
    assert centres["0"] == pytest.approx((0.0, 0.0), abs=1e-9)  # EPSG:3857
    assert centres["1"] == pytest.approx((50.0, 5.0), abs=1e-9)  # EPSG:3857
    assert centres["2"] == pytest.approx((52.0, 5.0), abs=1e-12)  # EPSG:4326, identity


def test_pixel_is_point_shifts_half_a_pixel(tmp_path):
    path = make_fixtures.write_geotiff(tmp_path / "p.tif", 4326, (4.92, 52.08), 0.01, pixel_is_point=True)
    assert geo.tile_centre(path) == pytest.approx((52.08 - 7.5 * 0.01, 4.92 + 7.5 * 0.01), abs=1e-12)


def test_geolocation_queries_both_directions():
    to_point = by_id(geo.geolocation_queries(FIXTURES / "rsvqa_lr", "image-to-point"))
    to_image = by_id(geo.geolocation_queries(FIXTURES / "rsvqa_lr", "point-to-image"))
    assert sorted(to_point) == sorted(to_image) == ["0", "1", "2"]
    for q in to_point.values():
        (point,) = q.candidates[min(q.positives)].segments
        assert isinstance(point, PointSegment) and len(q.candidates) == 3
        assert q.query.segments[0].path.endswith(f"{q.id}.tif")
    (point,) = to_point["1"].candidates[min(to_point["1"].positives)].segments
    assert (point.lat, point.lon) == pytest.approx((50.0, 5.0))
    q = to_image["2"]
    assert (q.query.segments[0].lat, q.query.segments[0].lon) == pytest.approx((52.0, 5.0))
    assert q.candidates[min(q.positives)].segments[0].path.endswith("2.tif")


def test_unsupported_crs_and_plain_tiff(tmp_path):
    make_fixtures.write_geotiff(tmp_path / "utm.tif", 32617, (400000.0, 3300000.0), 0.1)
    with pytest.raises(DatasetError, match=r"utm\.tif: CRS EPSG:32617 .*not supported"):
        geo.tile_centre(tmp_path / "utm.tif")
    make_fixtures.write_image(tmp_path / "plain.tif")
    with pytest.raises(DatasetError, match=r"plain\.tif: not a north-up GeoTIFF"):
        geo.read_tiles(tmp_path)


# ------------------------------------------------------------------------------------------------ regions
def test_region_matching_candidates_are_context_crops():
    queries = regions.region_matching(FIXTURES / "deepforest", "OSBS_029.csv")
    assert len(queries) == 4
    pixels = np.asarray(Image.open(FIXTURES / "deepforest" / "OSBS_029.tif").convert("RGB"))
    for q in queries:
        picture, box = q.query.segments
        x1, y1, x2, y2 = map(int, box.bbox_xyxy)
        assert picture.path.endswith("OSBS_029.tif") and box.units == "pixel" and len(q.candidates) == 4
        (crop,) = q.candidates[min(q.positives)].segments
        cx1, cy1, cx2, cy2 = regions.with_context((x1, y1, x2, y2), (32, 32))
        assert (cx1, cy1) <= (x1, y1) and (cx2, cy2) >= (x2, y2) and (cx2 - cx1, cy2 - cy1) != (x2 - x1, y2 - y1)
        assert crop.path is None and np.array_equal(np.asarray(crop.load()), pixels[cy1:cy2, cx1:cx2])


def test_region_boxes_over_the_edge_are_clipped_and_off_image_refused(tmp_path):
    folder = copy(tmp_path, "deepforest") / "deepforest"
    csv_path = folder / "OSBS_029.csv"
    with csv_path.open("a") as handle:
        handle.write("OSBS_029.tif,24,24,40,36,Tree\n")
    with pytest.warns(UserWarning, match=r"OSBS_029\.csv line 6: box \(24, 24, 40, 36\) runs over the 32x32 image; "
                                         r"clipped to \(24, 24, 32, 32\)"):
        assert len(regions.region_matching(folder, "OSBS_029.csv")) == 5
    with csv_path.open("a") as handle:
        handle.write("OSBS_029.tif,50,50,60,60,Tree\n")
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match=r"OSBS_029\.csv line 7: box \(50, 50, 60, 60\) "
                                                                      r"lies outside"):
        regions.region_matching(folder, "OSBS_029.csv")

