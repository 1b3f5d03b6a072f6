"""``geovec ingest``: chip an archive of rasters / STAC items into an index (see ``geovec.ingest.archive``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from geovec.cli.common import open_for_writing
from geovec.config import default_index_path
from geovec.errors import GeovecError, GeovecInputError
from geovec.precision import PRECISIONS


def ingest_command(
    path: Path = typer.Argument(..., help="A folder of rasters (GeoTIFF/COG/PNG/JPEG) and STAC item JSONs, or one file."),
    index: Path = typer.Option(default_index_path(), "--index", help="Index folder (created if missing)."),
    model: str = typer.Option("geovec-mini", "--model", "-m", help="Registered model that embeds images (default: "
                              "the shipped geovec-mini; or e.g. clip with --model-path)."),
    model_path: Optional[Path] = typer.Option(None, "--model-path", help="Local checkpoint folder."),
    chip_size: int = typer.Option(256, "--chip-size", help="Chip width and height in output pixels."),
    overlap: int = typer.Option(0, "--overlap", help="Overlap between neighbouring chips, in output pixels."),
    resolution: Optional[float] = typer.Option(None, "--resolution", help="Metres per output pixel (reads COG "
                                               "overviews when coarser than the source; never upsamples)."),
    bands: Optional[str] = typer.Option(None, "--bands", help="Bands to show as RGB (1-based), e.g. 4,3,2; or one band."),
    max_nodata: float = typer.Option(0.5, "--max-nodata", help="Skip chips with a larger nodata fraction."),
    nodata: float | None = typer.Option(None, "--nodata", help="No-data value of files without a mask of their "
                                           "own (default: a constant edge fill such as a 0 collar is detected)."),
    max_chips: int | None = typer.Option(None, "--max-chips", help="Refuse files that would make more chips "
                                            "(default 50000; a huge or sparse raster fails at once, not in hours)."),
    thumbnails: bool = typer.Option(True, "--thumbnails/--no-thumbnails", help="Write <index>/thumbs/<id>.jpg."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Chips per forward pass and per commit."),
    precision: str = typer.Option("auto", "--precision", help="What the transformer computes chips in: auto "
                                  "(bfloat16 where the CPU has it natively, else float32), float32 or bfloat16. "
                                  "GEOVEC_CPU_BF16=0 makes auto float32. The image tower is always float32."),
    report: Optional[Path] = typer.Option(None, "--report", help="JSON report path (default <index>/ingest-report.json)."),
    ray: Optional[str] = typer.Option(None, "--ray", flag_value="local", metavar="[ADDRESS]",
                                      help="Run on Ray: alone, a local cluster; or ADDRESS of one ('auto', "
                                           "'ray://host:10001'). Needs the 'scale' extra."),
    prune: bool = typer.Option(False, "--prune", help="Delete the chips of files no longer in the archive folder."),
    ray_actors: int = typer.Option(1, "--ray-actors", min=1, help="Embedding actors (model copies) on Ray."),
    ray_gpus: float = typer.Option(0.0, "--ray-gpus-per-actor", min=0.0, help="GPUs per embedding actor."),
) -> None:
    """Cut rasters into geo-referenced chips, embed them and add them to an index; re-running adds only new chips."""
    from geovec.ingest.archive import REPORT_NAME, check_image_model, ingest_archive
    from geovec.ingest.raster import MAX_CHIPS, TileOptions, parse_bands
    from geovec.models import get_spec

    options = TileOptions(chip_size=chip_size, overlap=overlap, resolution=resolution, bands=parse_bands(bands),
                          max_nodata=max_nodata, nodata=nodata,
                          max_chips=MAX_CHIPS if max_chips is None else max_chips)
    check_image_model(model, get_spec(model).modalities)  # before loading weights or touching the index
    if precision not in PRECISIONS:
        raise GeovecInputError("--precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if ray is not None and precision == "bfloat16":
        raise GeovecInputError("--precision", "bfloat16 applies to a local ingest; Ray's actors compute float32")
    if not path.exists():
        raise GeovecError(f"archive not found: {path}")
    if report is not None and not report.parent.is_dir():  # found now, not after the whole run
        raise GeovecInputError("--report", f"folder {report.parent} does not exist; create it or give another path")
    embedder, store = open_for_writing(index, model, model_path)  # on Ray too: a new index needs the model's dim
    with store:
        if ray is None:
            embedder = embedder.with_precision(precision)  # "auto": the pass measured fastest here (query_pass)
            result = ingest_archive(path, store, embedder, options, batch_size=batch_size, thumbnails=thumbnails,
                                    report_path=report, prune=prune)
        else:
            if embedder.dim != store.dim:  # the actors would find out only after starting
                raise GeovecError(f"index {index} holds {store.dim}-d vectors but model {model!r} makes "
                                  f"{embedder.dim}-d ones")
            try:
                from geovec.ingest.distributed import ingest_archive_ray
            except ImportError as exc:
                raise GeovecError(f"--ray needs Ray: pip install 'geovec[scale]' ({exc})") from None
            result = ingest_archive_ray(path, store, model, model_path.resolve() if model_path else None, options,
                                        address=None if ray == "local" else ray, num_actors=ray_actors,
                                        num_gpus_per_actor=ray_gpus, batch_size=batch_size, thumbnails=thumbnails,
                                        report_path=report, prune=prune)
    report_file = report or index / REPORT_NAME
    if result.failed and not result.files:  # no file could be read: a script must notice, in one line
        raise GeovecError(all_failed(result.failed, report_file))
    for name, reason in sorted(result.failed.items()):
        typer.echo(f"skipped {name}: {reason}", err=True)
    typer.echo(f"{index}: {result.summary()}; report: {report or index / REPORT_NAME}", err=True)


def all_failed(failed: dict[str, str], report_file: Path, shown: int = 3) -> str:
    """The one error line when no file could be read: the first reasons, the rest in the report."""
    reasons = "; ".join(f"{name}: {reason}" for name, reason in sorted(failed.items())[:shown])
    more = f"; and {len(failed) - shown} more" if len(failed) > shown else ""
    return f"every file failed ({len(failed)} of {len(failed)}): {reasons}{more}; report: {report_file}"


def register(app: typer.Typer) -> None:
    """Add ``geovec ingest`` to the main app."""
    app.command("ingest")(ingest_command)
