"""``geovec ingest``: a folder of rasters (GeoTIFF/COG/PNG/JPEG) and local STAC items -> image chips in an index.

A run has two phases. *Plan*: walk the archive, open each raster's header, lay out its chip windows, reproject
their footprints and derive each chip's id; chips already in the index are dropped here, before any chip pixel is
read; a file with chips to do gets its no-data surveyed on one decimated read (``RasterFile.survey``: the report's
``nodata`` says per file whether the mask, ``--nodata`` or a detected edge fill was used), so a truncated file fails
here. *Execute*: read the remaining chips, skip mostly-nodata ones, write thumbnails, and embed + commit them in batches
through ``index_items``.

Why this is resumable and idempotent: a chip id is a hash of the source path relative to the archive root, the
file's size and mtime, the chip window, the output resolution and the bands, so the same chip always gets the same
id and each batch is one index transaction. A run killed at any point is finished by running it again: committed
chips are skipped, the rest are embedded once. A grown archive costs only its new files; a changed file (new
mtime/size) gets new ids, and its old chips (and thumbnails) are deleted when it is planned, so search never
returns pixels that are no longer in the file. Chips of files gone from a folder archive are counted, and deleted
with ``prune``. Unreadable files are reported and skipped.

Chip pixels are not stored: ``read_chip(record)`` re-reads them from the source window with the parameters kept in
``Record.extra`` (bands, resolution, stretch), giving exactly the pixels that were embedded. Thumbnails (JPEG,
``THUMB_SIZE`` px on the long side) are written atomically to ``<index>/thumbs/<chip id>.jpg`` and named by
``extra["thumbnail"]`` relative to the index folder. ``Record.lat/lon`` is the chip centre (what ``GeoFilter``
tests), ``Record.footprint`` its WGS84 bbox, ``extra["footprint"]`` its 4-corner GeoJSON polygon and
``Record.bbox`` the chip window in source pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from rasterio.errors import RasterioError
from rasterio.windows import Window

from geovec.errors import GeovecError
from geovec.fileio import write_text_atomic
from geovec.index import Record, VectorIndex
from geovec.ingest.items import IndexItem, index_items
from geovec.ingest.raster import RASTER_SUFFIXES, Footprint, Nodata, RasterFile, TileOptions
from geovec.ingest.stac import pick_asset, read_item, referenced_files
from geovec.ingest.thumbnails import thumbnail_jpeg, write_thumbnail
from geovec.inputs import GeoRef, ImageSegment, Interleaved
from geovec.models.base import Embedder
from geovec.progress import progress_bar

REPORT_NAME = "ingest-report.json"
READ_ERRORS = (GeovecError, RasterioError, OSError)
READ_AHEAD = 64  # chips read (and thumbnailed) ahead of the model: two batches, so the model never waits for pixels
T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    """A raster to chip: its file, its name relative to the archive root and, for STAC assets, the item's facts."""

    path: Path
    name: str
    stac: dict | None = None

    @property
    def fingerprint(self) -> str:
        stat = self.path.stat()
        return f"{stat.st_size}-{stat.st_mtime_ns}"


@dataclass
class ArchiveReport:
    """What a run did; also written as JSON (``REPORT_NAME`` in the index folder unless told otherwise)."""

    archive: str
    files: int = 0
    chips: int = 0
    added: int = 0
    already_indexed: int = 0
    replaced: int = 0  # chips of files changed since they were indexed, deleted (their new chips are added)
    orphaned: int = 0  # chips of files no longer in the archive folder
    pruned: bool = False  # whether those were deleted
    skipped_nodata: int = 0
    ungeoreferenced: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # file -> reason
    ignored: list[str] = field(default_factory=list)  # JSON files that are not STAC items
    nodata: dict[str, str] = field(default_factory=dict)  # file -> where its no-data came from (mask, declared...)
    precision: str = "float32"  # what the model computed this run's chips in (see BaseEmbedder.with_precision)
    seconds: float = 0.0

    def summary(self) -> str:
        text = (f"{self.files} files, {self.chips} chips: added {self.added}, already indexed {self.already_indexed},"
                f" skipped (nodata) {self.skipped_nodata}, failed files {len(self.failed)}")
        if self.replaced:
            text += f", old chips of changed files deleted {self.replaced}"
        if self.orphaned:
            text += (f", chips of removed files deleted {self.orphaned}" if self.pruned else
                     f", chips of files no longer in the archive {self.orphaned} (--prune deletes them)")
        if self.ungeoreferenced:
            text += f", without coordinates {len(self.ungeoreferenced)}"
        detected = sum(reason.startswith("detected") for reason in self.nodata.values())
        if detected:
            text += f", no-data fill detected in {detected}"
        return text + f" in {self.seconds:.1f} s"


@dataclass
class ChipPlan:
    """One source's chips still to index, laid out on the planning machine (the Ray driver in a cluster)."""

    source: Source
    chips: list[tuple[Window, Footprint | None, str]]  # (window, footprint, id) still to index


@dataclass
class ChipRead:
    """A read chip: its record, pixels and georeference; ``item()`` is what gets embedded."""

    record: Record
    pixels: np.ndarray
    georef: GeoRef | None

    def item(self) -> IndexItem:
        return IndexItem(self.record, (Interleaved((ImageSegment(self.pixels, georef=self.georef),)),))


def _relative(path: Path, root: Path) -> str:
    """The name a file gets in chip ids: relative to the archive root (symlinks not followed), else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return absolute.as_posix()  # a STAC asset outside the archive folder


def discover(path: str | Path, exclude: Path | None = None) -> tuple[list[Source], ArchiveReport]:
    """Rasters and STAC items under ``path`` (a folder, a raster or an item JSON), sorted by name.

    Files referenced by a STAC item are ingested through the item (carrying its metadata), not a second time on
    their own. ``exclude`` (the index folder, when it lies inside the archive) is not walked.
    """
    path = Path(path)
    if not path.exists():
        raise GeovecError(f"archive not found: {path}")
    root = Path(os.path.abspath(path if path.is_dir() else path.parent))
    report = ArchiveReport(archive=str(path))
    if path.is_dir():
        skip = exclude.resolve() if exclude is not None else None
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and (skip is None or skip not in p.resolve().parents))
    else:
        files = [path]
    sources: list[Source] = []
    stac_files: set[Path] = set()
    for file in (f for f in files if f.suffix.lower() == ".json"):
        try:
            data = read_item(file)
        except GeovecError as exc:
            report.failed[_relative(file, root)] = str(exc)
            continue
        if data is None:  # some other JSON file: not ours to judge unless the user named it
            if path.is_file():
                raise GeovecError(f"{path}: not a STAC item (needs type 'Feature', stac_version and assets)")
            report.ignored.append(_relative(file, root))
            continue
        stac_files |= referenced_files(file, data)
        try:
            asset = pick_asset(file, data)
        except GeovecError as exc:
            report.failed[_relative(file, root)] = str(exc)
            continue
        sources.append(Source(asset.path, f"{_relative(file, root)}#{asset.asset_key}", asset.metadata))
    for file in files:
        if file.suffix.lower() in RASTER_SUFFIXES and file.resolve() not in stac_files:
            sources.append(Source(file, _relative(file, root)))
    if path.is_file() and not sources and not report.failed:
        raise GeovecError(f"{path}: not a raster ({', '.join(RASTER_SUFFIXES)}) or a STAC item JSON")
    if not sources and not report.failed:
        raise GeovecError(f"no rasters ({', '.join(RASTER_SUFFIXES)}) or STAC items found under {path}")
    return sorted(sources, key=lambda s: s.name), report


def chip_id(source: Source, raster: RasterFile, window: Window) -> str:
    """Deterministic: same file content stamp, window, resolution and bands -> same id."""
    resolution = f"{raster.resolution:.6g}" if raster.resolution else "native"
    key = [source.name, source.fingerprint, [window.col_off, window.row_off, window.width, window.height],
           resolution, list(raster.bands)]
    if raster.options.nodata is not None:  # only then: ids of runs without --nodata stay what they were
        key.append(raster.options.nodata)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(source.name.split("#")[0]).stem)[:40] or "chip"
    return f"{stem}-{hashlib.sha1(json.dumps(key).encode()).hexdigest()[:16]}"


def _record(source: Source, raster: RasterFile, window: Window, footprint: Footprint | None, id: str,
            nodata: float) -> Record:
    extra = {"kind": "raster_chip", "archive_path": source.name, "fingerprint": source.fingerprint,
             "window": [window.col_off, window.row_off, window.width, window.height],
             "bands": list(raster.bands), "resolution_m": raster.resolution, "stretch": raster.stretch,
             "nodata_fraction": round(nodata, 4), "nodata": raster.nodata.to_dict(),
             "georeferenced": raster.georeferenced,
             "crs": raster.ds.crs.to_string() if raster.georeferenced else None,
             "footprint": footprint.geojson() if footprint else None}
    if source.stac:
        extra["stac"] = source.stac
    box = (window.col_off, window.row_off, window.col_off + window.width, window.row_off + window.height)
    return Record(id=id, source=str(source.path.resolve()), bbox=box,
                  lat=footprint.lat if footprint else None, lon=footprint.lon if footprint else None,
                  footprint=footprint.bbox if footprint else None, extra=extra)


def read_chip(record: Record) -> np.ndarray:
    """Re-read the uint8 pixels that were embedded for a chip record (see the module docstring)."""
    extra = record.extra
    if extra.get("kind") != "raster_chip":
        raise GeovecError(f"record {record.id!r} is not a raster chip")
    nodata = Nodata(**extra["nodata"]) if extra.get("nodata") else None
    declared = nodata.value if nodata is not None and nodata.source == "declared" else None
    options = TileOptions(bands=tuple(extra["bands"]), resolution=extra["resolution_m"], nodata=declared)
    with RasterFile(record.source, options) as raster:
        if nodata is not None:
            raster.nodata = nodata  # the run's decision, not detected again
        if extra["stretch"] is not None:
            raster.stretch = [tuple(limits) for limits in extra["stretch"]]  # the run's stats, not recomputed
        return raster.read(Window(*extra["window"]))[0]


def read_planned_chip(source: Source, raster: RasterFile, window: Window, footprint: Footprint | None, id: str,
                      options: TileOptions) -> ChipRead | None:
    """Read one planned chip and build its record; None when it is (mostly) nodata. Shared by every ingest path.
    A chip with some no-data gets the footprint of its valid pixels: where it has data is what a place search
    must match."""
    pixels, nodata, extent = raster.read_with_extent(window)
    if extent is None or nodata > options.max_nodata:
        return None
    if nodata > 0 and footprint is not None:
        footprint = raster.footprints([extent])[0]
    return ChipRead(_record(source, raster, window, footprint, id, nodata), pixels, raster.georef(window))


def check_image_model(name: str, modalities: frozenset[str] | set[str]) -> None:
    if "image" not in modalities:
        raise GeovecError(f"model {name!r} cannot embed images (it takes {', '.join(sorted(modalities))}); ingest "
                          "needs an image model such as --model clip --model-path CHECKPOINT")


def plan_archive(path: str | Path, index: VectorIndex, options: TileOptions, prune: bool = False,
                 show_progress: bool = False) -> tuple[list[ChipPlan], ArchiveReport]:
    """Discover the archive and lay out the chips not yet in ``index`` (headers, footprints and the decimated
    no-data read; no chip pixels); chips of files that changed since they were indexed (and, with ``prune``, of
    removed files) are deleted here. A progress bar per file shows from the start: a big file takes a while."""
    sources, report = discover(path, exclude=index.path)
    folder = Path(path).resolve() if Path(path).is_dir() else None
    report.replaced, report.orphaned = tidy_index(index, sources, folder, prune)
    report.pruned = prune
    plans = []
    with progress_bar(len(sources), "planning chips", enabled=show_progress, transient=True) as bar:
        for source in sources:
            plan = _plan_source(source, index, options, report)
            bar.advance(1)
            if plan is not None:
                plans.append(plan)
    return plans, report


def _plan_source(source: Source, index: VectorIndex, options: TileOptions, report: ArchiveReport) -> ChipPlan | None:
    """One file's chips still to index, or None (and the reason in ``report.failed``) when it cannot be read."""
    try:
        with RasterFile(source.path, options) as raster:
            windows = raster.windows()
            ids = [chip_id(source, raster, w) for w in windows]
            absent = set(index.missing(ids))
            todo = [i for i, id in enumerate(ids) if id in absent]
            footprints = raster.footprints([windows[i] for i in todo])
            nodata = raster.survey().describe() if todo else None  # a truncated file fails here, not mid-run
    except READ_ERRORS as exc:
        report.failed[source.name] = str(exc)
        return None
    if not raster.georeferenced:
        report.ungeoreferenced.append(source.name)
    if nodata is not None:
        report.nodata[source.name] = nodata
    report.files += 1
    report.chips += len(windows)
    report.already_indexed += len(windows) - len(todo)
    return ChipPlan(source, [(windows[i], fp, ids[i]) for i, fp in zip(todo, footprints)])


def tidy_index(index: VectorIndex, sources: list[Source], folder: Path | None, prune: bool) -> tuple[int, int]:
    """Delete the chips (and thumbnails) cut from an older version of one of ``sources``; count the chips of files
    gone from ``folder`` (a folder archive) and delete them too with ``prune``. Files are matched by absolute path,
    so archives with the same relative names can share an index. Returns (stale deleted, orphaned)."""
    current = {str(source.path.resolve()): source.fingerprint for source in sources}
    inside = f"{folder}{os.sep}" if folder is not None else None
    stale, orphaned = [], []
    for id, path, fingerprint, thumbnail in index.record_fields("fingerprint", "thumbnail"):
        if path in current:
            if fingerprint != current[path]:
                stale.append((id, thumbnail))
        elif inside is not None and path and path.startswith(inside):
            orphaned.append((id, thumbnail))
    doomed = stale + (orphaned if prune else [])
    if doomed:
        index.delete([id for id, _ in doomed])
        for _, thumbnail in doomed:
            if thumbnail:
                (index.path / thumbnail).unlink(missing_ok=True)
    return len(stale), len(orphaned)


def finish_report(report: ArchiveReport, started: float, index: VectorIndex,
                  report_path: str | Path | None) -> ArchiveReport:
    report.seconds = time.perf_counter() - started
    report_file = Path(report_path) if report_path else index.path / REPORT_NAME
    try:
        write_text_atomic(report_file, json.dumps(asdict(report), indent=2, ensure_ascii=False) + os.linesep)
    except OSError as exc:
        raise GeovecError(f"report {report_file}: cannot be written ({exc.strerror or exc}); the chips are in the "
                          "index, a re-run with a writable --report adds none again") from None
    return report


@dataclass(frozen=True)
class FailedFile:
    """A planned file that could not be read (after the chips read from it so far)."""

    name: str
    reason: str


def read_plans(plans: list[ChipPlan], options: TileOptions,
               thumbnails_in: Path | None) -> Generator[ChipRead | None | FailedFile, None, None]:
    """Every planned chip, in plan order: read (and, given an index folder, its thumbnail written there), or None
    for a (mostly) nodata chip; a file that fails mid-way ends with a ``FailedFile``."""
    for plan in (p for p in plans if p.chips):
        try:
            with RasterFile(plan.source.path, options) as raster:
                for window, footprint, id in plan.chips:
                    chip = read_planned_chip(plan.source, raster, window, footprint, id, options)
                    if chip is not None and thumbnails_in is not None:
                        chip.record.extra["thumbnail"] = write_thumbnail(thumbnails_in, id,
                                                                         thumbnail_jpeg(chip.pixels))
                    yield chip
        except READ_ERRORS as exc:
            yield FailedFile(plan.source.name, str(exc))


def read_ahead(items: Generator[T, None, None], depth: int) -> Iterator[T]:
    """``items`` in their order, produced by a thread up to ``depth`` ahead. Why: GDAL, numpy and PIL release
    the GIL, so reading, stretching and thumbnailing chips run on one core while the model computes, instead of
    leaving both cores idle in between. An exception of ``items`` is raised here, in its place; closing this
    generator (``contextlib.closing``: the consumer failed or stopped) stops the thread. ``depth`` 0: no thread.
    """
    if depth <= 0:
        yield from items
        return
    buffer: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def offer(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        with closing(items):  # an early stop closes its files here, in this thread
            try:
                for item in items:
                    if not offer((item, None)):
                        return
            except Exception as exc:  # noqa: BLE001 - whatever it is, the consumer raises it in its place
                offer((done, exc))
                return
            offer((done, None))

    thread = threading.Thread(target=produce, name="geovec-ingest-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def ingest_archive(path: str | Path, index: VectorIndex, embedder: Embedder, options: TileOptions = TileOptions(),
                   *, batch_size: int = 32, thumbnails: bool = True, report_path: str | Path | None = None,
                   show_progress: bool = True, prune: bool = False, read_ahead_chips: int = READ_AHEAD
                   ) -> ArchiveReport:
    """Chip every raster under ``path`` and add the chips not yet in ``index``; see the module docstring.
    ``read_ahead_chips``: how many chips a reader thread may read ahead of the model (0: no thread)."""
    check_image_model(embedder.name, embedder.modalities)
    started = time.perf_counter()
    plans, report = plan_archive(path, index, options, prune, show_progress)
    report.precision = getattr(embedder, "precision", "float32")
    batch: list[IndexItem] = []

    def flush() -> None:
        if batch:
            report.added += index_items(batch, embedder, index, batch_size=batch_size, show_progress=False).added
            bar.advance(len(batch))
            batch.clear()

    todo = sum(len(p.chips) for p in plans)
    with progress_bar(todo, f"ingesting with {embedder.name}", enabled=show_progress and todo > 0) as bar, \
            closing(read_ahead(read_plans(plans, options, index.path if thumbnails else None), read_ahead_chips)) as chips:
        for chip in chips:
            if isinstance(chip, FailedFile):
                report.failed[chip.name] = chip.reason
                report.files -= 1  # counted as read when planned; "every file failed" must see it
            elif chip is None:
                report.skipped_nodata += 1
                bar.advance(1)
            else:
                batch.append(chip.item())
                if len(batch) >= batch_size:
                    flush()
        flush()
    return finish_report(report, started, index, report_path)
