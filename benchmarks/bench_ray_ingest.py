"""Archive ingest throughput on Ray vs the single-machine path, on the real rasters of the shared data folder.

    python benchmarks/bench_ray_ingest.py [--model-path CLIP_CHECKPOINT] [--chip-size 256] [--num-cpus 2]

Archive: ``geotiff/`` and the 102 ``rsvqa_lr/`` tiles (linked into a temporary folder, nothing copied). Each row
ingests the whole archive into a fresh index (thumbnails on) and reports chips/s over all planned chips; Ray rows
include starting the embedding actors (each loads the model) but not starting the local cluster, which is done once
(``ray.init(num_cpus=N)``); with 2 actors each asks for half a CPU so a reader always has one. Without
``--model-path`` the embedder is the test suite's tiny random CLIP, so the rows measure the pipeline, not a model.
Ray pays a fixed start-up per run (each actor imports torch and loads the model: seconds on a busy 2-core machine),
so it only pays off on archives with many chips; ``--chip-size 64`` cuts the same rasters into 16x more chips.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ray

from bench_ingest import tiny_clip
from geovec.config import data_dir
from geovec.index import VectorIndex
from geovec.ingest.archive import ingest_archive
from geovec.ingest.distributed import ingest_archive_ray
from geovec.ingest.raster import TileOptions
from geovec.models import load_model


def link_archive(target: Path) -> Path:
    data = data_dir()
    for folder in ("geotiff", "rsvqa_lr"):
        (target / folder).mkdir(parents=True)
        for file in sorted((data / folder).glob("*.tif")):
            (target / folder / file.name).symlink_to(file)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", type=Path, default=None, help="CLIP checkpoint (default: tiny random CLIP)")
    parser.add_argument("--chip-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = parser.parse_args()
    options = TileOptions(chip_size=args.chip_size)
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        archive = link_archive(temp / "archive")
        model_path = args.model_path or tiny_clip(temp)
        embedder = load_model("clip", model_path)
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        runs = [("single machine", None), ("ray, 1 actor", 1), ("ray, 2 actors", 2)]
        rows = []
        for n, (label, actors) in enumerate(runs):
            with VectorIndex.create(temp / f"index{n}", embedder.dim, model={"name": "clip"}) as index:
                started = time.perf_counter()
                if actors is None:
                    report = ingest_archive(archive, index, embedder, options, batch_size=args.batch_size,
                                            show_progress=False)
                else:
                    report = ingest_archive_ray(archive, index, "clip", model_path, options, num_actors=actors,
                                                num_cpus_per_actor=1 / actors, batch_size=args.batch_size,
                                                show_progress=False)
                rows.append((label, report.chips, report.added, time.perf_counter() - started))
        ray.shutdown()
    print(f"model: {'tiny random CLIP' if args.model_path is None else args.model_path}; chip {args.chip_size} px; "
          f"{report.files} files, {report.chips} chips ({report.skipped_nodata} nodata); Ray cluster: "
          f"{args.num_cpus} CPUs")
    print(f"{'run':<16}{'chips':>7}{'embedded':>10}{'seconds':>9}{'chips/s':>9}{'vs single':>11}")
    base = rows[0][1] / rows[0][3]
    for label, chips, added, seconds in rows:
        print(f"{label:<16}{chips:>7}{added:>10}{seconds:>9.2f}{chips / seconds:>9.1f}{chips / seconds / base:>10.2f}x")


if __name__ == "__main__":
    main()
