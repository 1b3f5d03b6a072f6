"""GIS formats on the command line: ``geovec index export`` / ``import`` (GeoParquet 1.1) and the ``--format`` of
``geovec search`` (a table, geovec's JSON, or an RFC 7946 GeoJSON FeatureCollection). Its own module, so the
commands of ``cli.main`` change by one option and one ``register`` call."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from geovec.errors import GeovecInputError

SEARCH_FORMATS = ("table", "json", "geojson")
FORMAT_HELP = "Output: table, json (like --json) or geojson (an RFC 7946 FeatureCollection for GIS tools)."


def search_format(output: str, as_json: bool) -> str:
    """The output ``geovec search`` prints, checked before anything is loaded; ``--json`` is ``--format json``."""
    if output not in SEARCH_FORMATS:
        raise GeovecInputError("--format", f"expected one of {', '.join(SEARCH_FORMATS)}, got {output!r}")
    if as_json and output == "geojson":
        raise GeovecInputError("--json", "means --format json, which contradicts --format geojson: give one")
    return "json" if as_json else output


def print_geojson(result) -> None:
    """A ``geovec.query.SearchResult`` on stdout as GeoJSON (save it as ``.geojson`` and open it in QGIS)."""
    print(json.dumps(result.to_geojson(), indent=2, ensure_ascii=False, allow_nan=False))


def index_export_command(
    index: str = typer.Argument(..., help="Index folder to export."),
    output: Path = typer.Argument(..., help="GeoParquet file to write, e.g. index.parquet (replaced atomically)."),
) -> None:
    """Write an index as GeoParquet 1.1: footprints, centres, captions, attributes and vectors, one row per item."""
    from geovec.index import VectorIndex, is_chroma_url
    from geovec.index.geoparquet import export_geoparquet

    if is_chroma_url(index):
        raise GeovecInputError(index, "is a Chroma collection; export reads folder indexes")
    with VectorIndex.open(index) as store:
        rows = export_geoparquet(store, output, show_progress=True)
        typer.echo(f"wrote {rows} items ({store.dim}-d vectors) from {index} to {output}", err=True)


def index_import_command(
    source: Path = typer.Argument(..., help="GeoParquet file written by `geovec index export`."),
    index: str = typer.Option(..., "--index", help="Folder of the new index (must not exist, or be empty)."),
    ann: bool = typer.Option(False, "--ann", help="Build the approximate (HNSW) index after importing."),
) -> None:
    """Rebuild an index from a GeoParquet export: the same ids, vectors, footprints and model record."""
    from geovec.index.geoparquet import (
        EMBEDDING,
        check_new_index_folder,
        import_geoparquet,
        open_geoparquet,
    )
    from geovec.models import list_models

    check_new_index_folder(index)  # before reading the file
    opened = open_geoparquet(source)
    name = opened.model.get("name")
    made = {spec.name: spec.dim for spec in list_models()}.get(name)  # None: a checkpoint's, or not registered here
    if made is not None and made != opened.dim:
        raise GeovecInputError(f"{source}: {EMBEDDING}", f"holds {opened.dim}-d vectors, but model {name!r} makes "
                                                         f"{made}-d ones: the file does not match its model record")
    count = import_geoparquet(opened, index, ann=ann, show_progress=True)
    typer.echo(f"{index}: imported {count} items ({opened.dim}-d, model {name or 'unrecorded'}) from {source}",
               err=True)


def register(index_app: typer.Typer) -> None:
    """Add ``geovec index export`` and ``geovec index import``."""
    index_app.command("export")(index_export_command)
    index_app.command("import")(index_import_command)
