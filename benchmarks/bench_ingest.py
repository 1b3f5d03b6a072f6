"""Archive ingestion throughput on the real rasters of the shared data folder.

    python benchmarks/bench_ingest.py [--model-path CLIP_CHECKPOINT] [--chip-size 256] [--resolution M]

Archive: every raster of ``geotiff/``, ``multispectral/`` and the 102 ``rsvqa_lr/`` tiles (linked into a temporary
folder, nothing copied). Rows: chip planning + reading (I/O, tiling, footprints, scaling; no model), end-to-end
ingest into a fresh index (thumbnails on), and a rerun (everything already indexed). Without ``--model-path`` the
embedder is a tiny randomly initialised CLIP (the real architecture, so the row measures geovec's overhead, not
a real model's compute).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from geovec.config import data_dir
from geovec.index import VectorIndex
from geovec.ingest.archive import discover, ingest_archive
from geovec.ingest.raster import RasterFile, TileOptions
from geovec.models import load_model


def tiny_clip(folder: Path) -> Path:
    """The test suite's tiny CLIP (tests/conftest.py), saved to ``folder``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import build_tiny_clip

    return build_tiny_clip(folder)


def link_archive(target: Path) -> Path:
    data = data_dir()
    files = [*sorted((data / "geotiff").glob("*.tif")), *sorted((data / "multispectral").glob("*.tif"))]
    (target / "rsvqa_lr").mkdir(parents=True)
    for file in files:
        (target / file.name).symlink_to(file)
    for tile in sorted((data / "rsvqa_lr").glob("*.tif")):
        (target / "rsvqa_lr" / tile.name).symlink_to(tile)
    return target


def read_only(archive: Path, options: TileOptions) -> tuple[int, float]:
    started, chips = time.perf_counter(), 0
    sources, _ = discover(archive)
    for source in sources:
        with RasterFile(source.path, options) as raster:
            windows = raster.windows()
            raster.footprints(windows)
            for window in windows:
                raster.read(window)
                chips += 1
    return chips, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", type=Path, default=None, help="CLIP checkpoint (default: tiny random CLIP)")
    parser.add_argument("--chip-size", type=int, default=256)
    parser.add_argument("--resolution", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    options = TileOptions(chip_size=args.chip_size, resolution=args.resolution)
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        archive = link_archive(temp / "archive")
        model_path = args.model_path or tiny_clip(temp)
        embedder = load_model("clip", model_path)
        rows = []
        chips, seconds = read_only(archive, options)
        rows.append(("read + tile (no model)", chips, 0, seconds))
        with VectorIndex.create(temp / "index", embedder.dim, model={"name": "clip"}) as index:
            for label in ("end-to-end ingest", "rerun (all indexed)"):
                started = time.perf_counter()
                report = ingest_archive(archive, index, embedder, options, batch_size=args.batch_size,
                                        show_progress=False)
                rows.append((label, report.chips, report.added, time.perf_counter() - started))
        print(f"model: {'tiny random CLIP' if args.model_path is None else args.model_path}; chip {args.chip_size} px;"
              f" {report.files} files, {report.chips} chips ({report.skipped_nodata} skipped as nodata)")
        print(f"{'run':<26}{'chips':>8}{'embedded':>10}{'seconds':>10}{'chips/s':>10}")
        for label, count, embedded, seconds in rows:
            print(f"{label:<26}{count:>8}{embedded:>10}{seconds:>10.2f}{count / seconds:>10.1f}")


if __name__ == "__main__":
    main()
