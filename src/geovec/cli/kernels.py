"""``geovec kernels``: which exact-search kernel this machine runs for an index, and the timings behind it."""

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
        remeasure: bool = typer.Option(False, "--remeasure", help="Time the kernels again instead of reading "
                                       "GEOVEC_HOME/kernels.json."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Time the exact-search kernels at the index's size (cached per CPU, flags, libraries and ISA caps) and say
        which one searches: numpy/torch float32, FAISS flat or 8-bit, oneDNN int8 (all give float32's hits)."""
        from geovec.index import open_index
        from geovec.index.kernels import BATCHES, cpu_description, cpu_line

        given("--index", index, "an index folder or chroma://HOST:PORT/COLLECTION")
        with open_index(index) as store:
            found = store.exact_kernel(remeasure)
        cpu = cpu_description()
        if as_json:
            print(json.dumps({"cpu": cpu, **(found or {})}, indent=2))
            return
        typer.echo(cpu_line())
        if found is None:
            typer.echo(f"{index} is searched by its server: no kernel runs here")
            return
        chosen = found["kernels"]
        runs = ", ".join(f"{name} for {_queries(int(batch))}" for batch, name in chosen.items())
        typer.echo(f"exact search runs {runs}")
        table = Table("kernel", *(f"{_queries(batch)} (ms)" for batch in BATCHES))
        for name, times in sorted(found["timings_ms"].items(), key=lambda item: sum(item[1].values())):
            table.add_row(name, *(f"{times.get(str(batch), float('nan')):.2f}"
                                  + (" (chosen)" if chosen.get(str(batch)) == name else "") for batch in BATCHES))
        print_table(table)


def _queries(count: int) -> str:
    return f"{count} quer{'y' if count == 1 else 'ies'}"
