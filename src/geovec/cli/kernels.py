"""``geovec kernels``: which exact-search kernel and which query-embedding pass this machine runs for an index, and
the timings behind each choice."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from geovec.cli.common import given
from geovec.cli.tables import print_table
from geovec.config import default_index_path


def register(app: typer.Typer) -> None:
    """Add the ``kernels`` command to the geovec CLI."""

    @app.command("kernels")
    def kernels_command(
        index: str = typer.Option(str(default_index_path()), "--index", help="Index folder whose size is timed."),
        remeasure: bool = typer.Option(False, "--remeasure", help="Time the kernels and query passes again instead "
                                       "of reading GEOVEC_HOME/kernels.json and query_pass.json."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Time the exact-search kernels at the index's size and the query-embedding passes of its model (cached per
        CPU, flags, libraries, ISA caps and threads) and say which ones run: numpy/torch float32, FAISS flat or
        8-bit, oneDNN int8 (all give float32's hits); transformers or lean, float32 or bfloat16 (quality-checked)."""
        from geovec.index import open_index
        from geovec.index.kernels import BATCHES, cpu_description, cpu_line
        from geovec.query import index_embedder

        given("--index", index, "an index folder or chroma://HOST:PORT/COLLECTION")
        with open_index(index) as store:
            found = store.exact_kernel(remeasure)
            recorded = store.model or {}
        embedder = index_embedder(recorded).with_precision("auto", instruction=recorded.get("query_instruction"),
                                                           remeasure=remeasure)
        passes = embedder.pass_choice.describe()
        if as_json:
            print(json.dumps({"cpu": cpu_description(), **(found or {}), "query_pass": passes}, indent=2))
            return
        typer.echo(cpu_line())
        if found is None:
            typer.echo(f"{index} is searched by its server: no kernel runs here")
        elif found["timings_ms"]:
            chosen = found["kernels"]
            runs = ", ".join(f"{name} for {_queries(int(batch))}" for batch, name in chosen.items())
            _timings_table("kernel", chosen, found["timings_ms"], f"exact search runs {runs}")
        else:
            typer.echo(found["summary"])
        if passes["timings_ms"]:
            chosen = {str(batch): passes["query_pass"] for batch in BATCHES}  # one pass serves every batch size
            _timings_table("query pass", chosen, passes["timings_ms"],
                           f"queries of {embedder.name} are embedded by {passes['query_pass']}")
        else:
            typer.echo(passes["summary"])


def _timings_table(what: str, chosen: dict[str, str], timings: dict[str, dict[str, float]], title: str) -> None:
    """``title`` on a line of its own, then the candidates' ms per batch size, fastest first, each size's choice
    (``chosen``: batch size -> candidate) marked."""
    from geovec.index.kernels import BATCHES

    typer.echo(title)
    table = Table(what, *(f"{_queries(batch)} (ms)" for batch in BATCHES))
    for name, times in sorted(timings.items(), key=lambda item: sum(item[1].values())):
        table.add_row(name, *(f"{times.get(str(batch), float('nan')):.2f}"
                              + (" (chosen)" if chosen.get(str(batch)) == name else "") for batch in BATCHES))
    print_table(table)


def _queries(count: int) -> str:
    return f"{count} quer{'y' if count == 1 else 'ies'}"
