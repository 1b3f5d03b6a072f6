"""``caption_images`` end to end with tiny random VLMs on real RSICD images: records, re-asks, resume, failures."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from geovec.caption import ALL_CHECKS, caption_images, failure_report_path, list_images, load_caption_model
from geovec.errors import GeovecError, GeovecInputError
from geovec.t2t import Description, read_corpus, write_corpus

KINDS = ["summary", "objects"]
FAST = dict(variants=2, max_new_tokens=8, show_progress=False)
LENIENT = ("empty",)  # random weights write gibberish: keep all but empty texts to see every record written


class Spy:
    """Wraps a real model's ``generate`` (the forward passes still run) to count calls, or crash after ``crash_at``."""

    def __init__(self, monkeypatch, model, crash_at=None):
        self.calls, self.crash_at, self.real = [], crash_at, model.generate
        monkeypatch.setattr(model, "generate", self)

    def __call__(self, images, prompts, max_new_tokens, sample=False, seed=0):
        if self.crash_at is not None and len(self.calls) == self.crash_at:
            raise KeyboardInterrupt("simulated kill")
        self.calls.append((len(images), sample))
        return self.real(images, prompts, max_new_tokens, sample=sample, seed=seed)


def _keys(corpus):
    return Counter((d.image_id, d.kind) for d in corpus)


def _failures(output):
    return json.loads(failure_report_path(output).read_text())["failures"]


IDS = ["airport_1.jpg", "beach_269.jpg", "industrial_322.jpg", "sub/00001.jpg"]  # see conftest.image_dir


@pytest.mark.parametrize("which", ["qwen_model", "llava_model"])
def test_end_to_end_writes_a_record_per_image_and_variant(which, request, image_dir, tmp_path):
    model = request.getfixturevalue(which)
    output = tmp_path / "out" / "corpus.jsonl"
    report = caption_images(image_dir, model, output, batch_size=3, checks=LENIENT, **FAST)
    corpus = read_corpus(output)
    assert _keys(corpus) == Counter({(i, k): 1 for i in IDS for k in KINDS})
    assert {(d.model, d.prompt_version) for d in corpus} == {(model.identity, "rsrt-v1")}
    assert report.total == report.generated == 8 and report.failures == [] == _failures(output)
    assert not output.with_name("corpus.jsonl.partial").exists()
    again = caption_images(image_dir, model, output, batch_size=3, checks=LENIENT, **FAST)  # nothing left to do
    assert again.generated == 0 and read_corpus(output) == corpus


def test_failed_variants_are_asked_again_with_sampling(qwen_model, image_dir, tmp_path, monkeypatch):
    spy = Spy(monkeypatch, qwen_model)
    output = tmp_path / "corpus.jsonl"
    report = caption_images(image_dir, qwen_model, output, batch_size=4, retries=2, limit=2, checks=ALL_CHECKS,
                            **FAST)
    assert spy.calls[0] == (4, False)  # 2 images x 2 variants, greedy, one call
    assert len(spy.calls) == 3 and all(sample for _, sample in spy.calls[1:])  # two re-asks, sampled
    assert [n for n, _ in spy.calls[1:]] == sorted((n for n, _ in spy.calls[1:]), reverse=True)  # only failures
    failures = _failures(output)
    assert failures and all(f["attempts"] == 3 and f["reason"] in ALL_CHECKS for f in failures)
    written = {(d.image_id, d.kind) for d in read_corpus(output)} if output.stat().st_size else set()
    assert len(written) + len(failures) == 4 and report.failures and len(report.failures) == len(failures)
    assert written.isdisjoint((f["image_id"], f["variant"]) for f in failures)


def test_resume_after_a_kill_gives_exactly_one_record_each(qwen_model, image_dir, tmp_path, monkeypatch):
    output = tmp_path / "corpus.jsonl"
    with monkeypatch.context() as patch:
        Spy(patch, qwen_model, crash_at=2)  # batch 1 = 2 images x 2 variants = 2 calls of 2; dies in batch 2
        with pytest.raises(KeyboardInterrupt):
            caption_images(image_dir, qwen_model, output, batch_size=2, checks=LENIENT, **FAST)
    assert not output.exists()
    journal = tmp_path / "corpus.jsonl.partial" / "journal.jsonl"
    assert [json.loads(line)["image_id"] for line in journal.read_text().splitlines()] == IDS[:2]
    with journal.open("a") as handle:  # and a kill in the middle of writing the next line
        handle.write('{"image_id": "beach_269.jpg", "descriptions": [{"image_id"')
    spy = Spy(monkeypatch, qwen_model)
    report = caption_images(image_dir, qwen_model, output, batch_size=2, checks=LENIENT, **FAST)
    assert len(spy.calls) == 2  # only the lost batch is generated again
    assert set(_keys(read_corpus(output)).values()) == {1} and report.total == 8


KILLED_RUN = """
import sys
from geovec.caption import caption_images, load_caption_model
caption_images(sys.argv[1], load_caption_model(sys.argv[2]), sys.argv[3], batch_size=1, checks=("empty",),
               variants=2, max_new_tokens=16, show_progress=False)
"""


def test_sigkill_mid_run_then_resume(qwen_checkpoint, qwen_model, image_dir, tmp_path):
    """A real process killed with SIGKILL as soon as its first batch is journaled; the rerun completes it."""
    output = tmp_path / "corpus.jsonl"
    journal = tmp_path / "corpus.jsonl.partial" / "journal.jsonl"
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(image_dir), str(qwen_checkpoint), str(output)],
                               env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and not (journal.is_file() and journal.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL and not output.exists()
    assert 1 <= journal.read_bytes().count(b"\n") < len(IDS)  # killed mid-run
    caption_images(image_dir, qwen_model, output, batch_size=1, checks=LENIENT, **FAST)
    assert _keys(read_corpus(output)) == Counter({(i, k): 1 for i in IDS for k in KINDS})


def test_more_images_and_variants_later_add_only_what_is_missing(qwen_model, image_dir, tmp_path):
    output = tmp_path / "corpus.jsonl"
    caption_images(image_dir, qwen_model, output, limit=1, checks=LENIENT, **{**FAST, "variants": 1})
    report = caption_images(image_dir, qwen_model, output, limit=2, checks=LENIENT, **FAST)
    assert report.generated == 3 and _keys(read_corpus(output)) == Counter(
        {(i, k): 1 for i in IDS[:2] for k in KINDS})


def test_unreadable_images_are_reported_and_the_rest_done(qwen_model, image_dir, tmp_path):
    (image_dir / "broken.jpg").write_bytes(b"not an image at all")
    (image_dir / "cut.jpg").write_bytes((image_dir / "airport_1.jpg").read_bytes()[:400])  # header, no pixels
    output = tmp_path / "corpus.jsonl"
    report = caption_images(image_dir, qwen_model, output, batch_size=3, checks=LENIENT, **FAST)
    failures = {f["image_id"]: f for f in _failures(output)}
    assert set(failures) == {"broken.jpg", "cut.jpg"} and len(report.failures) == 2
    assert all(f["variant"] == "*" and f["reason"].startswith("unreadable image") for f in failures.values())
    assert report.total == 8


def test_mixing_models_revisions_or_prompt_versions_is_refused(qwen_checkpoint, qwen_model, llava_model,
                                                               image_dir, tmp_path):
    output = tmp_path / "corpus.jsonl"
    options = dict(limit=1, checks=LENIENT, **FAST)
    caption_images(image_dir, qwen_model, output, **options)
    with pytest.raises(GeovecError, match=rf"holds descriptions by {qwen_model.identity}.*another --output"):
        caption_images(image_dir, llava_model, output, **options)
    copy = tmp_path / qwen_checkpoint.name  # same name, new revision: a changed config
    shutil.copytree(qwen_checkpoint, copy)
    (copy / "generation_config.json").write_text(json.dumps({"eos_token_id": qwen_model.model.config.eos_token_id,
                                                             "temperature": 0.5}))
    retrained = load_caption_model(copy)
    assert retrained.name == qwen_model.name and retrained.revision != qwen_model.revision
    with pytest.raises(GeovecError, match=f"uses {retrained.identity}"):
        caption_images(image_dir, retrained, output, **options)
    older = tmp_path / "older.jsonl"
    write_corpus(older, [Description("airport_1.jpg", "summary", "An airport.", qwen_model.identity, "rsrt-v0")])
    with pytest.raises(GeovecError, match="with prompts 'rsrt-v0'"):
        caption_images(image_dir, qwen_model, older, **options)


def test_an_unfinished_run_is_not_continued_by_another_model(qwen_model, llava_model, image_dir, tmp_path,
                                                             monkeypatch):
    output = tmp_path / "corpus.jsonl"
    with monkeypatch.context() as patch:
        Spy(patch, qwen_model, crash_at=0)
        with pytest.raises(KeyboardInterrupt):
            caption_images(image_dir, qwen_model, output, checks=LENIENT, **FAST)
    with pytest.raises(GeovecError, match="unfinished run by tiny-qwen2-vl"):
        caption_images(image_dir, llava_model, output, checks=LENIENT, **FAST)


def test_listing_images(image_dir, tmp_path):
    (image_dir / "notes.txt").write_text("not an image")
    assert [i for i, _ in list_images(image_dir)] == IDS
    listing = image_dir / "list.txt"
    listing.write_text("# chosen\nairport_1.jpg\n\nsub/00001.jpg\n")
    assert list_images(listing) == [("airport_1.jpg", image_dir / "airport_1.jpg"),
                                    ("sub/00001.jpg", image_dir / "sub/00001.jpg")]
    listing.write_text("airport_1.jpg\nairport_1.jpg\n")
    with pytest.raises(GeovecInputError, match="lists 'airport_1.jpg' twice"):
        list_images(listing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GeovecInputError, match="IMAGES: .*empty holds no"):
        list_images(tmp_path / "empty")
    with pytest.raises(GeovecInputError, match="neither a folder"):
        list_images(tmp_path / "missing")


def test_bad_options_are_refused(qwen_model, image_dir, tmp_path):
    with pytest.raises(GeovecInputError, match="batch_size: must be at least 1"):
        caption_images(image_dir, qwen_model, tmp_path / "c.jsonl", batch_size=0)
    with pytest.raises(GeovecInputError, match="unknown quality checks"):
        caption_images(image_dir, qwen_model, tmp_path / "c.jsonl", checks=("spelling",))
