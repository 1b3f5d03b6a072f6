"""Hostile arguments to every `geovec` command (outside serve, index build, embed and ingest): each is one
`error:` line and exit code 2, refused before any work is done or any file is written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from geovec.cli.main import main


def geovec_in_process(args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """The real entry point (`geovec ...`) in this interpreter: its exit code and stderr."""
    monkeypatch.setattr(sys, "argv", ["geovec", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    return stopped.value.code, capsys.readouterr().err


@pytest.fixture
def places(tmp_path, monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("GEOVEC_HOME", str(tmp_path / "home"))
    (tmp_path / "a-file.txt").write_text("not a folder\n")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"image_id": "a", "kind": "caption", "text": "a port"}\n')
    (tmp_path / "latin-results").mkdir()
    (tmp_path / "latin-results" / "run.json").write_bytes(b'{"model": "caf\xe9"}')
    (tmp_path / "folder-results" / "minilm.json").mkdir(parents=True)  # a folder whose name looks like a record
    return {"FILE": str(tmp_path / "a-file.txt"), "FOLDER": str(tmp_path / "a-folder"), "TMP": str(tmp_path)}


@pytest.mark.parametrize("args, message", [
    (["bench", "run", "-m", "minilm", "-t", "", "-o", "TMP/r"], "error: --tasks: names no task"),
    (["bench", "run", "-m", "minilm", "-t", " , ", "-o", "TMP/r"], "error: --tasks: names no task"),
    (["bench", "run", "-m", "minilm", "-t", "rsicd-retrieval", "-o", "FILE"], "error: --output: FILE is a file"),
    (["bench", "run", "-m", "minilm", "-t", "rsicd-retrieval", "-o", "TMP/r", "--data", "FILE"],
     "error: --data: no such folder: FILE"),
    (["bench", "mock-run", "-m", "minilm", "-o", "FILE"], "error: --output: FILE is a file, not a folder"),
    (["bench", "list", "--data", "TMP/nowhere"], "error: --data: no such folder: TMP/nowhere"),
    (["bench", "report", "TMP/latin-results"], "error: TMP/latin-results/run.json: not valid UTF-8 (byte 0xe9 at"),
    (["bench", "report", "TMP/folder-results"], "error: no result records in TMP/folder-results"),
    (["corpus", "import", "rsicd", "-o", "FOLDER"], "error: --output: FOLDER is a folder"),
    (["caption", "FOLDER", "-m", "FOLDER", "-o", "FOLDER"], "error: --output: FOLDER is a folder"),
    (["train-data", "build", "--sources", " ", "-o", "TMP/out"], "error: --sources: names no source"),
    (["train-data", "build", "--sources", "rsicd-captions", "-o", "FILE"], "error: --output: FILE is a file"),
    (["train-data", "build", "--sources", "rsicd-captions", "-o", "TMP/out", "--weights", "rsicd-captions=nan"],
     "error: --weights: weight of rsicd-captions must be a finite number >= 0, got 'nan'"),
    (["train-data", "build", "--sources", "rsicd-captions", "-o", "TMP/out", "--weights", "rsicd-captions=inf"],
     "error: --weights: weight of rsicd-captions must be a finite number >= 0, got 'inf'"),
    (["train-data", "build", "--sources", "rsicd-captions", "-o", "TMP/out", "--seed", "-1"],
     "error: Invalid value for '--seed'"),
    (["search", "--image", "FOLDER", "--text", "x"], "error: image: FOLDER is a folder; give an image file"),
    (["index", "descriptions", "TMP/corpus.jsonl", "--index", "TMP/r", "--images-root", "FILE"],
     "error: --images-root: no such folder: FILE"),
    (["index", "info", "--index", ""], "error: --index: is empty"),
    (["search", "--text", "x", "--index", ""], "error: --index: is empty"),
    (["quickstart", "--index", ""], "error: --index: is empty"),
    (["quickstart", "--query", ""], "error: --query: is empty"),
    (["quickstart", "--query", " \t "], "error: --query: is empty"),
    (["quickstart", "--query", "caf\udce9", "--index", "TMP/qs"], "error: text: not valid UTF-8 (byte 0xe9 at"),
    (["quickstart", "--top-k", "5000", "--index", "TMP/qs"], "error: top_k: must be between 1 and 1000"),
    (["train", ""], "error: CONFIG: is empty"),
    (["train", "TMP/two\nlines.yaml"], "error: recipe TMP/two\\nlines.yaml: no such file"),
    (["train", "FOLDER"], "error: recipe FOLDER: is a folder"),
    (["train", "TMP/nope.yaml"], "error: recipe TMP/nope.yaml: no such file"),
])
def test_hostile_arguments_are_one_error_line_and_exit_2(args, message, places, capsys, monkeypatch):
    args = [_place(arg, places) for arg in args]
    code, err = geovec_in_process(args, capsys, monkeypatch)
    assert code == 2, err
    assert err.startswith(_place(message, places)) and err.count("\n") == 1 and "Traceback" not in err
    for made in ("r", "out", "qs"):  # refused before anything was written
        assert not (Path(places["TMP"]) / made).exists()


def _place(text: str, places: dict[str, str]) -> str:
    for name, path in places.items():
        text = text.replace(name, path)
    return text
