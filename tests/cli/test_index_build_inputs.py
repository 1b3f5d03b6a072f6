"""Bad input to `geovec index build` and `geovec embed`: one `error:` line naming the input, exit 2, nothing written.

The commands run in this process through ``geovec.cli.main.main`` (the console script's own entry point, with its
error handling), with the real MiniLM and real files, so a dozen cases cost seconds, not a dozen interpreter starts.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from geovec.cli.main import main

LONG_TEXT = " ".join(["river"] * 398)  # 400 tokens with [CLS] and [SEP]; MiniLM reads 256
LONG_CHARS = ("a harbour with container ships and cranes beside a river " * 280)[:16_000]


def geovec(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Exit code and stderr of one `geovec` command."""
    monkeypatch.setattr(sys, "argv", ["geovec", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err


@pytest.fixture
def run(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GEOVEC_HOME", str(tmp_path / "home"))
    return lambda *args: geovec(monkeypatch, capsys, *args)


def _lines(path: Path, *rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[-1]


FINE = {"id": "fine", "input": "a port with cranes"}
BAD_ITEMS = {
    "wrong vector dim": ([FINE, {"id": "pre", "vector": [0.1, 0.2, 0.3]}],
                         ":2: item 'pre': vector: has 3 numbers; index {index} holds 384-d vectors (model 'minilm')"),
    "unknown key": ([{"id": "a", "input": "a port", "captoins": ["a port"]}],
                    ":1: item 'a': captoins: unknown key; did you mean 'captions'?"),
    "400-token text": ([FINE, {"id": "long", "input": LONG_TEXT}],
                       (":2: item 'long': input: the text takes 400 tokens; model 'minilm' reads at most 256, so the "
                        "rest would be ignored: shorten it, or pass --truncate to cut it")),
    "16,000-character text": ([{"id": "essay", "inputs": ["a port", LONG_CHARS]}],
                              (":1: item 'essay': inputs[1]: the text takes 2,802 tokens; model 'minilm' reads "
                               "at most 256")),
    "lone surrogate in id": ([{"id": "caf\ud800", "input": "a cafe"}],  # written as JSON's "\ud800"
                             ":1: item 'caf\\ud800': id: not valid UTF-8 (lone surrogate U+D800 at character 3)"),
}


@pytest.mark.parametrize("rows, message", BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
def test_bad_items_are_refused_naming_line_item_and_field(run, tmp_path, rows, message):
    items, index = _lines(tmp_path / "items.jsonl", *rows), tmp_path / "idx"
    code, stderr = run("index", "build", str(items), "--index", str(index))
    assert code == 2 and _error_line(stderr).startswith(f"error: {items}" + message.format(index=index))
    assert not (index / "index.sqlite").exists() or _count(index) == 0  # refused before anything was written


def _count(index: Path) -> int:
    from geovec.index import VectorIndex

    with VectorIndex.open(index) as store:
        return len(store)


UNREADABLE_FILES = {
    "invalid UTF-8": (b'\n"caf\xe9"\n', ":2: not valid UTF-8 (byte 0xe9 at column 5)"),  # Latin-1, not UTF-8
    "binary file": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, ":1: not valid UTF-8 (byte 0x89 at column 1)"),
}


@pytest.mark.parametrize("content, message", UNREADABLE_FILES.values(), ids=UNREADABLE_FILES.keys())
@pytest.mark.parametrize("command", ["index build", "embed"])
def test_files_that_are_not_utf8_json_lines_are_refused_by_line(run, tmp_path, content, message, command):
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    target = ["--index", str(tmp_path / "idx")] if command == "index build" else ["-o", str(tmp_path / "v.npy")]
    code, stderr = run(*command.split(), str(path), *target)
    assert code == 2 and _error_line(stderr).startswith(f"error: {path}{message}")


def test_a_folder_of_other_files_is_not_made_an_index(run, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    code, stderr = run("index", "build", str(_lines(tmp_path / "items.jsonl", FINE)), "--index", str(folder))
    assert code == 2 and _error_line(stderr) == (f"error: {folder} holds files that are not a geovec index "
                                                 "(notes.txt): give an index folder, or a new or empty one")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_truncate_cuts_long_item_texts_and_says_how_many(run, tmp_path):
    items = _lines(tmp_path / "items.jsonl", FINE, {"id": "long", "input": LONG_TEXT})
    code, stderr = run("index", "build", str(items), "--index", str(tmp_path / "idx"), "--truncate")
    assert code == 0 and stderr.strip().splitlines()[-1].endswith(
        "added 2, already present 0, total 2; 1 text cut to the model's window (--truncate)"), stderr


def test_items_with_their_own_vector_are_stored_as_given(run, tmp_path):
    vector = np.arange(1, 385, dtype=np.float32)
    items = _lines(tmp_path / "items.jsonl", FINE, {"id": "pre", "vector": vector.tolist(), "captions": ["mine"]})
    code, stderr = run("index", "build", str(items), "--index", str(tmp_path / "idx"))
    assert code == 0, stderr
    from geovec.index import VectorIndex

    with VectorIndex.open(tmp_path / "idx") as store:
        assert np.allclose(store.vectors(["pre"])[0], vector / np.linalg.norm(vector), atol=1e-6)
        assert store.get("pre").captions == ["mine"]


def test_embed_refuses_a_text_longer_than_the_window_and_truncate_cuts_it(run, tmp_path):
    inputs, output = _lines(tmp_path / "in.jsonl", "a port", LONG_TEXT), tmp_path / "v.npy"
    code, stderr = run("embed", str(inputs), "-o", str(output))
    assert code == 2 and _error_line(stderr) == (
        f"error: {inputs}:2: the text takes 400 tokens; model 'minilm' reads at most 256, so the rest would be "
        "ignored: shorten it, or pass --truncate to cut it")
    assert not output.exists()
    code, stderr = run("embed", str(inputs), "-o", str(output), "--truncate")
    assert code == 0 and stderr.strip().endswith("wrote 2 x 384 embeddings to "
                                                 f"{output}; 1 text cut to the model's window (--truncate)"), stderr
    assert np.load(output).shape == (2, 384)


def test_embed_output_naming_a_folder_is_refused_before_embedding(run, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    code, stderr = run("embed", str(_lines(tmp_path / "in.jsonl", "a port")), "--output", str(folder))
    assert code == 2 and _error_line(stderr) == (f"error: --output: {folder} is a folder; give the path of the .npy "
                                                 f"file to write, e.g. {folder / 'embeddings.npy'}")
    assert list(folder.iterdir()) == []
