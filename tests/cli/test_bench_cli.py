"""``geovec bench`` as a user runs it: mock-run with a real (tiny, random) CLIP and the offline MiniLM."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geovec.config import data_dir


def geovec(*args: str, home) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geovec.cli.main", *args], capture_output=True, text=True,
                          env={**os.environ, "GEOVEC_HOME": str(home), "COLUMNS": "200"}, timeout=300)


def model_records(results: Path, model: str = "clip") -> dict[str, dict]:
    """A model's result records by task: they live in its revision's folder, ``<out>/<model>/<revision>/``."""
    found = [(p, json.loads(p.read_text())) for p in (results / model).glob("*/*.json")]
    assert all(path.parent.name == record["model"]["revision"] != "" for path, record in found)
    return {path.stem: record for path, record in found}


def test_mock_run_checks_every_task_type_for_an_image_model(tmp_path, tiny_clip_checkpoint):
    result = geovec("bench", "mock-run", "--model", "clip", "--model-path", str(tiny_clip_checkpoint),
                    "--output", str(tmp_path / "results"), home=tmp_path)
    assert result.returncode == 0, result.stderr
    records = model_records(tmp_path / "results").values()
    categories = {r["task"]["category"] for r in records}
    assert categories == {"scene-classification", "cross-modal-retrieval", "compositional-retrieval", "vqa",
                          "region", "geo-localization"}
    assert all(0 <= r["scores"]["main_score"] <= 100 for r in records)
    report = geovec("bench", "report", str(tmp_path / "results"), home=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "| clip |" in report.stdout and (tmp_path / "results" / "report.png").is_file()


def test_mock_run_says_which_tasks_a_text_model_cannot_take(tmp_path):
    result = geovec("bench", "mock-run", "--model", "minilm", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mock-text-text-retrieval  │ ok" in result.stdout
    assert "cannot embed image segments" in result.stdout


def test_report_on_missing_folder_is_one_line(tmp_path):
    result = geovec("bench", "report", str(tmp_path / "none"), home=tmp_path)
    assert result.returncode == 2 and "results folder not found" in result.stderr and "Traceback" not in result.stderr


REAL_TASKS = ["rsicd-scene", "rsicd-retrieval", "rsvqa-lr-geoloc-image-to-point", "rsvqa-lr-geoloc-point-to-image",
              "osbs-tree-region"]


@pytest.mark.skipif(not (data_dir() / "rsicd" / "images").is_dir(), reason="shared data not present")
def test_run_on_real_shared_data_then_again_from_cache(tmp_path, tiny_clip_checkpoint):
    listing = geovec("bench", "list", home=tmp_path)
    assert listing.returncode == 0
    present = {line.split()[1] for line in listing.stdout.splitlines() if "present" in line}
    assert set(REAL_TASKS) <= present
    run = ("bench", "run", "--model", "clip", "--model-path", str(tiny_clip_checkpoint), "--tasks", *REAL_TASKS,
           "--output", str(tmp_path / "results"))
    first = geovec(*run, home=tmp_path)
    assert first.returncode == 0, first.stderr
    records = model_records(tmp_path / "results")
    assert set(records) == set(REAL_TASKS)
    assert records["rsicd-retrieval"]["counts"] == {"images": 1093, "texts": 5465}
    assert records["rsicd-scene"]["counts"]["queries"] == 1027
    assert all(r["cache"]["misses"] > 0 for r in records.values())
    second = geovec(*run, home=tmp_path)
    assert second.returncode == 0, second.stderr
    again = model_records(tmp_path / "results")
    assert all(r["cache"]["misses"] == 0 for r in again.values())  # nothing re-encoded
    assert all(again[t]["scores"] == records[t]["scores"] for t in REAL_TASKS)
    report = geovec("bench", "report", str(tmp_path / "results"), home=tmp_path)
    assert report.returncode == 0 and "| rsicd-retrieval | cross-modal-retrieval |" in report.stdout


def test_every_registered_task_runs_on_its_fixture(tmp_path, tiny_clip_checkpoint):
    from geovec.bench import list_tasks

    names = [task.name for task in list_tasks()]
    fixtures = Path(__file__).parents[1] / "data"
    result = geovec("bench", "run", "--model", "clip", "--model-path", str(tiny_clip_checkpoint), "--tasks",
                    ",".join(names), "--data", str(fixtures), "--output", str(tmp_path / "results"), home=tmp_path)
    assert result.returncode == 0, result.stderr
    written = set(model_records(tmp_path / "results"))
    assert written == set(names) and len(names) >= 21


def test_bad_data_names_the_task_and_file(tmp_path, tiny_clip_checkpoint):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(Path(__file__).parents[1] / "data" / "UCMerced_LandUse", data / "UCMerced_LandUse")
    victim = next((data / "UCMerced_LandUse").rglob("*.tif"))
    victim.write_bytes(b"not an image")
    result = geovec("bench", "run", "--model", "clip", "--model-path", str(tiny_clip_checkpoint), "--tasks",
                    "ucm-scene", "--data", str(data), "--output", str(tmp_path / "results"), home=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ucm-scene" in result.stderr and victim.name in result.stderr
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("*.json"))


@pytest.mark.skipif(not (data_dir() / "rs_caption_splits" / "rsitmd").is_dir(), reason="shared data not present")
def test_text_side_task_with_minilm_is_reported_as_oracle(tmp_path):
    result = geovec("bench", "run", "--model", "minilm", "--tasks", "rsitmd-t2t", "--output", str(tmp_path / "r"),
                    home=tmp_path)
    assert result.returncode == 0, result.stderr
    record = model_records(tmp_path / "r", "minilm")["rsitmd-t2t"]
    assert record["corpus"] == {"name": "human captions (oracle)", "oracle": True, "describers": ["human"]}
    # MiniLM, max aggregation, query caption left out: about 93 (a leak would push R@1 to 100)
    assert 90 < record["scores"]["mean_recall"] < 96 and record["scores"]["t2i_r1"] < 95
    report = geovec("bench", "report", str(tmp_path / "r"), home=tmp_path)
    assert "| rsitmd-t2t (oracle: human captions) | cross-modal-retrieval |" in report.stdout
    assert "| RSITMD | TRSLLaVA (published) | 42.62 | reference |" in report.stdout
    assert ("| RSITMD | ours: rsitmd-t2t, minilm, corpus human captions (oracle) (human), max aggregation |"
            in report.stdout)
    assert "| no: oracle (human captions) |" in report.stdout


def test_generated_corpus_for_text_to_text_tasks(tmp_path):
    fixtures = Path(__file__).parents[1] / "data"
    names = sorted(set((fixtures / "rs_caption_splits" / "rsitmd" / "test_filename.txt").read_text().split()))
    train = sorted(set((fixtures / "rs_caption_splits" / "rsitmd" / "train_filename.txt").read_text().split()))
    corpus = tmp_path / "corpus.jsonl"  # the whole image folder described: train images are left out of the test
    corpus.write_text("".join(json.dumps({"image_id": n, "kind": "summary", "text": f"an aerial view of {n[:-4]}",
                                          "model": "tiny-vlm", "prompt_version": "rsrt-1"}) + "\n"
                              for n in names + train))
    args = ("bench", "run", "--model", "minilm", "--data", str(fixtures), "--output", str(tmp_path / "r"))
    result = geovec(*args, "--tasks", "rsitmd-t2t", "--corpus", str(corpus), home=tmp_path)
    assert result.returncode == 0, result.stderr
    record = model_records(tmp_path / "r", "minilm")["rsitmd-t2t"]
    assert record["corpus"] == {"name": str(corpus), "oracle": False, "describers": ["tiny-vlm rsrt-1"]}
    assert record["counts"]["descriptions"] == len(names)
    corpus.write_text(json.dumps({"image_id": "nowhere_1.tif", "kind": "summary", "text": "x"}) + "\n")
    result = geovec(*args, "--tasks", "rsitmd-t2t", "--corpus", str(corpus), home=tmp_path)
    assert result.returncode == 2 and "nowhere_1.tif" in result.stderr and "Traceback" not in result.stderr
    result = geovec(*args, "--tasks", "rsicd-scene", "--corpus", str(corpus), home=tmp_path)
    assert result.returncode == 2 and "--corpus applies to text-to-text (t2t) tasks only" in result.stderr
