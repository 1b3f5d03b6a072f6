"""``geovec bench``: list tasks, run them for a model, report results, and smoke-check a model on mock tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from geovec.cli.common import existing_folder, output_folder
from geovec.cli.tables import print_table
from geovec.config import data_dir
from geovec.errors import GeovecError, GeovecInputError

bench_app = typer.Typer(no_args_is_help=True, help="RSMEB: the remote-sensing multimodal embedding benchmark.")


def _print_lines(lines, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("task", "status", "result"):
        table.add_column(column, no_wrap=column != "result")
    for line in lines:
        table.add_row(line.task, line.status, line.detail)
    print_table(table)


@bench_app.command("list")
def list_command(data: Path = typer.Option(None, "--data", help="Data root (default: GEOVEC_DATA / ../shared/data)."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Every task with its category, dataset and whether its data is present."""
    from geovec.bench import list_tasks

    root = existing_folder("--data", data) or data_dir()
    rows = [{"task": task.metadata.name, "category": task.metadata.category, "dataset": task.metadata.dataset,
             "split": task.metadata.split, "query_kinds": list(task.metadata.query_kinds),
             "candidate_kinds": list(task.metadata.candidate_kinds), "data_present": task.data_present(root),
             "data_path": str(task.metadata.data_path)} for task in list_tasks()]
    if as_json:
        print(json.dumps({"data_root": str(root), "tasks": rows}, indent=2))
        return
    table = Table(title=f"RSMEB tasks (data root {root})", title_justify="left")
    for column in ("task", "category", "dataset", "split", "query -> candidates", "data"):
        table.add_column(column, no_wrap=column == "task")
    for row in rows:
        table.add_row(row["task"], row["category"], row["dataset"], row["split"],
                      f"{'+'.join(row['query_kinds'])} -> {'+'.join(row['candidate_kinds'])}",
                      "present" if row["data_present"] else f"missing ({row['data_path']})")
    print_table(table)


@bench_app.command("run")
def run_command(
    more_tasks: Optional[List[str]] = typer.Argument(None, hidden=True),
    model: str = typer.Option(..., "--model", "-m", help="Registered model name."),
    tasks: List[str] = typer.Option(..., "--tasks", "-t", help="Task names: --tasks T1 T2 ..., or comma-separated."),
    output: Path = typer.Option(..., "--output", "-o", help="Results folder (one JSON per model and task)."),
    model_path: Optional[Path] = typer.Option(None, "--model-path", help="Local checkpoint folder."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data root (default: GEOVEC_DATA / ../shared/data)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Description corpus JSONL for t2t tasks "
                                          "(default: the human captions, an oracle)."),
    fuse_with: Optional[str] = typer.Option(None, "--fuse-with", help="Image-text model whose scores are fused "
                                            "with the t2t scores (hybrid; needs the task's images on disk)."),
    fuse_model_path: Optional[Path] = typer.Option(None, "--fuse-model-path", help="Checkpoint of --fuse-with."),
    fuse_weight: float = typer.Option(0.5, "--fuse-weight", min=0.0, max=1.0,
                                      help="Weight of the image-text scores (0: text-to-text only, 1: image-text only)."),
) -> None:
    """Run tasks for a model; tasks whose inputs the model cannot embed are skipped and said so."""
    from geovec.bench import get_task
    from geovec.bench.run import run_loaded
    from geovec.models.cache import default_cache
    from geovec.models import load_model

    names = [name.strip() for value in [*tasks, *(more_tasks or [])] for name in value.split(",") if name.strip()]
    if not names:
        raise GeovecInputError("--tasks", "names no task: give task names (see `geovec bench list`)")
    output_folder("--output", output)
    existing_folder("--data", data)
    selected = [get_task(name) for name in dict.fromkeys(names)]  # unknown names fail before the model loads
    if corpus is not None and not any(task.metadata.protocol == "t2t" for task in selected):
        raise GeovecError("--corpus applies to text-to-text (t2t) tasks only, and none was selected")
    if fuse_with is not None and not any(task.metadata.protocol == "t2t" for task in selected):
        raise GeovecError("--fuse-with applies to text-to-text (t2t) tasks only, and none was selected")
    embedder = load_model(model, model_path)
    fusion = _fusion(fuse_with, fuse_model_path, fuse_weight) if fuse_with else None
    cache = default_cache()
    try:
        lines = run_loaded([(task.metadata, task) for task in selected], embedder, output, data or data_dir(), cache,
                           batch_size, model_path=str(model_path) if model_path else None, corpus=corpus,
                           fusion=fusion)
    finally:
        cache.close()
    _print_lines(lines, f"{model}: results in {output}")


def _fusion(name: str, path: Optional[Path], weight: float):
    """The image-text side of a hybrid run, embedding with the instructions of the image-text retrieval tasks."""
    from geovec.instructions import IMAGE_TEXT_RETRIEVAL
    from geovec.models import load_model
    from geovec.t2t.fusion import Fusion

    try:
        return Fusion(load_model(name, path), weight, image_instruction=IMAGE_TEXT_RETRIEVAL.query,
                      text_instruction=IMAGE_TEXT_RETRIEVAL.candidate)
    except ValueError as exc:
        raise GeovecError(f"--fuse-with: {exc}") from None


@bench_app.command("report")
def report_command(results: Path = typer.Argument(..., help="Results folder written by `geovec bench run`.")) -> None:
    """Write report.md (models x tasks, category averages) and report.png into the results folder."""
    from geovec.bench.results import write_report

    markdown, png = write_report(results)
    typer.echo(markdown.read_text(encoding="utf-8"))
    typer.echo(f"wrote {markdown} and {png}", err=True)


@bench_app.command("mock-run")
def mock_run_command(
    model: str = typer.Option(..., "--model", "-m"),
    model_path: Optional[Path] = typer.Option(None, "--model-path"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write result records here."),
) -> None:
    """Check a model in seconds on tiny in-memory tasks of every type (no data needed)."""
    from geovec.bench.mock import MOCK_TASKS
    from geovec.bench.run import run_loaded
    from geovec.models import load_model
    from geovec.models.cache import EmbeddingCache

    if output is not None:
        output_folder("--output", output)
    embedder = load_model(model, model_path)
    cache = EmbeddingCache(":memory:")
    lines = run_loaded(MOCK_TASKS, embedder, output, Path("."), cache, show_progress=False)
    _print_lines(lines, f"{model} on mock tasks")
