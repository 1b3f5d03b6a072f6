"""``geovec train-data``: build the mixed, leak-checked training JSONL from RSMEB datasets' training splits."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from geovec.cli.common import existing_folder, output_folder
from geovec.cli.tables import print_table
from geovec.config import data_dir
from geovec.errors import GeovecInputError


def _pairs(values: List[str], option: str) -> dict[str, str]:
    """``a=1,b=2`` (comma-separated and/or repeated) -> {"a": "1", "b": "2"}."""
    out: dict[str, str] = {}
    for part in (p.strip() for value in values for p in value.split(",")):
        name, sep, value = part.partition("=")
        if part and (not sep or not name.strip() or not value.strip()):
            raise GeovecInputError(option, f"expected NAME=VALUE, got {part!r}")
        if part:
            out[name.strip()] = value.strip()
    return out


def _weights(values: List[str]) -> dict[str, float]:
    out = {}
    for name, value in _pairs(values, "--weights").items():
        try:
            out[name] = float(value)
        except ValueError:
            raise GeovecInputError("--weights", f"weight of {name} must be a number, got {value!r}") from None
        if not (math.isfinite(out[name]) and out[name] >= 0):
            raise GeovecInputError("--weights", f"weight of {name} must be a finite number >= 0, got {value!r}")
    return out


def register(app: typer.Typer) -> None:
    """Add the ``train-data`` command group (``build``, ``sources``) to ``app``."""
    data_app = typer.Typer(no_args_is_help=True, help="Training data: RSMEB training splits as instruction-tagged "
                                                      "(query, positive, hard negatives) examples.")
    app.add_typer(data_app, name="train-data")

    @data_app.command("sources")
    def sources_command() -> None:
        """Every training source: its dataset, the RSMEB tasks whose instructions it uses, its default input."""
        from geovec.train.data import SOURCES

        table = Table()
        for column in ("source", "dataset", "tasks (instructions)", "default input", "what"):
            table.add_column(column, no_wrap=column != "what")
        for s in SOURCES.values():
            table.add_row(s.name, s.dataset, ", ".join(s.tasks), s.path, s.description)
        print_table(table)

    @data_app.command("build")
    def build_command(
        sources: str = typer.Option(..., "--sources", "-s", help="Comma-separated sources (see `sources`)."),
        output: Path = typer.Option(..., "--output", "-o", help="Output folder: train.jsonl, manifest.json, parts/."),
        data: Optional[Path] = typer.Option(None, "--data", help="Data root (default: GEOVEC_DATA / ../shared/data)."),
        weights: List[str] = typer.Option([], "--weights", help="SOURCE=W,...: use round(W x size) examples of a "
                                          "source (default 1: each once)."),
        hard_negatives: int = typer.Option(0, "--hard-negatives", min=0, help="Mined hard negatives per example."),
        limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N items per source (seeded)."),
        seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1,
                                 help="Seed of subsamples, negatives and the shuffle."),
        path: List[str] = typer.Option([], "--path", help="SOURCE=PATH: read a source from PATH instead of its "
                                       "default under the data root (e.g. rsitmd-captions=/data/RSITMD/images)."),
        validation_images: int = typer.Option(0, "--validation-images", min=0, help="Hold out N training images "
                                              "per caption source (seeded) with all their captions, as mosaics "
                                              "for the mosaic source, and N gazetteer cities: validation.jsonl, "
                                              "for choosing models and checkpoints."),
    ) -> None:
        """Build sources, check them against every RSMEB test split, and write the shuffled, weighted mix."""
        from geovec.train.data import build_training_data

        names = [s.strip() for s in sources.split(",") if s.strip()]
        if not names:
            raise GeovecInputError("--sources", "names no source: give source names (see `geovec train-data sources`)")
        root = existing_folder("--data", data) or data_dir()
        manifest = build_training_data(names, output_folder("--output", output), root, _weights(weights),
                                       hard_negatives, limit, seed,
                                       {k: Path(v) for k, v in _pairs(path, "--path").items()},
                                       validation_images=validation_images)
        typer.echo(json.dumps({k: manifest[k] for k in ("examples", "counts", "validation_images", "build_seconds")}),
                   err=True)
        typer.echo(f"wrote {manifest['examples']} examples to {output / 'train.jsonl'}", err=True)
