"""From images to a text-to-text result as a user runs it: import captions, describe by neighbours, hybrid bench."""

import json
import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parents[1] / "data"


def geovec(*args: str, home) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geovec.cli.main", *args], capture_output=True, text=True,
                          env={**os.environ, "GEOVEC_HOME": str(home), "COLUMNS": "200"}, timeout=300)


def test_neighbour_corpus_then_text_to_text_and_hybrid_runs(tmp_path):
    train, described = tmp_path / "train.jsonl", tmp_path / "neighbours.jsonl"
    result = geovec("corpus", "import", "rsicd", "--split", "train", "--data", str(FIXTURES), "-o", str(train),
                    home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "40 human captions of 8 images" in result.stderr
    images = FIXTURES / "rsicd" / "images"
    result = geovec("corpus", "neighbours", str(images), "--reference", str(train), "--reference-images",
                    str(images), "--k", "1", "-o", str(described), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "of 5 images (8 skipped: already in the reference; 0 unreadable)" in result.stderr  # the 5 test images
    info = geovec("corpus", "info", str(described), home=tmp_path)
    assert "neighbours:geovec-mini" in info.stdout and "oracle" not in info.stdout

    run = ("bench", "run", "--model", "minilm", "--tasks", "rsicd-t2t", "--data", str(FIXTURES), "--corpus",
           str(described), "--output", str(tmp_path / "r"))
    assert geovec(*run, home=tmp_path).returncode == 0
    result = geovec(*run, "--fuse-with", "geovec-mini", "--fuse-weight", "0.25", home=tmp_path)
    assert result.returncode == 0, result.stderr
    (text_only_path,) = (tmp_path / "r" / "minilm").glob("*/rsicd-t2t.json")  # <out>/<model>/<revision>/<task>.json
    (hybrid_path,) = (tmp_path / "r" / "minilm_geovec-mini").glob("*/rsicd-t2t.json")
    text_only, hybrid = json.loads(text_only_path.read_text()), json.loads(hybrid_path.read_text())
    assert hybrid["model"]["name"] == "minilm+geovec-mini" and not hybrid["corpus"]["oracle"]
    assert hybrid["corpus"]["fusion"]["weight"] == 0.25
    scores = hybrid["scores"]
    assert scores["mean_recall_fused_w0"] == scores["mean_recall_text_to_text"] == text_only["scores"]["mean_recall"]
    assert scores["mean_recall_fused_w1"] == scores["mean_recall_image_text"]
    assert scores["mean_recall"] == scores["mean_recall_fused_w0.25"]
    report = geovec("bench", "report", str(tmp_path / "r"), home=tmp_path).stdout
    assert "| RSICD | ours: rsicd-t2t, minilm+geovec-mini, corpus " in report and "hybrid (image-text weight 0.25)" in report
    assert "(neighbours:geovec-mini neighbours-v1:k=1:reference=train.jsonl)" in report
    assert "| yes: image-based (captions of the nearest train images), not a VLM corpus |" in report


def test_hybrid_and_corpus_errors_are_one_line(tmp_path):
    run = ("bench", "run", "--model", "minilm", "--data", str(FIXTURES), "--output", str(tmp_path / "r"))
    result = geovec(*run, "--tasks", "rsicd-t2t", "--fuse-with", "minilm", home=tmp_path)
    assert result.returncode == 2 and "--fuse-with: model 'minilm' cannot embed both images and text" in result.stderr
    result = geovec(*run, "--tasks", "rsicd-scene", "--fuse-with", "geovec-mini", home=tmp_path)
    assert result.returncode == 2 and "applies to text-to-text (t2t) tasks only" in result.stderr
    result = geovec("corpus", "import", "eurosat", "-o", str(tmp_path / "c.jsonl"), home=tmp_path)
    assert result.returncode == 2 and "corpus source 'eurosat'" in result.stderr
    for output in (result.stdout, result.stderr):
        assert "Traceback" not in output
