"""``geovec caption``: describe every image with a local VLM into a text-to-text corpus (see ``geovec.caption``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from geovec.caption.prompts import DEFAULT_PROMPT_VERSION
from geovec.caption.quality import ALL_CHECKS
from geovec.cli.common import output_file


def caption_command(
    images: Path = typer.Argument(..., help="Folder of images (searched recursively) or a text file of image paths."),
    model: Path = typer.Option(..., "--model", "-m", help="Local Qwen2-VL or LLaVA-NeXT checkpoint folder."),
    output: Path = typer.Option(..., "--output", "-o", help="Description corpus to write (JSONL); resumed if present."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images per generate call."),
    variants: Optional[int] = typer.Option(None, "--variants", min=1,
                                           help="Use the first N prompts of the set (default: all)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, help="Longest description, in tokens."),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu, cuda, cuda:1 ..."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1,
                                        help="Only the first N images (folder: sorted by id; list: in order)."),
    retries: int = typer.Option(2, "--retries", min=0, help="Re-asks (with sampling) of a description that fails "
                                                            "a quality check."),
    prompt_version: str = typer.Option(DEFAULT_PROMPT_VERSION, "--prompts", help="Versioned prompt set."),
    checks: str = typer.Option(",".join(ALL_CHECKS), "--checks",
                               help="Comma-separated quality checks a description must pass."),
) -> None:
    """Describe every image with a local vision-language model (RSRT prompts) into a description corpus."""
    from geovec.caption import caption_images, load_caption_model

    output_file("--output", output)
    report = caption_images(images, load_caption_model(model, device), output, prompt_version=prompt_version,
                            variants=variants, batch_size=batch_size, max_new_tokens=max_new_tokens,
                            retries=retries, limit=limit, checks=[c.strip() for c in checks.split(",") if c.strip()])
    typer.echo(f"{report.output}: {report.total} descriptions ({report.generated} new) of {report.images} images; "
               f"{len(report.failures)} failures listed in {report.failure_report}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``geovec caption`` to ``app``."""
    app.command("caption")(caption_command)
