"""``geovec train CONFIG.yaml [--output DIR] [--resume] [--set key=value ...]``.

Also runnable alone with the same arguments (``python -m geovec.cli.train CONFIG.yaml ...``), which is how to start
distributed runs: ``accelerate launch -m geovec.cli.train CONFIG.yaml``.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from geovec.cli.common import given, run


def train_command(
    config: str = typer.Argument(..., help="Training recipe (YAML), e.g. recipes/geovec-mini.yaml."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Output folder (overrides output_dir)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in the output folder."),
    overrides: List[str] = typer.Option([], "--set", help="Override a config key: --set lr=1e-4 --set lora.r=16."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train an encoder contrastively on TrainingExample JSONL files; writes OUTPUT/final for `--model-path`."""
    from geovec.train.config import load_config

    settings = load_config(given("CONFIG", config, "a recipe YAML file"), overrides,
                           given("--output", output, "an output folder"))
    from geovec.train.trainer import train  # torch: only for a valid recipe

    final = train(settings, resume=resume, show_progress=not quiet)
    typer.echo(f"trained encoder saved to {final}", err=True)
    if (final.parent / "best").is_dir():
        typer.echo(f"best on the validation split: {final.parent / 'best'} (see validation in train_log.jsonl)",
                   err=True)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to the geovec CLI."""
    app.command("train")(train_command)


def main() -> None:
    """``python -m geovec.cli.train`` (what ``accelerate launch -m geovec.cli.train`` runs on every process)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    run(app)


if __name__ == "__main__":
    main()
