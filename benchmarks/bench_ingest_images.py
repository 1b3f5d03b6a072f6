"""Image ingest throughput of the shipped geovec-mini on the RSVQA-LR Sentinel-2 tiles: the old path vs each step.

    python benchmarks/bench_ingest_images.py [--repeats 3] [--chip-size 256]
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 GEOVEC_CPU_BF16=0 python benchmarks/bench_ingest_images.py

Prints the CPU (lscpu model and SIMD flags), the machine's measured float32 peak (best of a few 2048^3 sgemm),
the FLOPs per chip (conv + linear + matmul, counted by torch.utils.flop_counter.FlopCounterMode on the original
modules), then, in this one process and after a warm-up (start-up excluded), ``ingest_archive`` of all tiles into
a fresh index (planning, reading, tiling, thumbnails, embedding, writing) in chips/s for each step, interleaved
``--repeats`` times so that a load burst of the shared machine hits every step alike: median and best, the ratio
of the medians to the old path, the fraction of the peak the best run reaches, and the process's CPU time per
chip (all threads; less sensitive to other processes' load than wall time). The steps:

* ``modules`` (``--with-modules``): the EfficientNet modules as trained (no folding), chips read between batches;
* ``old``: the session-9 path: the folded trunk in ONNX Runtime, the trainable top in its modules, inline reads;
* ``+read-ahead``: chips read, stretched and thumbnailed by a thread ahead of the model;
* ``+folded top``: the trainable units folded and run in the trunk's ONNX Runtime graph (the default now);
* ``+bfloat16``: the transformer's linear layers in bfloat16 (``--precision auto`` of ``geovec ingest``), only
  where the CPU has native bfloat16 (not under GEOVEC_CPU_BF16=0).

Also the trunk alone (images/s) in ONNX Runtime (with ``--with-modules``, also modules and folded torch).
"""

from __future__ import annotations

from geovec.threads import sleeping_openmp_threads

sleeping_openmp_threads()  # as `geovec ingest` does, before torch loads

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from geovec.config import data_dir
from geovec.index import VectorIndex
from geovec.index.kernels import cpu_line
from geovec.ingest.archive import READ_AHEAD, ingest_archive
from geovec.ingest.raster import TileOptions
from geovec.models import load_model
from geovec.models.folded_trunk import onnxruntime_available
from geovec.precision import bfloat16_allowed


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


def ingest(embedder, archive: Path, index_folder: Path, options: TileOptions,  # type: ignore[no-untyped-def]
           read_ahead_chips: int = READ_AHEAD) -> int:
    with VectorIndex.create(index_folder, embedder.dim, model={"name": embedder.name}) as index:
        return ingest_archive(archive, index, embedder, options, show_progress=False,
                              read_ahead_chips=read_ahead_chips).added


@contextmanager
def step(embedder, name: str) -> Iterator[tuple]:  # type: ignore[no-untyped-def]
    """Set up the model for step ``name`` (see the module docstring); yields the embedder and the read-ahead."""
    tower = embedder.encoder.vision
    tower.trunk_runtime = "modules" if name == "modules" else "onnxruntime"
    if name == "old":  # the trainable units through their modules after the ONNX Runtime trunk, as before
        tower.forward = lambda pixels: tower.head(functools.reduce(lambda x, unit: unit(x), tower.trainable,
                                                                   tower.trunk(pixels)))
    try:
        yield (embedder.with_query_pass("lean/bfloat16") if name == "+bfloat16" else embedder,
               0 if name in ("modules", "old") else READ_AHEAD)
    finally:
        tower.__dict__.pop("forward", None)
        tower.trunk_runtime = "auto"


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
    parser.add_argument("--with-modules", action="store_true", help="also the unfolded modules (slow: ~4x the old "
                        "path) and the folded torch trunk")
    args = parser.parse_args()
    options = TileOptions(chip_size=args.chip_size)
    if not onnxruntime_available():
        raise SystemExit("the steps after 'modules' need the onnx extra: pip install 'geovec[onnx]'")
    runtimes = ["modules", "folded", "onnxruntime"] if args.with_modules else ["onnxruntime"]
    steps = ["modules"] * args.with_modules + ["old", "+read-ahead", "+folded top"]
    steps += ["+bfloat16"] if bfloat16_allowed("cpu") else []  # GEOVEC_CPU_BF16=0: as on a CPU without it
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
        for name in steps:  # warm-up: folding, ONNX Runtime's sessions, first-call allocations
            with step(embedder, name) as (stepped, ahead):
                ingest(stepped, sample, temp / f"warm-{name}", options, ahead)
        trunk_times: dict[str, list[float]] = {r: [] for r in runtimes}
        ingest_times: dict[str, list[float]] = {s: [] for s in steps}
        cpu_times: dict[str, list[float]] = {s: [] for s in steps}  # this process's CPU seconds (all threads)
        chips = 0
        for repeat in range(args.repeats):  # interleaved, so that a load burst hits every step alike
            for runtime in runtimes:
                tower.trunk_runtime = runtime
                with torch.inference_mode():
                    trunk_times[runtime] += seconds(lambda: tower.trunk(pixels), 1)
            tower.trunk_runtime = "auto"
            for name in steps:
                with step(embedder, name) as (stepped, ahead):
                    started, cpu = time.perf_counter(), time.process_time()
                    chips = ingest(stepped, archive, temp / f"index-{steps.index(name)}-{repeat}", options, ahead)
                    ingest_times[name].append(time.perf_counter() - started)
                    cpu_times[name].append(time.process_time() - cpu)
    print(f"{'trunk runtime':<14}{'trunk img/s':>12}   (medians of {args.repeats}, batches of {len(pixels)})")
    for runtime in runtimes:
        print(f"{runtime:<14}{len(pixels) / statistics.median(trunk_times[runtime]):>12.1f}")
    print(f"{'ingest step':<14}{'median chips/s':>15}{'best':>7}{'x old':>7}{'GFLOP/s':>9}{'of peak':>9}"
          f"{'CPU ms/chip':>12}   (best and medians of {args.repeats}; {chips} chips per ingest; CPU: median)")
    old = chips / statistics.median(ingest_times["old"])
    for name in steps:
        rate, best = chips / statistics.median(ingest_times[name]), chips / min(ingest_times[name])
        achieved = best * model_flops / 1e9
        cpu_ms = 1000 * statistics.median(cpu_times[name]) / chips
        print(f"{name:<14}{rate:>15.1f}{best:>7.1f}{rate / old:>7.2f}{achieved:>9.1f}{achieved / peak:>9.1%}"
              f"{cpu_ms:>12.1f}")


if __name__ == "__main__":
    main()
