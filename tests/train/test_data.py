"""Training-data builders on the tiny fixtures (tests/data) and on the real RSICD split, plus the leak check."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import typer
from fixture_data import copy as copy_fixtures
from PIL import Image
from typer.testing import CliRunner

from geovec.bench import get_task
from geovec.cli.data import register
from geovec.config import data_dir
from geovec.datasets import captions, regions
from geovec.errors import GeovecError, GeovecInputError
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment
from geovec.train.data import (
    SOURCES,
    Job,
    LeakError,
    Source,
    build_training_data,
    check_leaks,
    held_out,
    mix,
)
from geovec.train.examples import read_examples

FIXTURES = Path(__file__).resolve().parents[1] / "data"
REAL = data_dir()
_spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
make_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixtures)  # type: ignore[union-attr]
FIXTURE_SOURCES = ["rsicd-captions", "rsicd-scenes", "rsitmd-captions", "rsvqa-lr-vqa", "dior-rsvg-regions",
                   "rsvqa-lr-geo", "osbs-tree-regions", "rsicd-mosaic-regions"]


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory: pytest.TempPathFactory):
    """GEOVEC_HOME in a temporary folder: the mosaic source caches its scenes there."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("home")
        patch.setenv("GEOVEC_HOME", str(folder))
        yield folder


@pytest.fixture(scope="module")
def extra(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Inputs outside RSMEB's test sets: geo tiles (one of them, '0', is an RSMEB tile) and a tree-box CSV."""
    root = tmp_path_factory.mktemp("extra")
    for name, (lat, lon) in {"0": (0.0, 0.0), "7": (51.0, 4.0), "8": (51.5, 5.5), "9": (52.0, 6.0)}.items():
        x, y = make_fixtures.mercator(lat, lon)
        make_fixtures.write_geotiff(root / "tiles" / f"{name}.tif", 3857, (x - 80, y + 80), 10.0)
    make_fixtures.write_image(root / "trees" / "OTHER_1.tif", size=(40, 30))
    (root / "trees" / "boxes.csv").write_text("image_path,xmin,ymin,xmax,ymax,label\n" + "".join(
        f"OTHER_1.tif,{b}\n" for b in ("1,1,9,9,Tree", "12,2,25,14,Tree", "20,15,39,29,Tree")))
    return {"rsvqa-lr-geo": root / "tiles", "osbs-tree-regions": root / "trees" / "boxes.csv"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, extra: dict[str, Path]) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("built")
    manifest = build_training_data(FIXTURE_SOURCES, output, FIXTURES, hard_negatives=2, paths=extra,
                                   show_progress=False)
    return output, manifest


def test_fixture_build_counts_instructions_and_inputs(built):
    output, manifest = built
    examples = list(read_examples(output / "train.jsonl"))
    # 8 rsicd train images: 8 image->caption + 40 caption->image (rsitmd: 6 and 30); 7 prefixed images; 5 train
    # questions; 1 train object x 2 directions; 3 tiles left after RSMEB's tile 0, x 2 directions; 3 tree boxes; one
    # 2x2 mosaic of the 5 train classes (no 3x3 or big layout fits) x 3 examples per tile
    expected = {"rsicd-captions": 48, "rsicd-scenes": 7, "rsitmd-captions": 36, "rsvqa-lr-vqa": 5,
                "dior-rsvg-regions": 2, "rsvqa-lr-geo": 6, "osbs-tree-regions": 3, "rsicd-mosaic-regions": 12}
    assert manifest["counts"] == expected == dict(Counter(e.task for e in examples))
    assert manifest["sources"]["rsvqa-lr-geo"]["excluded_test_items"] == 1
    assert json.loads((output / "manifest.json").read_text()) == manifest
    allowed = {}  # instruction pairs of the bench tasks each source mirrors, in either direction
    for name in FIXTURE_SOURCES:
        metas = [get_task(t).metadata for t in SOURCES[name].tasks]
        allowed[name] = {(m.query_instruction, m.candidate_instruction) for m in metas} | \
                        {(m.candidate_instruction, m.query_instruction) for m in metas if m.protocol == "retrieval"}
    for e in examples:
        assert (e.query.instruction, e.positive.instruction) in allowed[e.task], e.task
        assert all(n.instruction == e.positive.instruction for n in e.negatives)
        assert e.positive not in e.negatives and e.source_ids
        assert all(i.startswith(SOURCES[e.task].dataset + ":") for i in e.source_ids)
        for item in (e.query, e.positive, *e.negatives):
            for position, segment in enumerate(item.segments):
                if isinstance(segment, ImageSegment) and segment.path:
                    assert Path(segment.path).is_absolute() and Path(segment.path).is_file()
                if isinstance(segment, BoxSegment):
                    w, h = item.image_for(position).size
                    x1, y1, x2, y2 = segment.bbox_xyxy
                    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
                if isinstance(segment, PointSegment):
                    assert -90 <= segment.lat <= 90 and -180 <= segment.lon <= 180
    scenes = [e for e in examples if e.task == "rsicd-scenes"]
    assert {e.positive.segments[0].text for e in scenes} == {"river", "airport", "beach", "farmland", "pond"}
    geo = [e for e in examples if e.task == "rsvqa-lr-geo"]
    assert {i for e in geo for i in e.source_ids} == {"RSVQA-LR:7", "RSVQA-LR:8", "RSVQA-LR:9"}  # never tile 0
    point = next(e.positive.segments[0] for e in geo if e.source_ids[0] == "RSVQA-LR:7" and
                 isinstance(e.positive.segments[0], PointSegment))
    assert point.lat == pytest.approx(51.0) and point.lon == pytest.approx(4.0)


def test_hard_negatives_follow_the_documented_rules(built):
    examples = list(read_examples(built[0] / "train.jsonl"))
    split = captions.read_amfmn_split(FIXTURES / "rs_caption_splits", "rsicd", FIXTURES / "rsicd" / "images", "train")
    own = {name: {t.segments[0].text for t, i in zip(split.texts, split.text_image) if split.image_ids[i] == name}
           for name in split.image_ids}
    for e in (e for e in examples if e.task == "rsicd-captions"):
        name = e.source_ids[0].split(":", 1)[1]
        prefix = name.split("_")[0] if "_" in name else None
        for other in e.source_ids[1:]:  # same scene class as the query image
            assert prefix is None or other.split(":", 1)[1].startswith(prefix + "_")
        if isinstance(e.query.segments[0], ImageSegment):
            assert e.positive.segments[0].text in own[name]
            assert not {n.segments[0].text for n in e.negatives} & own[name]
        else:
            assert e.query.segments[0].text in own[name]
    vqa = [e for e in examples if e.task == "rsvqa-lr-vqa"]
    presence = {e.positive.segments[0].text for e in vqa if e.query.segments[1].text.startswith("Is there")}
    assert presence == {"yes", "no"}
    assert all(isinstance(n.segments[0], TextSegment) and n.segments[0].text != e.positive.segments[0].text
               for e in vqa for n in e.negatives)
    assert any(e.negatives for e in examples if e.task == "osbs-tree-regions")


def test_build_is_deterministic_and_resumes(built, extra, tmp_path):
    output, _ = built
    again = tmp_path / "again"
    build_training_data(FIXTURE_SOURCES, again, FIXTURES, hard_negatives=2, paths=extra, show_progress=False)
    assert (again / "train.jsonl").read_bytes() == (output / "train.jsonl").read_bytes()
    part = again / "parts" / "rsicd-captions.jsonl"
    stamp = part.stat().st_mtime_ns
    (again / "train.jsonl").unlink()  # as if the build died before mixing
    build_training_data(FIXTURE_SOURCES, again, FIXTURES, hard_negatives=2, paths=extra, show_progress=False)
    assert part.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert (again / "train.jsonl").read_bytes() == (output / "train.jsonl").read_bytes()
    other = build_training_data(["rsicd-captions"], tmp_path / "seed1", FIXTURES, seed=1, show_progress=False)
    first = [json.loads(line) for line in (tmp_path / "seed1" / "train.jsonl").read_text().splitlines()]
    mine = [e for e in (json.loads(line) for line in (output / "train.jsonl").read_text().splitlines())
            if e["task"] == "rsicd-captions"]
    assert other["counts"] == {"rsicd-captions": 48} and first != mine


def test_mix_weights_are_respected(built):
    groups = {name: [e for e in read_examples(built[0] / "train.jsonl") if e.task == name]
              for name in ("rsicd-captions", "rsicd-scenes", "rsvqa-lr-vqa")}
    mixed = mix(groups, {"rsicd-captions": 0.5, "rsicd-scenes": 2.0, "rsvqa-lr-vqa": 1.4}, seed=3)
    assert Counter(e.task for e in mixed) == {"rsicd-captions": 24, "rsicd-scenes": 14, "rsvqa-lr-vqa": 7}
    assert mixed == mix(groups, {"rsicd-captions": 0.5, "rsicd-scenes": 2.0, "rsvqa-lr-vqa": 1.4}, seed=3)
    assert [e.task for e in mixed] != sorted(e.task for e in mixed)  # shuffled, not grouped
    with pytest.raises(GeovecInputError, match="weights must be >= 0"):
        mix(groups, {"rsicd-scenes": -1})


def test_leak_check_names_the_leaked_test_items(tmp_path, monkeypatch):
    def leaky(job):  # a careless source: "trains" on the RSICD test split
        split = captions.read_amfmn_split(job.root / "rs_caption_splits", "rsicd", job.path, "test")
        return [job.example("rsicd-retrieval", split.images[i], split.texts[i], [], [split.image_ids[j]])
                for i, j in enumerate(split.text_image[:3])]

    monkeypatch.setitem(SOURCES, "leaky", Source("leaky", "RSICD", ("rsicd-retrieval",), "rsicd/images", leaky))
    with pytest.raises(LeakError, match=r"RSICD:airport_1\.jpg \(test item of rsicd-scene, rsicd-retrieval"):
        build_training_data(["rsicd-scenes", "leaky"], tmp_path, FIXTURES, show_progress=False)
    assert not (tmp_path / "train.jsonl").exists()


def test_clear_errors_for_missing_or_held_out_inputs(tmp_path, extra):
    with pytest.raises(GeovecError, match=r"rsitmd-captions: RSITMD images not found at .*--path rsitmd-captions="):
        build_training_data(["rsitmd-captions"], tmp_path, FIXTURES, paths={"rsitmd-captions": tmp_path / "none"},
                            show_progress=False)
    with pytest.raises(GeovecError, match="rsvqa-lr-geo: no training items left .* all 3 are test items"):
        build_training_data(["rsvqa-lr-geo"], tmp_path, FIXTURES, show_progress=False)
    with pytest.raises(GeovecInputError, match="unknown source 'nope'"):
        build_training_data(["nope"], tmp_path, FIXTURES)
    with pytest.raises(GeovecInputError, match="--weights: names rsicd-scenes"):
        build_training_data(["rsicd-captions"], tmp_path, FIXTURES, weights={"rsicd-scenes": 2})


def test_cli_build_on_the_real_rsicd_split(tmp_path):
    if not (REAL / "rs_caption_splits" / "rsicd" / "train_caps.txt").is_file():
        pytest.skip(f"real RSICD split not present under {REAL}")
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["train-data", "build", "--sources", "rsicd-captions,rsicd-scenes", "--output",
                                 str(tmp_path), "--data", str(REAL), "--limit", "40", "--hard-negatives", "3",
                                 "--weights", "rsicd-scenes=2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    built = manifest["sources"]["rsicd-captions"]["examples"]
    assert built == 40 * 6  # 40 images: one image -> caption + five caption -> image each
    assert manifest["counts"] == {"rsicd-captions": built, "rsicd-scenes": 80}
    assert manifest["leak_check"]["RSICD"]["test_items"] == 1093
    examples = list(read_examples(tmp_path / "train.jsonl"))
    scene = get_task("rsicd-scene").metadata
    assert all(e.query.instruction == scene.query_instruction for e in examples if e.task == "rsicd-scenes")
    assert all(len(e.negatives) == 3 for e in examples if e.task == "rsicd-scenes")
    assert all(Path(e.query.segments[0].path).is_file() for e in examples if e.task == "rsicd-scenes")
    bad = runner.invoke(app, ["train-data", "build", "--sources", "rsicd-captions", "--output", str(tmp_path),
                              "--weights", "rsicd-captions"])
    assert isinstance(bad.exception, GeovecInputError) and "--weights: expected NAME=VALUE" in str(bad.exception)


def test_shared_osbs_boxes_are_refused_as_test_items(tmp_path):
    """The real DeepForest boxes are all evaluated by osbs-tree-region: building on them must fail, not leak."""
    if not (REAL / "deepforest" / "OSBS_029.csv").is_file():
        pytest.skip("real deepforest data not present")
    with pytest.raises(GeovecError, match="osbs-tree-regions: no training items left .* all 61 are test items"):
        build_training_data(["osbs-tree-regions"], tmp_path, REAL, show_progress=False)


# ------------------------------------------------------------------------------------------------ mosaics
def _scene_tiles(examples) -> dict[str, set[str]]:
    """Scene file -> the item ids its examples name (every tile of the scene)."""
    out: dict[str, set[str]] = {}
    for e in examples:
        out.setdefault(e.query.segments[0].path, set()).update(e.source_ids)
    return out


def test_mosaic_scenes_show_train_images_only_never_validation_ones(tmp_path, home):
    build_training_data(["rsicd-captions", "rsicd-mosaic-regions"], tmp_path, FIXTURES, hard_negatives=2,
                        validation_images=1, show_progress=False)
    (held,) = [json.loads(line)["id"] for line in (tmp_path / "validation.jsonl").read_text().splitlines()]
    train = {f"RSICD:{r.filename}" for r in captions.read_caption_split(FIXTURES / "rs_caption_splits", "rsicd",
                                                                        "train") if r.scene}
    examples = [e for e in read_examples(tmp_path / "train.jsonl") if e.task == "rsicd-mosaic-regions"]
    scenes = _scene_tiles(examples)
    assert scenes and all(len(tiles) == 4 and tiles <= train - {f"RSICD:{held}"} for tiles in scenes.values())
    assert all(Path(path).parent.parent == home / "data" / "mosaics" for path in scenes)  # never in the repo
    said = [e.query.segments[1].text for e in examples if isinstance(e.query.segments[1], TextSegment)]
    assert sum(bool(re.fullmatch(r"the (river|airport|beach|farmland|pond) (in|on|at) the [a-z ]+", s))
               for s in said) == 4  # one spatial expression per tile
    for e in examples:
        box = e.query.segments[1] if isinstance(e.query.segments[1], BoxSegment) else e.positive.segments[1]
        assert box.bbox_xyxy in {(0, 0, 224, 224), (224, 0, 448, 224), (0, 224, 224, 448), (224, 224, 448, 448)}
        assert e.positive not in e.negatives and len(e.negatives) == 2  # other tiles of the scene


def test_leak_check_sees_a_test_image_inside_a_mosaic(tmp_path, home):
    root = copy_fixtures(tmp_path, "rs_caption_splits", "rsicd")
    splits = root / "rs_caption_splits" / "rsicd"
    planted = ["airport_1.jpg", "beach_2.jpg", "farmland_10.jpg", "pond_11.jpg"]  # the test split, listed as train
    test = captions.read_caption_split(FIXTURES / "rs_caption_splits", "rsicd", "test")
    (splits / "train_filename.txt").write_text("".join(f"{r.filename}\n" for r in test if r.filename in planted))
    (splits / "train_caps.txt").write_text("".join(f"{c}\n" for r in test if r.filename in planted
                                                   for c in r.captions))
    source = SOURCES["rsicd-mosaic-regions"]
    careless = source.build(Job(source, root, root / "rsicd" / "images"))  # built without the test items left out
    with pytest.raises(LeakError, match=r"RSICD:farmland_10\.jpg \(test item of rsicd-scene, rsicd-retrieval, "
                                        r"rsicd-t2t, rsicd-mosaic-region-caption, rsicd-mosaic-refexp"):
        check_leaks(careless, held_out(root, {"RSICD"}))
    with pytest.raises(GeovecError, match="rsicd-mosaic-regions: no training items left .* all 4 are test items"):
        build_training_data(["rsicd-mosaic-regions"], tmp_path / "out", root, show_progress=False)


def test_mosaics_hold_out_what_rsicd_captions_holds_out_on_the_real_split(tmp_path, home):
    """With --limit and --validation-images, the mosaic source leaves out exactly rsicd-captions' validation images
    (the build's held-out check refuses any example that shows one)."""
    if not (REAL / "rsicd" / "images").is_dir():
        pytest.skip(f"real RSICD images not present under {REAL}")
    manifest = build_training_data(["rsicd-captions", "rsicd-mosaic-regions"], tmp_path, REAL, limit=60,
                                   validation_images=8, hard_negatives=3, show_progress=False)
    records = [json.loads(line) for line in (tmp_path / "validation.jsonl").read_text().splitlines()]
    held = {f"RSICD:{r['id']}" for r in records if r["task"] == "rsicd-retrieval"}
    examples = [e for e in read_examples(tmp_path / "train.jsonl") if e.task == "rsicd-mosaic-regions"]
    assert len(held) == 8 and manifest["counts"]["rsicd-mosaic-regions"] == len(examples) > 0
    assert not held & {i for e in examples for i in e.source_ids}
    layouts = {Image.open(path).size for path in _scene_tiles(examples)}
    assert layouts <= {(448, 448), (672, 672)}
    # the held-out images again, as 2x2 mosaics ranked like the two RSMEB mosaic tasks
    ranked = [r for r in records if r["task"] != "rsicd-retrieval"]
    assert ranked and {r["task"] for r in ranked} == {"rsicd-mosaic-region-caption", "rsicd-mosaic-refexp"}
    for r in ranked:
        assert len(r["items"]) == 4 and set(r["items"]) <= held
        query, candidates = Interleaved.from_dict(r["query"]), [Interleaved.from_dict(c) for c in r["candidates"]]
        scene = query.segments[0]
        assert scene.size == (448, 448) and Path(scene.path).parent.parent == home / "data" / "mosaics"
        if r["task"] == "rsicd-mosaic-refexp":  # scene + caption -> the scene with one of its 4 tile boxes
            assert [c.segments[0].path for c in candidates] == [scene.path] * 4 and len(r["positives"]) >= 1
        else:  # scene + box -> one of 10 captions
            assert isinstance(query.segments[1], BoxSegment) and len(candidates) == 10


def test_region_views_match_a_box_to_its_view_with_context(tmp_path, home):
    build_training_data(["rsicd-captions", "rsicd-region-views"], tmp_path, FIXTURES, hard_negatives=2,
                        validation_images=1, show_progress=False)
    records = [json.loads(line) for line in (tmp_path / "validation.jsonl").read_text().splitlines()]
    (held,) = [r["id"] for r in records if r["task"] == "rsicd-retrieval"]
    examples = [e for e in read_examples(tmp_path / "train.jsonl") if e.task == "rsicd-region-views"]
    assert examples and not any(f"RSICD:{held}" in e.source_ids for e in examples)
    for e in examples:
        picture, box = e.query.segments
        width, height = box.bbox_xyxy[2] - box.bbox_xyxy[0], box.bbox_xyxy[3] - box.bbox_xyxy[1]
        assert all(0.1 * side - 1 <= length <= 0.3 * side + 1 for length, side in zip((width, height), picture.size))
        view = e.positive.segments[0]
        assert Path(view.path).parent.parent == home / "data" / "region-views"  # never in the repo
        with Image.open(picture.path) as im:  # the box widened by half its size on every side, clipped
            expected = im.convert("RGB").crop(regions.with_context(tuple(map(int, box.bbox_xyxy)), im.size))
        assert np.array_equal(np.asarray(Image.open(view.path)), np.asarray(expected))
        others = [n.segments[0].path for n in e.negatives]
        assert len(others) == 2 and view.path not in others
        assert all(Path(p).name.startswith(Path(picture.path).stem + "-") for p in others)  # the same image's views
        assert e.query.instruction == get_task("osbs-tree-region").metadata.query_instruction
    ranked = [r for r in records if r["task"] == "rsicd-region-views"]
    assert len(ranked) == 4 and all(r["items"] == [f"RSICD:{held}"] and len(r["candidates"]) == 4 for r in ranked)
    assert sorted(r["positives"][0] for r in ranked) == [0, 1, 2, 3]  # each box's own view among the four
