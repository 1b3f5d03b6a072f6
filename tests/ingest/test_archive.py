"""Archive ingestion end to end with a tiny randomly initialised CLIP: counts, records, resume, reruns, errors."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.windows import Window
from tolerances import assert_float32_close
from typer.testing import CliRunner

from geovec.config import data_dir
from geovec.errors import GeovecError, GeovecInputError
from geovec.index import GeoFilter, VectorIndex
from geovec.ingest.archive import REPORT_NAME, ingest_archive, read_ahead, read_chip
from geovec.ingest.raster import RasterFile, TileOptions
from geovec.inputs import ImageSegment
from geovec.models import load_model
from geovec.models.folded_trunk import onnxruntime_available

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "geotiff"
BAD = Path(__file__).resolve().parents[1] / "data" / "bad_images"
REAL = data_dir()
CHIPS = TileOptions(chip_size=32)
# utm31 6 chips - 1 all-nodata, wgs84_east 2, uint16_4band 4, scene.png 2, plain.jpg 2, stac visual 1
EXPECTED_ADDED = 16


@pytest.fixture(scope="module")
def clip(tiny_clip_checkpoint):
    return load_model("clip", tiny_clip_checkpoint)


@pytest.fixture
def archive(tmp_path) -> Path:
    return Path(shutil.copytree(FIXTURES, tmp_path / "archive"))


def ingest(archive: Path, index_path: Path, embedder, options: TileOptions = CHIPS, **kwargs):
    with VectorIndex.create(index_path, embedder.dim, model={"name": "clip"}, exist_ok=True) as index:
        report = ingest_archive(archive, index, embedder, options, show_progress=False, **kwargs)
        return report, {id: index.get(id) for id in index.ids()}


class CrashAfter:
    """The real embedder, but the process 'dies' after ``batches`` forward passes (a crash mid-run)."""

    def __init__(self, inner, batches: int) -> None:
        self.inner, self.left = inner, batches
        self.name, self.dim, self.modalities = inner.name, inner.dim, inner.modalities

    def encode(self, inputs, batch_size=32, show_progress=False, instruction=None):
        if self.left == 0:
            raise KeyboardInterrupt("simulated crash")
        self.left -= 1
        return self.inner.encode(inputs, batch_size=batch_size)


def test_fixture_archive_records_thumbnails_and_report(archive, tmp_path, clip):
    report, records = ingest(archive, tmp_path / "idx", clip, batch_size=8)
    assert report.added == len(records) == EXPECTED_ADDED
    assert report.skipped_nodata == 1 and report.files == 6
    assert list(report.failed) == ["corrupt.tif"] and report.ignored == ["other.json"]
    assert report.ungeoreferenced == ["plain.jpg"]
    by_file: dict[str, list] = {}
    for record in records.values():
        by_file.setdefault(record.extra["archive_path"], []).append(record)
    assert sorted(by_file) == ["plain.jpg", "scene.png", "stac/item.json#visual", "uint16_4band.tif",
                               "utm31_rgb.tif", "wgs84_east.tif"]  # thumb.png is the item's thumbnail asset
    for record in by_file["plain.jpg"]:
        assert record.lat is None and record.footprint is None and record.extra["georeferenced"] is False
    (stac,) = by_file["stac/item.json#visual"]
    assert stac.extra["stac"]["item"] == "fixture-item-1" and stac.source == str(archive / "stac" / "visual.tif")
    east = max(by_file["wgs84_east.tif"], key=lambda r: r.lon)
    assert east.footprint == pytest.approx((175, 5, 180, 10)) and east.bbox == (32, 0, 64, 32)
    for record in records.values():
        thumb = tmp_path / "idx" / record.extra["thumbnail"]
        with Image.open(thumb) as image:
            assert image.format == "JPEG" and max(image.size) <= 128
    saved = json.loads((tmp_path / "idx" / REPORT_NAME).read_text())
    assert saved["added"] == EXPECTED_ADDED and "corrupt.tif" in saved["failed"]


def test_the_reader_thread_changes_nothing_that_is_indexed(archive, tmp_path, clip):
    """Chips read ahead in a thread are indexed in the same order, with the same vectors, records, thumbnails
    and report, as chips read one by one between batches."""
    inline, inline_records = ingest(archive, tmp_path / "inline", clip, batch_size=4, read_ahead_chips=0)
    ahead, ahead_records = ingest(archive, tmp_path / "ahead", clip, batch_size=4, read_ahead_chips=3)
    assert list(ahead_records) == list(inline_records) and len(ahead_records) == EXPECTED_ADDED
    with VectorIndex.open(tmp_path / "inline") as first, VectorIndex.open(tmp_path / "ahead") as second:
        assert first.ids() == second.ids()
        assert np.array_equal(first.vectors(first.ids()), second.vectors(second.ids()))
    for id, record in ahead_records.items():
        assert record.extra == inline_records[id].extra
        thumbnail = record.extra["thumbnail"]
        assert (tmp_path / "ahead" / thumbnail).read_bytes() == (tmp_path / "inline" / thumbnail).read_bytes()
    assert (ahead.failed, ahead.skipped_nodata, ahead.files) == (inline.failed, inline.skipped_nodata, inline.files)


def test_read_ahead_keeps_order_raises_in_place_and_stops_its_thread_when_closed():
    closed = []

    def numbers(fail_at: int | None = None):
        try:
            for n in range(100):
                if n == fail_at:
                    raise OSError(f"read error at {n}")
                yield n
        finally:
            closed.append(True)

    assert list(read_ahead(numbers(), 4)) == list(range(100))
    seen = []
    with pytest.raises(OSError, match="read error at 7"):
        seen.extend(read_ahead(numbers(fail_at=7), 4))  # keeps what came before the error
    assert seen == list(range(7))
    stopped = read_ahead(numbers(), 4)
    assert next(stopped) == 0
    stopped.close()  # the consumer failed: the thread ends and closes what it read from
    assert closed == [True, True, True]
    assert not [t for t in threading.enumerate() if t.name == "geovec-ingest-reader"]


def test_reread_chip_is_what_was_embedded(archive, tmp_path, clip):
    _, records = ingest(archive, tmp_path / "idx", clip, thumbnails=False)
    with VectorIndex.open(tmp_path / "idx") as index:
        for id in sorted(records)[:: 4]:
            pixels = read_chip(records[id])
            vector = clip.encode([ImageSegment(pixels)])[0]
            (hit,) = index.search(vector, k=1)
            assert hit.id == id and hit.score == pytest.approx(1.0, abs=1e-5)


def test_rerun_is_idempotent_and_a_grown_folder_adds_only_new_chips(archive, tmp_path, clip):
    first, records = ingest(archive, tmp_path / "idx", clip)
    again, same = ingest(archive, tmp_path / "idx", clip)
    assert again.added == 0 and again.already_indexed == first.added and same.keys() == records.keys()
    (archive / "new").mkdir()
    shutil.copy(archive / "utm31_rgb.tif", archive / "new" / "copy.tif")
    grown, after = ingest(archive, tmp_path / "idx", clip)
    assert grown.added == 5 and len(after) == EXPECTED_ADDED + 5
    assert {r.extra["archive_path"] for id, r in after.items() if id not in records} == {"new/copy.tif"}


def test_a_changed_file_replaces_its_old_chips_and_thumbnails(archive, tmp_path, clip):
    first, records = ingest(archive, tmp_path / "idx", clip)
    old = {id: r for id, r in records.items() if r.extra["archive_path"] == "utm31_rgb.tif"}
    assert len(old) == 5 and all((tmp_path / "idx" / r.extra["thumbnail"]).is_file() for r in old.values())
    changed = archive / "utm31_rgb.tif"
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten in place (a new mtime)
    again, after = ingest(archive, tmp_path / "idx", clip)
    assert (again.replaced, again.added, again.already_indexed) == (5, 5, first.added - 5)
    assert "old chips of changed files deleted 5" in again.summary()
    assert len(after) == len(records) and not old.keys() & after.keys()
    assert not any((tmp_path / "idx" / r.extra["thumbnail"]).exists() for r in old.values())
    new = {id: r for id, r in after.items() if r.extra["archive_path"] == "utm31_rgb.tif"}
    assert sorted(r.bbox for r in new.values()) == sorted(r.bbox for r in old.values())  # same windows, new ids
    steady, _ = ingest(archive, tmp_path / "idx", clip)
    assert (steady.replaced, steady.added) == (0, 0)


def test_replacing_chips_of_one_archive_leaves_another_archive_with_the_same_names_alone(archive, tmp_path, clip):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(archive / "utm31_rgb.tif", other / "utm31_rgb.tif")  # same relative name, another file
    stat = (other / "utm31_rgb.tif").stat()
    os.utime(other / "utm31_rgb.tif", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _, first = ingest(archive, tmp_path / "idx", clip)
    ingest(other, tmp_path / "idx", clip)
    os.utime(other / "utm31_rgb.tif", ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    again, after = ingest(other, tmp_path / "idx", clip)
    assert (again.replaced, again.added) == (5, 5)
    assert first.keys() <= after.keys()  # the first archive's utm31_rgb.tif chips are all still there


def test_chips_of_removed_files_are_counted_and_deleted_only_with_prune(archive, tmp_path, clip):
    _, records = ingest(archive, tmp_path / "idx", clip)
    gone = {id: r for id, r in records.items() if r.extra["archive_path"] == "wgs84_east.tif"}
    assert len(gone) == 2
    (archive / "wgs84_east.tif").unlink()
    kept, after = ingest(archive, tmp_path / "idx", clip)
    assert kept.orphaned == 2 and "(--prune deletes them)" in kept.summary() and after.keys() == records.keys()
    single, _ = ingest(archive / "plain.jpg", tmp_path / "idx", clip, prune=True)  # one file: no folder to judge
    assert single.orphaned == 0
    pruned, after = ingest(archive, tmp_path / "idx", clip, prune=True)
    assert pruned.orphaned == 2 and "chips of removed files deleted 2" in pruned.summary()
    assert after.keys() == records.keys() - gone.keys()
    assert not any((tmp_path / "idx" / r.extra["thumbnail"]).exists() for r in gone.values())


def test_crash_after_two_batches_then_resume_indexes_each_chip_once(archive, tmp_path, clip):
    with pytest.raises(KeyboardInterrupt):
        ingest(archive, tmp_path / "idx", CrashAfter(clip, batches=2), batch_size=4)
    with VectorIndex.open(tmp_path / "idx") as index:
        assert len(index) == 8  # two committed batches, nothing of the third
    resumed, records = ingest(archive, tmp_path / "idx", clip, batch_size=4)
    assert resumed.added == EXPECTED_ADDED - 8 and resumed.already_indexed == 8
    _, clean = ingest(archive, tmp_path / "clean", clip, batch_size=4)
    assert records.keys() == clean.keys()


def test_errors_empty_folder_and_text_only_model(tmp_path, clip):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no rasters here")
    with pytest.raises(GeovecError, match="no rasters"):
        ingest(tmp_path / "empty", tmp_path / "idx", clip)

    text_only = CrashAfter(clip, 0)
    text_only.modalities = frozenset({"text", "point"})  # what minilm states
    with pytest.raises(GeovecError, match="cannot embed images"):
        ingest(FIXTURES, tmp_path / "idx", text_only)


def test_cli_ingest(archive, tmp_path, tiny_clip_checkpoint):
    from geovec.cli.ingest import register
    from geovec.cli.main import app

    if "ingest" not in {command.name for command in app.registered_commands}:
        register(app)
    runner = CliRunner()
    refused = runner.invoke(app, ["ingest", str(archive), "--index", str(tmp_path / "idx"), "--model", "minilm"])
    assert isinstance(refused.exception, GeovecError) and "cannot embed images" in str(refused.exception)
    assert not (tmp_path / "idx").exists()
    args = ["ingest", str(archive), "--index", str(tmp_path / "idx"), "--model", "clip", "--model-path",
            str(tiny_clip_checkpoint), "--chip-size", "32", "--no-thumbnails", "--bands", "1,2,3"]
    refused = runner.invoke(app, [*args, "--precision", "half"])
    assert isinstance(refused.exception, GeovecInputError) and refused.exception.field == "--precision"
    assert not (tmp_path / "idx").exists()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # the default, "auto": clip's passes were never quality-checked, so its own float32 pass is the only candidate
    assert json.loads((tmp_path / "idx" / REPORT_NAME).read_text())["precision"] == "float32"
    assert f"added {EXPECTED_ADDED}," in result.output and "skipped corrupt.tif" in result.output
    assert not (tmp_path / "idx" / "thumbs").exists()
    (archive / "plain.jpg").unlink()
    result = runner.invoke(app, [*args, "--prune"])
    assert result.exit_code == 0 and "added 0," in result.output and "chips of removed files deleted 2" in result.output


@pytest.mark.skipif(not (REAL / "rsvqa_lr" / "0.tif").is_file(), reason="shared data missing")
def test_real_rasters_and_geo_filter(tmp_path, clip):
    archive = tmp_path / "real"
    (archive / "rsvqa").mkdir(parents=True)
    for name in ("geotiff/RGB.byte.tif", "geotiff/world.rgb.tif", "multispectral/rgbn.tif"):
        shutil.copy(REAL / name, archive)
    for tile in ("0.tif", "1.tif", "2.tif"):
        shutil.copy(REAL / "rsvqa_lr" / tile, archive / "rsvqa")
    report, records = ingest(archive, tmp_path / "idx", clip, TileOptions(chip_size=256, max_nodata=0.5))
    assert not report.failed and report.added == len(records)
    tiles = [r for r in records.values() if r.extra["archive_path"].startswith("rsvqa/")]
    assert len(tiles) == 3
    for tile in tiles:
        assert 4.5 < tile.lon < 6.3 and 50.7 < tile.lat < 52.3 and tile.bbox == (0, 0, 256, 256)
    byte = [r for r in records.values() if r.extra["archive_path"] == "RGB.byte.tif"]
    assert len(byte) == 12 - report.skipped_nodata and all(r.extra["nodata_fraction"] <= 0.5 for r in byte)
    box = (-78.0, 23.0, -76.0, 26.0)  # the eastern part of the Bahamas scene
    with VectorIndex.open(tmp_path / "idx") as index:
        hits = index.search(np.ones(clip.dim, dtype=np.float32) / np.sqrt(clip.dim), k=100, filter=GeoFilter(within=box))
    inside = {id for id, r in records.items() if r.lat is not None and GeoFilter(within=box).matches(r.lat, r.lon)}
    assert {hit.id for hit in hits} == inside and inside
    for hit in hits:  # the filter tests the chip centre; the footprint may reach outside the box
        assert box[0] <= hit.record.lon <= box[2] and box[1] <= hit.record.lat <= box[3]
        assert hit.record.extra["archive_path"] == "RGB.byte.tif"


def test_report_names_each_files_nodata_source_and_footprints_cover_the_data(archive, tmp_path, clip):
    report, records = ingest(archive, tmp_path / "idx", clip, thumbnails=False)
    assert report.nodata["utm31_rgb.tif"] == "the file's own mask"
    assert report.nodata["wgs84_east.tif"] == "none (every pixel is data)"
    assert json.loads((tmp_path / "idx" / REPORT_NAME).read_text())["nodata"] == report.nodata
    (lower,) = [r for r in records.values() if r.extra["archive_path"] == "uint16_4band.tif" and r.bbox[:2] == (0, 16)]
    assert lower.extra["nodata"] == {"source": "mask", "value": 0.0} and lower.bbox == (0, 16, 32, 48)
    # rows 40-47 are nodata: the footprint ends at row 40 (10 m pixels from y 5695000), not at the window's row 48
    _, lats = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform([505000, 505320],
                                                                                       [5694600, 5694600])
    assert lower.footprint[1] == pytest.approx(min(lats), abs=1e-9)


def test_a_raw_scene_with_a_declared_nodata_keeps_it_through_a_reread(tmp_path, clip):
    data = np.full((3, 64, 64), 2000, dtype=np.uint16)
    data[:, :, 48:] = 7  # the product's fill, declared on the command line, not in the file
    data[:, :32, :20] = 3000
    path = tmp_path / "archive" / "raw.tif"
    path.parent.mkdir()
    with rasterio.open(path, "w", driver="GTiff", count=3, height=64, width=64, dtype="uint16", crs="EPSG:32631",
                       transform=from_origin(500000, 5700000, 10, 10)) as dst:
        dst.write(data)
    report, records = ingest(path.parent, tmp_path / "idx", clip, TileOptions(chip_size=32, nodata=7))
    assert report.nodata == {"raw.tif": "declared 7"} and report.added == 4
    for record in records.values():
        assert record.extra["nodata"] == {"source": "declared", "value": 7}
        with RasterFile(path, TileOptions(chip_size=32, nodata=7)) as raster:
            expected, _ = raster.read(Window(*record.extra["window"]))
        np.testing.assert_array_equal(read_chip(record), expected)  # the fill stays black in a re-read


@pytest.fixture
def sparse_huge(tmp_path) -> Path:
    path = tmp_path / "sparse.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100_000, height=100_000, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=from_origin(500000, 5700000, 1, 1), tiled=True,
                       sparse_ok=True, compress="deflate") as dst:
        dst.write(np.full((3, 8, 8), 99, dtype=np.uint8), window=Window(0, 0, 8, 8))
    return path


def geovec_cli(monkeypatch, capsys, *args: str) -> tuple[int, list[str]]:
    """The real ``geovec`` entry point (with its one-line error wrapper) in this process: exit code, stderr lines."""
    from geovec.cli.main import main

    monkeypatch.setattr(sys, "argv", ["geovec", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.timeout(120)  # old code: the sparse raster was chipped for hours
@pytest.mark.parametrize("case, message", [
    ("truncated", "every file failed (1 of 1): truncated.tif: "),
    ("only-corrupt", "every file failed (2 of 2): corrupt.tif: "),
    ("bands", "cannot select bands [5, 6, 7]"),
    ("report", "error: --report: folder "),
    ("sparse", "152,881 chips of 256 px, more than --max-chips 50,000: read it coarser (--resolution"),
    ("bomb", "a 30000x30000 PNG (900 Mpx, over 89)"),
])
def test_bad_archives_give_one_error_line_and_exit_2(case, message, tmp_path, monkeypatch, capsys,
                                                     tiny_clip_checkpoint, sparse_huge):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    shutil.copy(FIXTURES / "corrupt.tif", corrupt)
    shutil.copy(BAD / "truncated.tif", corrupt)
    target = {"truncated": BAD / "truncated.tif", "only-corrupt": corrupt, "bands": FIXTURES / "utm31_rgb.tif",
              "report": FIXTURES / "utm31_rgb.tif", "sparse": sparse_huge, "bomb": BAD / "bomb.png"}[case]
    extra = {"bands": ["--bands", "5,6,7"], "report": ["--report", str(tmp_path / "missing" / "r.json")]}
    code, lines = geovec_cli(monkeypatch, capsys, "ingest", str(target), "--index", str(tmp_path / "idx"),
                             "--model", "clip", "--model-path", str(tiny_clip_checkpoint), *extra.get(case, []))
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and message in lines[0]
    if case == "report":  # refused before the model is loaded or the index made
        assert not (tmp_path / "idx").exists()
    if case == "truncated":
        assert "the file is truncated or corrupt" in lines[0]


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "rsvqa_lr" / "0.tif").is_file(), reason="shared data missing")
def test_the_fast_image_path_indexes_what_the_original_modules_do_on_real_tiles(tmp_path):
    """The shipped geovec-mini's ingest default (chips read ahead, trunk + trainable units folded in ONNX Runtime
    or torch) stores the vectors of the original modules read inline, up to float32 rounding, on RSVQA-LR tiles."""
    archive = tmp_path / "tiles"
    archive.mkdir()
    for tile in ("0.tif", "1.tif", "10.tif", "11.tif", "12.tif"):
        (archive / tile).symlink_to(REAL / "rsvqa_lr" / tile)
    mini = load_model("geovec-mini")
    tower = mini.encoder.vision
    vectors = {}
    for runtime in ("modules", "folded", *(["onnxruntime"] if onnxruntime_available() else [])):
        tower.trunk_runtime = runtime
        ahead = 0 if runtime == "modules" else 64
        with VectorIndex.create(tmp_path / runtime, mini.dim, model={"name": mini.name}) as index:
            ingest_archive(archive, index, mini, TileOptions(chip_size=256), show_progress=False, batch_size=4,
                           read_ahead_chips=ahead)
            vectors[runtime] = index.vectors(index.ids())
    tower.trunk_runtime = "auto"
    expected = vectors.pop("modules")
    assert len(expected) == 5
    for runtime, found in vectors.items():  # 1536: the widest sum (the transformer's feed-forward)
        assert_float32_close(found, expected, terms=1536, scale=1.0, what=runtime)
