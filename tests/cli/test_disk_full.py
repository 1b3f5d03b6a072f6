"""A disk that fills up during `geovec index build`, `embed` and `ingest`: a real 2 MB tmpfs, nearly full.

The command must stop with one line saying the disk is full (not SQLite's "cannot rollback - no transaction is
active"), keep what it committed, and finish when re-run after space is freed. Mounting needs root (or
CAP_SYS_ADMIN); elsewhere these tests are skipped.
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from geovec.ingest import embed
from tests.cli.test_index_build_inputs import _error_line, geovec

TIFF = Path(__file__).parents[1] / "data" / "geotiff" / "utm31_rgb.tif"


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs of which a filler file takes all but ``free_kb``; yields (mount point, filler)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)  # lazy: a failed run may hold a file


def _fill(disk: Path, free_kb: int) -> Path:
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (2048 - free_kb) * 1024)
    return filler


@pytest.fixture
def run(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GEOVEC_HOME", str(tmp_path / "home"))
    return lambda *args: geovec(monkeypatch, capsys, *args)


def test_index_build_on_a_full_disk_says_so_keeps_the_records_and_a_rerun_completes(run, tmp_path, small_disk):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"scene-{n}", "input": f"harbour number {n} with cranes"}) + "\n"
                             for n in range(200)))
    index = small_disk / "idx"
    filler = _fill(small_disk, free_kb=300)  # room for a batch or two of 64 384-d vectors, not for 200
    code, stderr = run("index", "build", str(items), "--index", str(index))
    assert code == 2 and _error_line(stderr) == (f"error: disk full while writing {index}: free space and re-run; "
                                                 "records already written are kept")
    filler.unlink()
    code, stderr = run("index", "build", str(items), "--index", str(index))
    assert code == 0, stderr
    kept = int(stderr.split("already present ")[1].split(",")[0])
    assert kept > 0 and stderr.strip().endswith(f"added {200 - kept}, already present {kept}, total 200")


def test_embed_on_a_full_disk_says_so_and_a_rerun_completes(run, tmp_path, small_disk, monkeypatch):
    monkeypatch.setattr(embed, "CHUNK_SIZE", 64)  # three chunk files (96 KB each) from 150 inputs
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps(f"harbour number {n} with cranes") + "\n" for n in range(150)))
    output = small_disk / "vectors.npy"
    filler = _fill(small_disk, free_kb=150)  # the first chunk fits, the second does not
    code, stderr = run("embed", str(inputs), "-o", str(output))
    assert code == 2 and _error_line(stderr).startswith("error: disk full while writing ")
    assert not output.exists()
    filler.unlink()
    code, stderr = run("embed", str(inputs), "-o", str(output))
    assert code == 0, stderr
    assert np.load(output).shape == (150, 384)


def test_ingest_on_a_full_disk_says_so(run, small_disk):
    _fill(small_disk, free_kb=40)
    code, stderr = run("ingest", str(TIFF), "--index", str(small_disk / "idx"), "--chip-size", "64")
    assert code == 2 and _error_line(stderr).startswith("error: disk full while writing ")
