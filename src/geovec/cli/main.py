"""The ``geovec`` command line: embed, index, search and list models.

Every user error is one readable line on stderr and a non-zero exit code (2), never a traceback.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from geovec.cli.bench import bench_app
from geovec.cli.caption import register as register_caption
from geovec.cli.common import existing_folder, given, open_for_writing, run
from geovec.cli.corpus import corpus_app
from geovec.cli.data import register as register_train_data
from geovec.cli.gis import FORMAT_HELP, print_geojson, search_format
from geovec.cli.gis import register as register_gis
from geovec.cli.ingest import register as register_ingest
from geovec.cli.kernels import register as register_kernels
from geovec.cli.serve import register as register_serve
from geovec.cli.tables import print_table
from geovec.cli.train import register as register_train
from geovec.config import default_index_path
from geovec.threads import sleeping_openmp_threads

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="One embedding space for remote-sensing images, text, boxes and coordinates.")
index_app = typer.Typer(no_args_is_help=True, help="Build and inspect vector indexes.")
app.add_typer(index_app, name="index")
app.add_typer(bench_app, name="bench")
app.add_typer(corpus_app, name="corpus")
register_ingest(app)
register_caption(app)
register_serve(app)
register_kernels(app)
register_train(app)
register_train_data(app)

ModelOpt = typer.Option("minilm", "--model", "-m", help="Registered model name (see `geovec models`).")
ModelPathOpt = typer.Option(None, "--model-path", help="Local checkpoint folder, for models that need one.")
BatchOpt = typer.Option(64, "--batch-size", min=1, help="Inputs per model forward pass.")
TruncateOpt = typer.Option(False, "--truncate", help="Cut texts longer than the model's window (and say how many "
                                                     "were cut) instead of refusing them.")


@app.command("models")
def models_command(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List registered models: name, modalities, embedding size, licence and where the weights come from."""
    from geovec.models import list_models

    rows = [{"name": s.name, "modalities": sorted(s.modalities), "dim": s.dim, "license": s.license,
             "weights": s.weights, "needs_path": s.needs_path, "description": s.description} for s in list_models()]
    if as_json:
        print(json.dumps({"models": rows}, indent=2))
        return
    table = Table("name", "modalities", "dim", "licence", "weights")
    for row in rows:
        table.add_row(row["name"], ", ".join(row["modalities"]), str(row["dim"] or "checkpoint"), row["license"],
                      row["weights"])
    print_table(table)


@app.command("embed")
def embed_command(
    inputs: Path = typer.Argument(..., help="JSONL file: one input per line (a JSON string or an interleaved object)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the (n, dim) float32 .npy matrix."),
    model: str = ModelOpt,
    model_path: Optional[Path] = ModelPathOpt,
    batch_size: int = BatchOpt,
    instruction: Optional[str] = typer.Option(None, help="Task instruction for inputs that carry none."),
    truncate: bool = TruncateOpt,
) -> None:
    """Embed every input of a JSONL file into a .npy matrix (resumes an interrupted run chunk by chunk)."""
    from geovec.ingest.embed import embed_jsonl
    from geovec.models import load_model

    embedder = load_model(model, model_path)
    matrix, truncated = embed_jsonl(inputs, output, embedder, batch_size=batch_size, instruction=instruction,
                                    truncate=truncate)
    typer.echo(f"wrote {matrix.shape[0]} x {matrix.shape[1]} embeddings to {output}{_cut_note(truncated)}", err=True)


def _cut_note(truncated: int) -> str:
    """What ``--truncate`` did, said where the result is reported (nothing if nothing was cut)."""
    if not truncated:
        return ""
    return f"; {truncated} text{'s' if truncated != 1 else ''} cut to the model's window (--truncate)"


@index_app.command("build")
def index_build_command(
    items: Path = typer.Argument(..., help="JSONL items (see geovec.ingest.items for the format)."),
    index: str = typer.Option(str(default_index_path()), "--index",
                              help="Index folder or chroma://HOST:PORT/COLLECTION (created if missing)."),
    model: str = ModelOpt,
    model_path: Optional[Path] = ModelPathOpt,
    batch_size: int = BatchOpt,
    ann: bool = typer.Option(False, "--ann", help="Build the approximate (HNSW) index after adding."),
    truncate: bool = TruncateOpt,
) -> None:
    """Embed items and add them to an index; re-running skips what is already indexed."""
    from geovec.ingest import index_items, read_items_jsonl

    parsed = list(read_items_jsonl(items))  # a bad line is refused before a model loads or an index is made
    embedder, store = open_for_writing(index, model, model_path)
    with store:
        report = index_items(parsed, embedder, store, batch_size=batch_size, truncate=truncate)
        if ann and not store.capabilities.build_ann:
            typer.echo(f"{index}: the server keeps its own HNSW graph; --ann has nothing to build", err=True)
        elif ann:
            store.build_ann()
        typer.echo(f"{index}: added {report.added}, already present {report.skipped_existing}, "
                   f"total {len(store)}{_cut_note(report.truncated)}", err=True)


@index_app.command("descriptions")
def index_descriptions_command(
    corpus: Path = typer.Argument(..., help="Description corpus JSONL (geovec caption, or geovec.t2t.corpus)."),
    index: str = typer.Option(..., "--index", help="Index folder or chroma://HOST:PORT/COLLECTION (created if "
                                                   "missing); searching it returns images."),
    model: str = ModelOpt,
    model_path: Optional[Path] = ModelPathOpt,
    images_root: Optional[Path] = typer.Option(None, "--images-root",
                                               help="Folder of the images, so results can show them."),
    batch_size: int = BatchOpt,
    truncate: bool = TruncateOpt,
) -> None:
    """Index every description of a corpus as text; searches then rank images by their best description."""
    from geovec.ingest import index_items
    from geovec.t2t.corpus import read_corpus
    from geovec.t2t.search import attach_thumbnails, description_items

    items = description_items(read_corpus(corpus), existing_folder("--images-root", images_root))
    embedder, store = open_for_writing(index, model, model_path, descriptions=True)
    with store:
        pictures = attach_thumbnails(items, store.folder) if store.folder and images_root else 0
        report = index_items(items, embedder, store, batch_size=batch_size, truncate=truncate)
        typer.echo(f"{index}: added {report.added} descriptions, already present {report.skipped_existing}, "
                   f"total {len(store)}; thumbnails of {pictures} images{_cut_note(report.truncated)}", err=True)


@index_app.command("info")
def index_info_command(index: str = typer.Option(str(default_index_path()), "--index",
                                                 help="Index folder or chroma://HOST:PORT/COLLECTION.")) -> None:
    """Show an index's size, vector dimension and the model that made it."""
    from geovec.index import open_index

    given("--index", index, "an index folder or chroma://HOST:PORT/COLLECTION")
    with open_index(index) as store:
        print(json.dumps({**store.info(), "path": str(index)}, indent=2))  # the path as the user wrote it


@app.command("search")
def search_command(
    index: str = typer.Option(str(default_index_path()), "--index",
                              help="Index folder (default: the quickstart index) or chroma://HOST:PORT/COLLECTION."),
    text: Optional[str] = typer.Option(None, "--text", "-t", help="Text query."),
    image: Optional[Path] = typer.Option(None, "--image", help="Query image file."),
    box: Optional[str] = typer.Option(None, "--box", help="X1,Y1,X2,Y2 pixel box on --image: query by region."),
    point: Optional[str] = typer.Option(None, "--point", help="LAT,LON: a place as part of the query."),
    near: Optional[str] = typer.Option(None, "--near", help="LAT,LON or a place name ('Rotterdam', 'Valencia, "
                                       "Spain'; GeoNames cities): keep results within --radius-km of it."),
    radius_km: Optional[float] = typer.Option(None, "--radius-km", help="Radius for --near, in km."),
    within: Optional[str] = typer.Option(None, "--within", help="MINLON,MINLAT,MAXLON,MAXLAT (GeoJSON bbox order)."),
    top_k: int = typer.Option(10, "--top-k", "-k", min=1, help="Number of results."),
    exact: bool = typer.Option(False, "--exact", help="Brute-force search even if an ANN index exists."),
    instruction: Optional[str] = typer.Option(None, help="Task instruction for the query."),
    model_path: Optional[Path] = typer.Option(None, "--model-path", help="Override the checkpoint path the index recorded."),
    as_json: bool = typer.Option(False, "--json", help='Print {"results": [...]} as JSON.'),
    output: str = typer.Option("table", "--format", help=FORMAT_HELP),
) -> None:
    """Search an index by text, image, region (image + box) and/or place, optionally within an area."""
    from geovec.search_request import SearchRequest

    given("--index", index, "an index folder or chroma://HOST:PORT/COLLECTION")
    request = SearchRequest(
        text=text, image=image, box=_numbers("--box", box, "X1,Y1,X2,Y2"),  # type: ignore[arg-type]
        point=_numbers("--point", point, "LAT,LON"), near=_near_point(near),  # type: ignore[arg-type]
        within=_numbers("--within", within, "MINLON,MINLAT,MAXLON,MAXLAT"),  # type: ignore[arg-type]
        radius_km=radius_km, top_k=top_k, instruction=instruction, exact=exact)
    request.validate()  # before loading torch, the model or the index
    output = search_format(output, as_json)

    from geovec.query import Searcher

    with Searcher(index, model_path=model_path) as searcher:
        result = searcher.search(request)
    if output == "geojson":
        print_geojson(result)
        return
    if output == "json":
        print(json.dumps({"results": result.to_dict()["results"]}, indent=2, ensure_ascii=False))
        return
    _print_results(result.to_dict()["results"], f"{len(result.hits)} results from {index} in "
                                                f"{result.elapsed_ms:.0f} ms")


def _numbers(option: str, text: str | None, form: str) -> tuple[float, ...] | None:
    """The numbers of an option written ``form`` (``LAT,LON``), ``None`` when it was left out, an error when given
    empty (``parse_numbers`` alone would read ``--within ''`` as no filter at all)."""
    from geovec.search_request import parse_numbers

    return parse_numbers(option, given(option, text, form), form.count(",") + 1)


def _near_point(text: str | None) -> tuple[float, ...] | None:
    """``--near``: ``LAT,LON`` when it has no letter or starts with a number (``52,4x`` is a typo, not a place);
    anything else names a place, resolved by the gazetteer (``geovec.places``) and said on stderr, so the user sees
    which Valencia was meant."""
    if text is None or not re.search(r"[^\W\d_]", text) or _is_number(text.split(",")[0]):
        return _numbers("--near", text, "LAT,LON")
    from geovec.places import resolve_place

    place = resolve_place(text, "--near")
    typer.echo(f"near: {place.label} ({place.lat:g}, {place.lon:g})", err=True)
    return place.lat, place.lon


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _print_results(results: list[dict], title: str) -> None:
    """A table for people (ids never truncated); ``--json`` gives every field for programs."""
    located = any(row.get("lat") is not None for row in results)
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score")
    table.add_column("id", no_wrap=True, min_width=12)
    if located:
        table.add_column("lat, lon", no_wrap=True)
    table.add_column("caption", ratio=1)
    for rank, row in enumerate(results, start=1):
        where = [f"{row['lat']:.4f}, {row['lon']:.4f}" if row.get("lat") is not None else ""] if located else []
        table.add_row(str(rank), f"{row['score']:.3f}", row["id"], *where, (row.get("captions") or [""])[0])
    print_table(table)


def drop_stale_quickstart_index(index: Path) -> None:
    """The quickstart index is geovec's own derived data: one built by another revision of the shipped model (or
    before indexes recorded revisions) is rebuilt rather than searched with vectors from another space."""
    from geovec.index import VectorIndex
    from geovec.models.mini import EMBEDDED
    from geovec.models.base import checkpoint_revision

    if not (index / "index.sqlite").is_file():
        return
    with VectorIndex.open(index) as store:
        built = store.model.get("revision")
    if built != checkpoint_revision(EMBEDDED):
        typer.echo(f"index {index} was built by another geovec-mini ({built or 'unrecorded'} revision): rebuilding",
                   err=True)
        shutil.rmtree(index)


@app.command("quickstart")
def quickstart_command(
    index: str = typer.Option(str(default_index_path()), "--index", help="Where to build the index."),
    query: Optional[str] = typer.Option(None, "--query", help="The search to run once the index is built."),
    top_k: int = typer.Option(5, "--top-k", min=1),
) -> None:
    """The main job: index the RSICD test images offline with the shipped geovec-mini, then answer a text search."""
    from geovec.quickstart import QUICKSTART_MODEL, QUICKSTART_QUERY, quickstart_items
    from geovec.search_request import SearchRequest

    given("--index", index, "the folder to build the index in")
    question = QUICKSTART_QUERY if query is None else given("--query", query, "the text to search for")
    SearchRequest(text=question, top_k=top_k).validate()  # a bad query fails now, not after minutes of indexing

    from geovec.ingest import index_items
    from geovec.ingest.thumbnails import attach_source_thumbnails
    from geovec.query import Searcher

    started = time.perf_counter()
    items = quickstart_items()
    drop_stale_quickstart_index(Path(index))
    embedder, store = open_for_writing(index, QUICKSTART_MODEL, None)
    with store:
        attach_source_thumbnails([item.record for item in items], store.path)  # what the web page shows
        report = index_items(items, embedder, store)
        typer.echo(f"index {index}: {len(store)} images (added {report.added}, already present "
                   f"{report.skipped_existing}) in {time.perf_counter() - started:.1f} s", err=True)
    with Searcher(index, embedder=embedder) as searcher:
        hits = searcher.search(SearchRequest(text=question, top_k=top_k)).hits
    _print_results([hit.to_dict() for hit in hits], f"search: {question!r}")
    typer.echo(f'try: geovec search --text "a bridge over a river" --top-k 5 --index {index}', err=True)


register_gis(index_app)  # after this module's index commands, so `geovec index --help` lists them first


def main() -> None:
    """Entry point of the ``geovec`` command."""
    sleeping_openmp_threads()  # before any command loads torch or FAISS (geovec.threads)
    run(app)


if __name__ == "__main__":
    main()
