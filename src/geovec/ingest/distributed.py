"""``geovec ingest --ray``: the archive ingest of ``geovec.ingest.archive`` spread over a Ray cluster.

The work is split where it is cheap to split. The *driver* (this process) plans: it discovers the archive, opens
each raster's header, lays out chip windows, footprints and ids, and drops ids already in the index, exactly as the
single-machine path does (``plan_archive``). The plan becomes a ``ray.data`` dataset of small chip descriptors;
*reader tasks* read the pixels and make the thumbnail JPEGs (``read_planned_chip``, the same function the
single-machine path calls), and a pool of *embedding actors* (each loads the model once, and gets a GPU when
``num_gpus_per_actor`` asks for one) turns pixels into vectors. Results stream back to the driver, which writes
thumbnails and adds each batch to the index in one transaction. (On CPU-only actors Ray fuses the read into the
actors; when actors ask for GPUs, reads stay separate CPU tasks, so the GPUs only embed.)

Why the driver writes: the index is one SQLite database with one writer, so all commits go through one process;
every batch it commits is final, and ids are planned before any pixel is read. A run killed at any point (driver,
worker or node) is finished by running it again: committed chips are skipped at planning, the rest are embedded
once, and the result is the same index (same ids, same vectors to float tolerance) as ``geovec ingest`` without Ray.

Workers must see the archive and the model checkpoint at the same paths as the driver (a shared filesystem, or a
single machine), and must have geovec installed (or a ``runtime_env`` that ships it).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from geovec.errors import GeovecError, GeovecInputError
from geovec.index import Record, VectorIndex
from geovec.ingest.archive import (READ_ERRORS, ArchiveReport, ChipPlan, Source, check_image_model, finish_report,
                                   plan_archive, read_planned_chip)
from geovec.ingest.raster import Footprint, RasterFile, TileOptions
from geovec.ingest.thumbnails import thumbnail_jpeg, write_thumbnail
from geovec.inputs import GeoRef, ImageSegment, Interleaved
from geovec.models.base import l2_normalize
from geovec.progress import progress_bar

Batch = dict[str, np.ndarray]
OK, NODATA, FAILED = "ok", "nodata", "failed"
MAX_BLOCKS = 1024


def _descriptors(plans: list[ChipPlan]) -> list[dict[str, Any]]:
    """One small, Arrow-friendly row per planned chip (JSON strings for the nested parts)."""
    return [{"path": str(plan.source.path), "name": plan.source.name, "stac": json.dumps(plan.source.stac),
             "window": [int(w.col_off), int(w.row_off), int(w.width), int(w.height)],
             "footprint": json.dumps(asdict(fp) if fp else None), "id": id}
            for plan in plans for w, fp, id in plan.chips]


def _footprint(text: str) -> Footprint | None:
    data = json.loads(text)
    if data is None:
        return None
    return Footprint(data["lat"], data["lon"], tuple(data["bbox"]), tuple(tuple(c) for c in data["corners"]))


def read_chips(batch: Batch, options: TileOptions, thumbnails: bool) -> Batch:
    """Reader task: descriptors -> record JSON, pixels, georef and thumbnail JPEG (or the status why not).

    Consecutive chips of one file share one open raster; a file that fails fails its remaining chips in the batch,
    as in the single-machine path.
    """
    from rasterio.windows import Window

    out: dict[str, list] = {key: [] for key in ("id", "name", "status", "error", "record", "pixels", "shape",
                                                "georef", "thumbnail")}

    def emit(id: str, name: str, status: str, error: str = "", record: str = "", pixels: bytes = b"",
             shape: tuple[int, int] = (0, 0), georef: str = "", thumbnail: bytes = b"") -> None:
        for key, value in zip(out, (id, name, status, error, record, pixels, shape, georef, thumbnail)):
            out[key].append(value)

    rows = list(zip(batch["path"], batch["name"], batch["stac"], batch["window"], batch["footprint"], batch["id"]))
    start = 0
    while start < len(rows):
        path, name, stac = rows[start][:3]
        end = start
        while end < len(rows) and rows[end][0] == path:
            end += 1
        source = Source(Path(path), name, json.loads(stac))
        done = start
        try:
            with RasterFile(source.path, options) as raster:
                for _, _, _, window, footprint, id in rows[start:end]:
                    chip = read_planned_chip(source, raster, Window(*(int(v) for v in window)), _footprint(footprint),
                                             id, options)
                    if chip is None:
                        emit(id, name, NODATA)
                    else:
                        georef = json.dumps(asdict(chip.georef)) if chip.georef else ""
                        emit(id, name, OK, record=json.dumps(chip.record.to_dict()), pixels=chip.pixels.tobytes(),
                             shape=chip.pixels.shape[:2], georef=georef,
                             thumbnail=thumbnail_jpeg(chip.pixels) if thumbnails else b"")
                    done += 1
        except READ_ERRORS as exc:
            for row in rows[done:end]:
                emit(row[5], name, FAILED, error=str(exc))
        start = end
    result = {key: np.array(values, dtype=object) for key, values in out.items()}
    result["shape"] = np.array(out["shape"], dtype=np.int64).reshape(-1, 2)
    return result


class ChipEmbedder:
    """Embedding actor: loads the model once (on this actor's GPU when Ray gave it one) and embeds read chips."""

    def __init__(self, model: str, model_path: str | None, dim: int, instruction: str | None = None) -> None:
        import ray

        from geovec.models import load_model

        self.embedder = load_model(model, model_path, device="cuda" if ray.get_gpu_ids() else None)
        if self.embedder.dim != dim:
            raise GeovecError(f"the index holds {dim}-d vectors but model {model!r} makes {self.embedder.dim}-d ones")
        self.instruction = instruction  # the index's item instruction, as in the single-machine path

    def __call__(self, batch: Batch) -> Batch:
        ok = np.flatnonzero(batch["status"] == OK)
        vectors = np.zeros((len(batch["status"]), self.embedder.dim), np.float32)
        if len(ok):
            inputs = []
            for i in ok:
                h, w = (int(v) for v in batch["shape"][i])
                pixels = np.frombuffer(batch["pixels"][i], np.uint8).reshape(h, w, 3)
                georef = GeoRef(**json.loads(batch["georef"][i])) if batch["georef"][i] else None
                inputs.append(Interleaved((ImageSegment(pixels, georef=georef),)))
            vectors[ok] = self.embedder.encode(inputs, batch_size=len(inputs), instruction=self.instruction)
        keep = ("id", "name", "status", "error", "record", "thumbnail")
        return {**{key: batch[key] for key in keep}, "vector": vectors}


def _record(data: dict) -> Record:
    for name in ("bbox", "footprint"):
        if data[name] is not None:
            data[name] = tuple(data[name])
    return Record(**data)


def _write_batch(batch: Batch, index: VectorIndex, report: ArchiveReport) -> None:
    """Commit one result batch: thumbnails first (so a committed record's thumbnail exists), then one transaction."""
    records, vectors = [], []
    for i, status in enumerate(batch["status"]):
        if status == NODATA:
            report.skipped_nodata += 1
        elif status == FAILED:
            name = str(batch["name"][i])
            report.files -= name not in report.failed  # counted when planned; "every file failed" must see it
            report.failed[name] = str(batch["error"][i])
        elif not index.contains(str(batch["id"][i])):  # another run committed it since planning
            record = _record(json.loads(batch["record"][i]))
            if len(batch["thumbnail"][i]):
                record.extra["thumbnail"] = write_thumbnail(index.path, record.id, bytes(batch["thumbnail"][i]))
            records.append(record)
            vectors.append(batch["vector"][i])
    if records:
        index.add(records, l2_normalize(np.stack(vectors).astype(np.float32)))
        report.added += len(records)


def _connect(address: str | None) -> bool:
    """Join the cluster at ``address`` ("auto", "ray://host:10001") or start a local one; True if we connected."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    return True


def ingest_archive_ray(path: str | Path, index: VectorIndex, model: str, model_path: str | Path | None,
                       options: TileOptions = TileOptions(), *, address: str | None = None, num_actors: int = 1,
                       batch_size: int = 32, num_gpus_per_actor: float = 0, num_cpus_per_actor: float = 1,
                       thumbnails: bool = True, report_path: str | Path | None = None,
                       show_progress: bool = True, prune: bool = False) -> ArchiveReport:
    """Chip every raster under ``path`` on a Ray cluster and add the chips not yet in ``index``.

    ``model``/``model_path`` name the embedder each actor loads (the path must exist on every node).
    ``num_actors`` embedding actors run at once, each with ``num_gpus_per_actor`` GPUs and ``num_cpus_per_actor``
    CPUs; ``batch_size`` chips go through each forward pass and each index commit.
    """
    from geovec.models import get_spec

    for name, value in (("num_actors", num_actors), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GeovecInputError(name, f"must be a positive integer, got {value!r}")
    for name, value in (("num_gpus_per_actor", num_gpus_per_actor), ("num_cpus_per_actor", num_cpus_per_actor)):
        if not isinstance(value, (int, float)) or value < 0:
            raise GeovecInputError(name, f"must be a number >= 0, got {value!r}")
    check_image_model(model, get_spec(model).modalities)
    started = time.perf_counter()
    plans, report = plan_archive(path, index, options, prune)
    rows = _descriptors(plans)
    if rows:
        import ray
        import ray.data

        connected = _connect(address)
        try:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            blocks = min(math.ceil(len(rows) / batch_size), MAX_BLOCKS)  # one read task per batch, bounded
            dataset = (ray.data.from_items(rows, override_num_blocks=blocks)
                       .map_batches(read_chips, batch_size=batch_size, batch_format="numpy",
                                    fn_kwargs={"options": options, "thumbnails": thumbnails})
                       .map_batches(ChipEmbedder, batch_size=batch_size, batch_format="numpy",
                                    compute=ray.data.ActorPoolStrategy(size=num_actors), num_gpus=num_gpus_per_actor,
                                    num_cpus=num_cpus_per_actor,
                                    fn_constructor_kwargs={"model": model, "dim": index.dim,
                                                           "model_path": str(model_path) if model_path else None,
                                                           "instruction": (index.model or {}).get("item_instruction")}))
            with progress_bar(len(rows), f"ingesting with {model} on Ray ({num_actors} actors)",
                              enabled=show_progress) as bar:
                for batch in dataset.iter_batches(batch_size=batch_size, batch_format="numpy"):
                    _write_batch(batch, index, report)
                    bar.advance(len(batch["id"]))
        finally:
            if connected:
                ray.shutdown()
    return finish_report(report, started, index, report_path)
