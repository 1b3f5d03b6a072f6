"""Printing tables that stay readable when piped or saved.

Rich lays a table out for an 80-column terminal when stdout is not one (``geovec bench list | cat``), cutting
columns to ``categ…``; off a terminal a table is printed at its natural width instead, so nothing is cut.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

_out = Console()


def print_table(table: Table) -> None:
    if _out.is_terminal:
        _out.print(table)
        return
    natural = _out.measure(table, options=_out.options.update_width(100_000)).maximum
    Console(width=max(natural, 80)).print(table)
