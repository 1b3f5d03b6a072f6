"""What the ``geovec`` sub-commands share: running a typer app with one-line errors, and opening an index for
writing with the model that fills it. Its own module, so ``cli.main`` imports the sub-commands and they import
this, never ``cli.main`` back.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.exceptions import TyperException

from geovec.errors import GeovecError, GeovecInputError


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


def given(option: str, value: str | None, expected: str) -> str | None:
    """``value`` unless the option was given empty: ``--within ''`` (often a shell variable that expanded to
    nothing) is a mistake to report, not an absent option (nor the current folder, which ``Path('')`` would be)."""
    if value is not None and not value.strip():
        raise GeovecInputError(option, f"is empty: give {expected}")
    return value


def output_file(option: str, path: Path) -> Path:
    """A file to write: a folder there would fail only after the work is done (IsADirectoryError on the rename)."""
    if path.is_dir():
        raise GeovecInputError(option, f"{path} is a folder; give the path of the file to write")
    return path


def output_folder(option: str, path: Path) -> Path:
    """A folder to write into: a file of that name would fail only when the first result is saved."""
    if path.exists() and not path.is_dir():
        raise GeovecInputError(option, f"{path} is a file, not a folder: choose another path")
    return path


def existing_folder(option: str, path: Path | None) -> Path | None:
    """A folder option given explicitly (``--data``, ``--images-root``) must be one: a typo would otherwise read as
    "every dataset missing" or "no image found" and still exit 0."""
    if path is not None and not path.is_dir():
        raise GeovecInputError(option, f"no such folder: {path}")
    return path


def one_line(message: str) -> str:
    """The message with its line breaks escaped: a name the user gave (a path holding a newline, a quoted
    value) must not split the one ``error:`` line that scripts read."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def run(cli: typer.Typer) -> None:
    """Run a typer app, turning user errors into one line on stderr and exit code 2.

    Typer's own argument errors (``--top-k abc``) get the same one line instead of its boxed usage message.
    """
    try:
        code = cli(standalone_mode=False)
    except GeovecError as exc:
        typer.echo(f"error: {one_line(str(exc))}", err=True)
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
