"""Archive ingest on Ray (a real local Ray cluster, tiny random CLIP): same index as the single-machine path,
resumable after a driver crash, the CLI's ``--ray``, and input errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from geovec.errors import GeovecError, GeovecInputError
from geovec.index import VectorIndex
from geovec.ingest.archive import ingest_archive, plan_archive
from geovec.ingest.raster import TileOptions
from geovec.models import load_model

ray = pytest.importorskip("ray", reason="the Ray path needs the 'scale' extra: pip install 'geovec[scale]'")
from geovec.ingest.distributed import ingest_archive_ray  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "geotiff"
CHIPS = TileOptions(chip_size=32)
EXPECTED_ADDED = 16  # as in test_archive.py


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One small local cluster for the module (startup costs seconds; the machine is shared)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return Path(shutil.copytree(FIXTURES, tmp_path_factory.mktemp("ray") / "archive"))


@pytest.fixture(scope="module")
def single(archive, tmp_path_factory, tiny_clip_checkpoint):
    """The single-machine ingest of the fixture archive: the reference."""
    path = tmp_path_factory.mktemp("single") / "idx"
    clip = load_model("clip", tiny_clip_checkpoint)
    with VectorIndex.create(path, clip.dim, model={"name": "clip"}) as index:
        report = ingest_archive(archive, index, clip, CHIPS, batch_size=8, show_progress=False)
        return report, _contents(index)


def _contents(index: VectorIndex) -> dict:
    ids = index.ids()
    return {id: (index.get(id), vector) for id, vector in zip(ids, index.vectors(ids))}


def _ray_ingest(archive: Path, path: Path, checkpoint: Path, index_class=VectorIndex, **kwargs):
    with index_class.create(path, 16, model={"name": "clip"}, exist_ok=True) as index:
        report = ingest_archive_ray(archive, index, "clip", checkpoint, CHIPS, batch_size=8, show_progress=False,
                                    **kwargs)
        return report, _contents(index)


def _assert_same(contents: dict, reference: dict, index_path: Path) -> None:
    assert sorted(contents) == sorted(reference)
    for id, (record, vector) in contents.items():
        expected, expected_vector = reference[id]
        np.testing.assert_allclose(vector, expected_vector, atol=1e-5)
        assert {**record.to_dict(), "extra": None} == {**expected.to_dict(), "extra": None}
        extra, expected_extra = dict(record.extra), dict(expected.extra)
        assert extra.pop("thumbnail") == expected_extra.pop("thumbnail") == f"thumbs/{id}.jpg"
        assert extra == expected_extra
        assert (index_path / "thumbs" / f"{id}.jpg").stat().st_size > 0


def test_ray_ingest_equals_single_machine_ingest(archive, single, tmp_path, tiny_clip_checkpoint):
    reference_report, reference = single
    report, contents = _ray_ingest(archive, tmp_path / "idx", tiny_clip_checkpoint, num_actors=1)
    assert report.added == len(contents) == reference_report.added == EXPECTED_ADDED
    assert (report.files, report.chips, report.skipped_nodata) == (reference_report.files, reference_report.chips, 1)
    assert report.failed == reference_report.failed and report.ungeoreferenced == reference_report.ungeoreferenced
    _assert_same(contents, reference, tmp_path / "idx")


class CrashingIndex(VectorIndex):
    """The real index; the driver 'dies' on its ``crash_at``-th commit (a crash mid-run)."""

    crash_at = 2

    def add(self, records, vectors, *, upsert=False):
        self.crash_at -= 1
        if self.crash_at == 0:
            raise KeyboardInterrupt("simulated driver crash")
        return super().add(records, vectors, upsert=upsert)


def test_driver_crash_then_rerun_indexes_every_chip_once(archive, single, tmp_path, tiny_clip_checkpoint):
    path = tmp_path / "idx"
    with pytest.raises(KeyboardInterrupt):
        _ray_ingest(archive, path, tiny_clip_checkpoint, CrashingIndex)
    with VectorIndex.open(path) as index:
        committed = set(index.ids())
    assert 0 < len(committed) <= 8  # the first batch's commit, nothing of the second
    report, contents = _ray_ingest(archive, path, tiny_clip_checkpoint, num_actors=2, num_cpus_per_actor=0.5)
    assert report.already_indexed == len(committed) and report.added == EXPECTED_ADDED - len(committed)
    _assert_same(contents, single[1], path)
    with VectorIndex.open(path) as index:  # a third run would find only the nodata chip left to read
        plans, rerun = plan_archive(archive, index, CHIPS)
    assert rerun.already_indexed == EXPECTED_ADDED and sum(len(plan.chips) for plan in plans) == 1


def test_cli_ingest_with_ray(archive, single, tmp_path, tiny_clip_checkpoint):
    from geovec.cli.main import app

    index = tmp_path / "idx"
    result = CliRunner().invoke(app, ["ingest", str(archive), "--index", str(index), "--model", "clip",
                                      "--model-path", str(tiny_clip_checkpoint), "--chip-size", "32",
                                      "--batch-size", "8", "--ray", "auto", "--ray-actors", "1"])
    assert result.exit_code == 0, result.output
    assert f"added {EXPECTED_ADDED}" in result.output
    with VectorIndex.open(index) as store:
        assert sorted(store.ids()) == sorted(single[1])


def test_errors_before_any_work(archive, tmp_path, tiny_clip_checkpoint):
    with VectorIndex.create(tmp_path / "idx", 16) as index:
        with pytest.raises(GeovecError, match="cannot embed images"):
            ingest_archive_ray(archive, index, "minilm", None)
        with pytest.raises(GeovecInputError, match="num_actors: must be a positive integer"):
            ingest_archive_ray(archive, index, "clip", tiny_clip_checkpoint, num_actors=0)
        assert len(index) == 0
