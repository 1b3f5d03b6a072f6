"""``geovec corpus``: make and inspect description corpora (the image side of text-to-text retrieval).

A corpus comes from a VLM (``geovec caption``), from the nearest captioned neighbours of each image
(``geovec corpus neighbours``), or from a dataset's human captions (``geovec corpus import``: the oracle).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from geovec.cli.common import existing_folder, output_file
from geovec.cli.tables import print_table
from geovec.config import data_dir
from geovec.errors import GeovecError

corpus_app = typer.Typer(no_args_is_help=True, help="Description corpora for text-to-text retrieval (TRSLLaVA).")
SPLIT_DATASETS = ("rsicd", "rsitmd")


@corpus_app.command("import")
def import_command(
    source: str = typer.Argument(..., help="rsicd or rsitmd (standard AMFMN splits under the data root), or the "
                                           "path of a Karpathy-layout dataset.json (UCM-, Sydney-Captions)."),
    output: Path = typer.Option(..., "--output", "-o", help="Corpus JSONL to write."),
    split: str = typer.Option("test", "--split", help="train or test (Karpathy files: also val)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data root (default: GEOVEC_DATA / ../shared/data)."),
) -> None:
    """Write a dataset's human captions as a corpus (as descriptions of the test images they are an oracle)."""
    from geovec.t2t.corpus import human_caption_corpus, karpathy_caption_corpus, write_corpus

    output_file("--output", output)
    if source.lower() in SPLIT_DATASETS:
        root = existing_folder("--data", data) or data_dir()
        corpus = human_caption_corpus(root / "rs_caption_splits", source.lower(), split)
    elif Path(source).is_file():
        corpus = karpathy_caption_corpus(source, split=split)
    else:
        raise GeovecError(f"corpus source {source!r}: neither {' nor '.join(SPLIT_DATASETS)} nor a dataset.json file")
    write_corpus(output, corpus)
    typer.echo(f"{output}: {len(corpus)} human captions of {len({d.image_id for d in corpus})} images", err=True)


@corpus_app.command("neighbours")
def neighbours_command(
    images: Path = typer.Argument(..., help="Images to describe: a folder (searched recursively) or a list file."),
    reference: Path = typer.Option(..., "--reference", help="Corpus of captioned reference images (e.g. "
                                                            "`geovec corpus import rsicd --split train`)."),
    reference_images: Path = typer.Option(..., "--reference-images", help="Folder holding the reference images."),
    output: Path = typer.Option(..., "--output", "-o", help="Corpus JSONL to write."),
    model: str = typer.Option("geovec-mini", "--model", "-m", help="Image model that finds the neighbours."),
    model_path: Optional[Path] = typer.Option(None, "--model-path", help="Checkpoint folder, for models that need one."),
    k: int = typer.Option(3, "--k", min=1, help="Neighbours whose captions describe each image."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
) -> None:
    """Describe images by the captions of their k nearest reference images (no VLM; images in the reference are
    skipped, so no image is described by its own captions). Embeddings are cached: a rerun re-encodes nothing."""
    from geovec.caption.neighbours import neighbour_corpus
    from geovec.caption.pipeline import list_images
    from geovec.models import load_model
    from geovec.models.cache import default_cache
    from geovec.models.registry import get_spec
    from geovec.t2t.corpus import read_corpus, write_corpus

    output_file("--output", output)
    targets = list_images(images)
    reference_corpus = read_corpus(reference)
    embedder = load_model(model, model_path)
    cache = default_cache()
    try:
        corpus, report = neighbour_corpus(targets, reference_corpus, reference_images, embedder, k=k,
                                          instruction=get_spec(model).item_instruction, reference_name=reference.name,
                                          cache=cache, batch_size=batch_size)
    finally:
        cache.close()
    write_corpus(output, corpus)
    for image_id, reason in sorted(report.failed.items()):
        typer.echo(f"skipped {image_id}: {reason}", err=True)
    typer.echo(f"{output}: {report.descriptions} descriptions of {report.targets} images "
               f"({report.skipped_in_reference} skipped: already in the reference; {len(report.failed)} unreadable)",
               err=True)


@corpus_app.command("info")
def info_command(corpus_path: Path = typer.Argument(..., help="Corpus JSONL.")) -> None:
    """Images, descriptions per kind, and which models and prompt versions wrote them."""
    from geovec.t2t.corpus import HUMAN, read_corpus

    corpus = read_corpus(corpus_path)
    per_image = Counter(d.image_id for d in corpus)
    oracle = all(d.model == HUMAN for d in corpus)
    table = Table(title=f"{corpus_path}: {len(corpus)} descriptions of {len(per_image)} images "
                        f"({min(per_image.values())}-{max(per_image.values())} per image)"
                        + (" - human captions: an oracle for their own images" if oracle else ""),
                  title_justify="left")
    for column in ("model", "prompt version", "kind", "descriptions"):
        table.add_column(column)
    for (model, version, kind), count in sorted(Counter((d.model, d.prompt_version, d.kind) for d in corpus).items()):
        table.add_row(model, version, kind, str(count))
    print_table(table)
