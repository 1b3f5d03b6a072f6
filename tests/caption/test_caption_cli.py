"""``geovec caption`` as registered on a typer app, and human-caption datasets imported as corpora."""

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from geovec.caption import failure_report_path
from geovec.cli.caption import register
from geovec.errors import GeovecError
from geovec.t2t import karpathy_caption_corpus, read_corpus, write_corpus

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command, so "caption" is a subcommand as on the real app
    return app


def test_caption_command(app, qwen_checkpoint, image_dir, tmp_path):
    output = tmp_path / "corpus.jsonl"
    args = ["caption", str(image_dir), "--model", str(qwen_checkpoint), "--output", str(output), "--limit", "2",
            "--variants", "1", "--max-new-tokens", "4", "--batch-size", "2", "--retries", "0", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(failure_report_path(output).read_text())
    written = read_corpus(output) if output.stat().st_size else []
    assert len(written) + len(report["failures"]) == 2  # random weights: whatever passed the checks, or why not
    assert "2 images" in result.output and str(failure_report_path(output)) in result.output
    lenient = tmp_path / "lenient.jsonl"  # only the "empty" check: random but non-empty text passes
    result = CliRunner().invoke(app, [*args[:5], str(lenient), *args[6:], "--checks", "empty"])
    assert result.exit_code == 0, result.output
    assert len(read_corpus(lenient)) == 2
    result = CliRunner().invoke(app, [*args[:5], str(lenient), *args[6:], "--checks", "empty,spelling"])
    assert isinstance(result.exception, GeovecError) and "unknown quality checks ['spelling']" in str(result.exception)


def test_caption_command_errors(app, tmp_path, image_dir):
    result = CliRunner().invoke(app, ["caption", str(image_dir), "--model", str(tmp_path), "--output", "c.jsonl"])
    assert isinstance(result.exception, GeovecError) and "(llava_next, qwen2_vl): missing config.json" in \
        str(result.exception)
    result = CliRunner().invoke(app, ["caption", str(image_dir), "--model", str(tmp_path), "--output", "c.jsonl",
                                      "--variants", "0"])
    assert result.exit_code == 2  # typer's own range check


@pytest.mark.parametrize("dataset", ["UCM_captions", "Sydney_captions"])
def test_karpathy_datasets_become_corpora(dataset, tmp_path):
    corpus = karpathy_caption_corpus(DATA / dataset / "dataset.json")
    records = json.loads((DATA / dataset / "dataset.json").read_text())["images"]
    expected = [(r["filename"], s["raw"]) for r in records if r["split"] == "test" for s in r["sentences"]
                if s["raw"].strip()]
    assert [(d.image_id, d.text) for d in corpus] == expected
    assert {(d.kind, d.model) for d in corpus} == {("human-caption", "human")}
    assert [d.image_id for d in karpathy_caption_corpus(DATA / dataset / "dataset.json", split="train")] == [
        r["filename"] for r in records if r["split"] == "train" for s in r["sentences"] if s["raw"].strip()]
    write_corpus(tmp_path / "human.jsonl", corpus)
    assert read_corpus(tmp_path / "human.jsonl") == corpus
