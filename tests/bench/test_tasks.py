"""The declared RSMEB tasks on the dataset fixtures (tests/data): every task loads, paths and errors are the task's.

The readers themselves are tested in tests/datasets/test_readers.py.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from fixture_data import FIXTURES, by_id, copy, texts

from geovec.bench import get_task, list_tasks
from geovec.bench.evaluate import evaluate_data
from geovec.datasets import (CandidateQuery, DatasetError, Reference, RetrievalSplit, TextToTextSplit,
                             check_unique_ids, mosaics)
from geovec.inputs import ImageSegment, Interleaved, TextSegment
from geovec.models.cache import EmbeddingCache
from geovec.models.registry import load_model


# ------------------------------------------------------------------------------------------------ tasks as a whole
def test_every_registered_task_loads_from_the_fixture_root():
    tasks = list_tasks()
    assert len(tasks) >= 20 and all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", t.name) for t in tasks)
    for task in tasks:
        data = task.load(FIXTURES)
        meta = task.metadata
        if meta.protocol == "retrieval":
            assert isinstance(data, RetrievalSplit)
            items = list(data.images) + list(data.texts)
        elif meta.protocol == "t2t":
            assert isinstance(data, TextToTextSplit) and data.oracle
            items = list(data.queries) + list(data.descriptions)
        else:
            check_unique_ids(data)
            items = [q.query for q in data]
            kinds = {frozenset(c.kinds) for q in data for c in q.candidates}
            assert kinds == {frozenset(meta.candidate_kinds)}, task.name
        assert {frozenset(i.kinds) for i in items[:1]} == {frozenset(meta.query_kinds)}, task.name
        assert all(i.instruction is None for i in items), "readers must not put instructions into inputs"


def test_task_errors_name_the_task(tmp_path):
    copy(tmp_path, "RSVQA-LR")
    (tmp_path / "RSVQA-LR" / "LR_split_test_answers.json").unlink()
    with pytest.raises(DatasetError, match=r"task rsvqa-lr-vqa: .*RSVQA-LR/LR_split_test_answers\.json: "
                                           r"file not found"):
        get_task("rsvqa-lr-vqa").load(tmp_path)


# ------------------------------------------------------------------------------------------------ scenes
@pytest.mark.parametrize("task, names, per_class", [
    ("ucm-scene", ["agricultural", "dense residential", "tennis court"], 2),
    ("aid-scene", ["airport", "bare land", "dense residential"], 2),
    ("nwpu-scene", ["airplane", "dense residential", "golf course"], 2),
    ("eurosat-scene", ["annual crop", "forest", "sea or lake"], 2),
    ("whurs19-scene", ["airport", "football field", "railway station"], 2),
    ("rsscn7-scene", ["grass", "field", "river or lake"], 2),
    ("patternnet-scene", ["airplane", "dense residential", "sparse residential"], 4)])
def test_scene_folders(task, names, per_class):
    queries = get_task(task).load(FIXTURES)
    assert len(queries) == 3 * per_class
    folders = sorted({q.id.split("/")[0] for q in queries})
    for q in queries:
        assert texts(q.candidates) == names
        assert q.positives == {folders.index(q.id.split("/")[0])}
        (segment,) = q.query.segments
        assert isinstance(segment, ImageSegment) and segment.path.endswith(q.id)


def test_eurosat_old_zip_layout(tmp_path):
    shutil.copytree(FIXTURES / "EuroSAT_RGB", tmp_path / "EuroSAT_RGB" / "2750")
    assert len(get_task("eurosat-scene").load(tmp_path)) == 6


def test_rsicd_scene_uses_prefixed_test_images():
    queries = get_task("rsicd-scene").load(FIXTURES)
    # 00003.jpg has no class; river_4 is train
    assert [q.id for q in queries] == ["airport_1.jpg", "beach_2.jpg", "farmland_10.jpg", "pond_11.jpg"]
    assert texts(queries[0].candidates) == ["airport", "beach", "farmland", "pond"]
    assert [q.positives for q in queries] == [{0}, {1}, {2}, {3}]


def test_corrupt_image_in_a_scene_folder_is_named(tmp_path):
    copy(tmp_path, "AID")
    (tmp_path / "AID" / "Airport" / "airport_3.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"AID/Airport/airport_3\.jpg: cannot read image"):
        get_task("aid-scene").load(tmp_path)


def test_empty_class_folder_is_an_error(tmp_path):
    copy(tmp_path, "WHU-RS19")
    (tmp_path / "WHU-RS19" / "Pond").mkdir()
    with pytest.raises(DatasetError, match="WHU-RS19/Pond: class folder holds no images"):
        get_task("whurs19-scene").load(tmp_path)


# ------------------------------------------------------------------------------------------------ captions
@pytest.mark.parametrize("task", ["rsitmd-retrieval", "ucm-captions-retrieval", "sydney-captions-retrieval",
                                  "rsicd-retrieval"])
def test_caption_splits(task):
    split = get_task(task).load(FIXTURES)
    mosaic_tiles = ("farmland_10.jpg", "pond_11.jpg") if task == "rsicd-retrieval" else ()  # rsicd split only
    assert split.image_ids == ("airport_1.jpg", "beach_2.jpg", "00003.jpg", *mosaic_tiles)  # river_4.jpg: train
    assert len(split.texts) == 14 + 5 * len(mosaic_tiles)  # 15 captions, one empty
    assert split.text_image == (0,) * 4 + (1,) * 5 + (2,) * 5 + sum(((3 + k,) * 5 for k in range(len(mosaic_tiles))),
                                                                     ())
    assert texts(split.texts)[:4] == ["many planes near a terminal", "an airport", "runways", "planes"]
    assert split.images[2].segments[0].path.endswith("00003.jpg")


def test_missing_caption_image_is_named(tmp_path):
    copy(tmp_path, "rs_caption_splits", "rsicd")
    (tmp_path / "rsicd" / "images" / "beach_2.jpg").unlink()
    with pytest.raises(DatasetError, match=r"rsicd/test_filename\.txt: image 'beach_2\.jpg'.*no such image file"):
        get_task("rsicd-retrieval").load(tmp_path)


# ------------------------------------------------------------------------------------------------ RSVQA
def test_rsvqa_candidates_are_the_answers_of_the_question_type():
    queries = by_id(get_task("rsvqa-lr-vqa").load(FIXTURES))
    assert sorted(queries) == ["q1", "q2", "q4", "q5", "q6", "q7"]  # inactive stubs 0 and 3 skipped
    image, question = queries["q1"].query.segments
    assert image.path.endswith("Images_LR/1.tif") and question.text == "Is there a road?"
    assert texts(queries["q1"].candidates) == ["yes", "no"] and queries["q1"].positives == {0}
    assert texts(queries["q4"].candidates) == ["yes", "no"] and queries["q4"].positives == {1}
    assert texts(queries["q2"].candidates) == ["3", "12"] and queries["q2"].positives == {1}
    assert texts(queries["q6"].candidates) == ["rural"] and queries["q6"].positives == {0}


# ------------------------------------------------------------------------------------------------ mosaics
MOSAIC_TEST_TILES = {"airport_1.jpg", "beach_2.jpg", "farmland_10.jpg", "pond_11.jpg"}  # the classed test images


def _fixture_mosaic(task: str):
    (mosaic,), _ = mosaics.test_mosaics(FIXTURES / "rs_caption_splits", "rsicd", FIXTURES / "rsicd" / "images",
                                        "test", None, task)
    return mosaic


def test_mosaic_region_caption_asks_for_each_tile_of_a_test_scene():
    queries, mosaic = get_task("rsicd-mosaic-region-caption").load(FIXTURES), _fixture_mosaic(
        "rsicd-mosaic-region-caption")
    assert set(mosaic.sources) == MOSAIC_TEST_TILES and len(queries) == 4  # one 2x2 scene, a query per tile
    for q, tile in zip(queries, mosaic.tiles):
        scene, box = q.query.segments
        assert scene.size == (448, 448) and box.bbox_xyxy == tile.box
        assert len(q.candidates) == 9  # a caption of each tile + the 5 of 00003.jpg, the only other test image
        assert {texts(q.candidates)[p] for p in q.positives} <= set(tile.captions)
        references = {r.name: r for r in q.references}
        assert references["box_blind"].query.segments == (scene,) and references["box_blind"].candidates is None
        (alone,) = references["region_alone"].query.segments
        x1, y1, x2, y2 = tile.box
        assert np.array_equal(np.asarray(alone.load()), np.asarray(scene.load())[y1:y2, x1:x2])


def test_mosaic_refexp_points_at_one_of_the_four_boxes():
    queries, mosaic = get_task("rsicd-mosaic-refexp").load(FIXTURES), _fixture_mosaic("rsicd-mosaic-refexp")
    assert set(mosaic.sources) == MOSAIC_TEST_TILES
    for k, (q, tile) in enumerate(zip(queries, mosaic.tiles)):
        assert q.query.segments[1].text in tile.captions and q.positives == {k}
        assert [c.segments[1].bbox_xyxy for c in q.candidates] == [t.box for t in mosaic.tiles]
        references = {r.name: r for r in q.references}
        assert all(c.segments == (q.query.segments[0],) for c in references["box_blind"].candidates)
        assert [c.segments[0].size for c in references["region_alone"].candidates] == [(224, 224)] * 4


def test_mosaic_tasks_score_their_reference_rows(tmp_path, tiny_clip_checkpoint):
    model, cache = load_model("clip", path=tiny_clip_checkpoint), EmbeddingCache(tmp_path / "cache.sqlite")
    for name in ("rsicd-mosaic-region-caption", "rsicd-mosaic-refexp"):
        task = get_task(name)
        scores = evaluate_data(task.metadata, task.load(FIXTURES), model, cache).scores
        assert {"precision_at_1", "precision_at_1_box_blind", "precision_at_1_region_alone"} <= set(scores)
        assert all(0 <= scores[k] <= 100 for k in scores)
    assert scores["precision_at_1_box_blind"] == 25.0  # refexp without boxes: four equal candidates, chance


def test_a_reference_row_must_match_its_candidates():
    item = Interleaved((TextSegment("a"),))
    with pytest.raises(DatasetError, match="reference 'alone' has 1 candidates for the query's 2"):
        CandidateQuery("q", item, (item, item), frozenset({0}), (Reference("alone", item, (item,)),))
