"""What the ``geovec`` sub-commands share: running a typer app with one-line errors, and opening an index for
writing with the model that fills it. Its own module, so ``cli.main`` imports the sub-commands and they import
this, never ``cli.main`` back.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.exceptions import TyperException

from geovec.errors import GeovecError


def open_for_writing(index: str | Path, model: str, model_path: Path | None, descriptions: bool = False):
    """The embedder and a new or existing index for it; a description index is marked so, and must stay one; an
    index built by another revision of the model is refused."""
    from geovec.index import create_index, is_chroma_url, open_index
    from geovec.index.base import IndexExistsError
    from geovec.index.store import DB_NAME, other_files
    from geovec.models import load_model
    from geovec.models.registry import check_index_revision, index_model_record
    from geovec.t2t.search import DESCRIPTIONS, REPRESENTS, check_represents

    embedder = load_model(model, model_path)
    recorded = index_model_record(model, model_path, getattr(embedder, "revision", ""))
    if descriptions:
        recorded[REPRESENTS] = DESCRIPTIONS
    if is_chroma_url(index):
        store = create_index(index, embedder.dim, model=recorded, exist_ok=True)  # opens an existing collection
    elif Path(index).is_dir() and not (Path(index) / DB_NAME).exists() and (others := other_files(Path(index))):
        raise GeovecError(f"{index} holds files that are not a geovec index ({', '.join(others[:3])}"
                          f"{', ...' if len(others) > 3 else ''}): give an index folder, or a new or empty one")
    else:
        try:
            return embedder, create_index(index, embedder.dim, model=recorded)
        except IndexExistsError:  # there already, or made meanwhile by another writer: checked like any other
            store = open_index(index)
    try:
        if store.model.get("name") != model:
            raise GeovecError(f"index {index} was built with model {store.model.get('name')!r}, not {model!r}")
        check_represents(store.model, index, descriptions)
        check_index_revision(store.model, embedder, index)
    except GeovecError:
        store.close()
        raise
    return embedder, store


def run(cli: typer.Typer) -> None:
    """Run a typer app, turning user errors into one line on stderr and exit code 2.

    Typer's own argument errors (``--top-k abc``) get the same one line instead of its boxed usage message.
    """
    try:
        code = cli(standalone_mode=False)
    except GeovecError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `geovec` alone: the help, as typer shows it (typer's test)
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)
        typer.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted (long jobs continue where they stopped when re-run)", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
