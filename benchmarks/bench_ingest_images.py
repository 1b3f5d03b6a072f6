"""Image ingest throughput of the shipped geovec-mini on the RSVQA-LR Sentinel-2 tiles, per trunk runtime.

    python benchmarks/bench_ingest_images.py [--repeats 3] [--chip-size 256]
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/bench_ingest_images.py   # capped to AVX2

Prints the CPU (lscpu model and SIMD flags), the machine's measured float32 peak (best of a few 2048^3 sgemm),
the FLOPs per chip (conv + linear + matmul, counted by torch.utils.flop_counter.FlopCounterMode on the original
modules), then, in this one process and after a warm-up (start-up excluded), for each runtime of the frozen
EfficientNet trunk (``modules``: the code before batch-norm folding; ``folded``; ``onnxruntime``): the trunk alone
in images/s and ``ingest_archive`` of all tiles into a fresh index (reading, tiling, thumbnails, embedding,
writing) in chips/s, medians of ``--repeats`` interleaved runs, and the fraction of the peak that is.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from geovec.config import data_dir
from geovec.index import VectorIndex
from geovec.index.kernels import cpu_line
from geovec.ingest.archive import ingest_archive
from geovec.ingest.raster import TileOptions
from geovec.models import load_model
from geovec.models.folded_trunk import onnxruntime_available

def cpu_description() -> str:
    """geovec's CPU line, and which kernels torch picked under the caps."""
    return f"{cpu_line()}\ntorch kernels: {torch.backends.cpu.get_cpu_capability()}; torch {torch.__version__}"


def seconds(run: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def sgemm_peak(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an n^3 matmul: the machine's practical peak for this process."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n**3 / min(seconds(lambda: a @ b, repeats)) / 1e9


def link_tiles(target: Path, count: int | None = None) -> Path:
    target.mkdir(parents=True)
    for tile in sorted((data_dir() / "rsvqa_lr").glob("*.tif"))[:count]:
        (target / tile.name).symlink_to(tile)
    return target


def ingest(embedder, archive: Path, index_folder: Path, options: TileOptions) -> int:  # type: ignore[no-untyped-def]
    with VectorIndex.create(index_folder, embedder.dim, model={"name": embedder.name}) as index:
        return ingest_archive(archive, index, embedder, options, show_progress=False).added


def flops_per_chip(embedder, archive: Path, temp: Path, options: TileOptions) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(whole model, trunk alone) FLOPs per chip, counted on the original modules while ingesting ``archive``."""
    tower = embedder.encoder.vision
    tower.trunk_runtime = "modules"
    with FlopCounterMode(display=False) as counter:
        chips = ingest(embedder, archive, temp / "flops-index", options)
    size = embedder.encoder.settings.image_size
    with FlopCounterMode(display=False) as trunk_counter, torch.inference_mode():
        tower.trunk(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / chips, trunk_counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chip-size", type=int, default=256)
    args = parser.parse_args()
    options = TileOptions(chip_size=args.chip_size)
    runtimes = ["modules", "folded"] + (["onnxruntime"] if onnxruntime_available() else [])
    print(cpu_description())
    peak = sgemm_peak()
    print(f"measured float32 peak (2048^3 sgemm, best of 5): {peak:.1f} GFLOP/s")
    embedder = load_model("geovec-mini")
    tower = embedder.encoder.vision
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        archive, sample = link_tiles(temp / "tiles"), link_tiles(temp / "sample", 8)
        model_flops, trunk_flops = flops_per_chip(embedder, sample, temp, options)
        print(f"FLOPs per chip: {model_flops / 1e9:.3f} G (trunk {trunk_flops / 1e9:.3f} G, "
              f"{trunk_flops / model_flops:.0%}); {len(list(archive.iterdir()))} tiles of {args.chip_size} px")
        size = embedder.encoder.settings.image_size
        pixels = torch.rand(32, 3, size, size) * 2 - 1
        for runtime in runtimes:  # warm-up: folding, ONNX Runtime's session, first-call allocations
            tower.trunk_runtime = runtime
            ingest(embedder, sample, temp / f"warm-{runtime}", options)
        trunk_times: dict[str, list[float]] = {r: [] for r in runtimes}
        ingest_times: dict[str, list[float]] = {r: [] for r in runtimes}
        chips = 0
        for repeat in range(args.repeats):  # interleaved, so that a load burst hits every runtime alike
            for runtime in runtimes:
                tower.trunk_runtime = runtime
                with torch.inference_mode():
                    trunk_times[runtime] += seconds(lambda: tower.trunk(pixels), 1)
                started = time.perf_counter()
                chips = ingest(embedder, archive, temp / f"index-{runtime}-{repeat}", options)
                ingest_times[runtime].append(time.perf_counter() - started)
    print(f"{'trunk runtime':<14}{'trunk img/s':>12}{'ingest chips/s':>16}{'x modules':>10}{'GFLOP/s':>9}"
          f"{'of peak':>9}   (medians of {args.repeats}; {chips} chips per ingest)")
    base = chips / statistics.median(ingest_times["modules"])
    for runtime in runtimes:
        rate = chips / statistics.median(ingest_times[runtime])
        trunk_rate = len(pixels) / statistics.median(trunk_times[runtime])
        achieved = rate * model_flops / 1e9
        print(f"{runtime:<14}{trunk_rate:>12.1f}{rate:>16.1f}{rate / base:>10.2f}{achieved:>9.1f}"
              f"{achieved / peak:>9.1%}")


if __name__ == "__main__":
    main()
