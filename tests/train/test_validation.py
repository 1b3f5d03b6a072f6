"""Validation held out of the training split, scored while training, and the best checkpoint kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_helpers import rsicd_pairs, write_recipe

from geovec.config import data_dir
from geovec.errors import GeovecError, GeovecInputError
from geovec.inputs import image_crops, image_files
from geovec.models.mini import GeovecMini
from geovec.models.trainable import load_encoder
from geovec.train.config import load_config
from geovec.train.data import build_training_data
from geovec.train.examples import read_examples
from geovec.train.trainer import train
from geovec.train.validation import HeldOutValidator

REAL = data_dir()


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    if not (REAL / "rsicd" / "images").is_dir():
        pytest.skip(f"RSICD images not found under {REAL}")
    output = tmp_path_factory.mktemp("data")
    build_training_data(["rsicd-captions"], output, REAL, limit=60, validation_images=12, show_progress=False)
    return output


def test_validation_images_are_held_out_with_all_their_captions(held_out, tmp_path):
    records = [json.loads(line) for line in (held_out / "validation.jsonl").read_text().splitlines()]
    manifest = json.loads((held_out / "manifest.json").read_text())
    assert len(records) == manifest["validation_images"] == 12
    assert all(len(r["texts"]) == 5 and r["task"] == "rsicd-retrieval" for r in records)
    held = {f"RSICD:{r['id']}" for r in records}
    examples = list(read_examples(held_out / "train.jsonl"))
    assert len(examples) == 48 * 6  # the other 48 images: one image -> caption + five caption -> image each
    assert not any(held & set(e.source_ids) for e in examples)  # not even as hard negatives
    # seeded: the same images again
    again = build_training_data(["rsicd-captions"], tmp_path, REAL, limit=60, validation_images=12,
                                show_progress=False)
    assert again["validation_images"] == 12
    assert (tmp_path / "validation.jsonl").read_bytes() == (held_out / "validation.jsonl").read_bytes()
    with pytest.raises(GeovecError, match="--validation-images: 60 would leave no training image of the 60"):
        build_training_data(["rsicd-captions"], tmp_path / "all", REAL, limit=60, validation_images=60,
                            show_progress=False)


def test_training_scores_validation_and_keeps_the_best_encoder(held_out, tmp_path):
    recipe = write_recipe(tmp_path, held_out / "train.jsonl", max_steps=4, validate_every=2, save_every=2,
                          validation_file=str(held_out / "validation.jsonl"), lr=2e-4,
                          model_options={"num_layers": 1, "vision": "efficientnet-lite0", "image_size": 64,
                                         "trainable_blocks": 1},
                          feature_cache=str(tmp_path / "features"), lr_multipliers={"^vision\\.head\\.": 20.0})
    out = train(load_config(recipe, output_dir=tmp_path / "out"), show_progress=False)
    log = [json.loads(line) for line in (out.parent / "train_log.jsonl").read_text().splitlines()]
    curve = {row["step"]: row["validation"] for row in log if "validation" in row}
    assert sorted(curve) == [2, 4]
    assert all(0 <= v["mean_recall"] <= 100 and {"i2t_r1", "t2i_r10"} <= set(v) for v in curve.values())
    best_step = max(curve, key=lambda s: (curve[s]["mean_recall"], -s))
    state = json.loads((out.parent / "checkpoints" / "step-4" / "trainer_state.json").read_text())
    assert state["best"]["step"] == best_step
    # the kept encoder scores what the log says it scored
    validator = HeldOutValidator(held_out / "validation.jsonl")
    rescored = validator.evaluate(load_encoder(out.parent / "best"))
    assert rescored["mean_recall"] == pytest.approx(curve[best_step]["mean_recall"], abs=0.01)
    # every training and validation image went through the feature cache
    index = json.loads((tmp_path / "features" / "index.json").read_text())
    assert sum(map(len, index["parts"])) == 60


def test_a_feature_cache_for_an_encoder_without_one_is_a_clear_error(held_out, tmp_path):
    recipe = write_recipe(tmp_path, held_out / "train.jsonl", feature_cache=str(tmp_path / "features"))
    with pytest.raises(GeovecInputError, match="config.feature_cache: .*patch-stem tower has no frozen trunk"):
        train(load_config(recipe, output_dir=tmp_path / "out"), show_progress=False)
    torch.set_grad_enabled(True)


class CaptionSimilarity:
    """A custom evaluator: how close held-out RSICD images lie to their own captions (mean cosine)."""

    metric = "positive_similarity"

    def __init__(self, examples) -> None:
        self.examples = examples
        self.calls = 0

    def inputs(self) -> list:
        return []

    def evaluate(self, encoder) -> dict[str, float]:
        self.calls += 1
        was_training = encoder.training
        encoder.eval()
        try:
            with torch.inference_mode():
                images = encoder.embed([e.query for e in self.examples])
                captions = encoder.embed([e.positive for e in self.examples])
        finally:
            encoder.train(was_training)
        similarity = (images @ captions.T).float()
        return {"positive_similarity": similarity.diagonal().mean().item(),
                "top1": (similarity.argmax(dim=1) == torch.arange(len(self.examples))).float().mean().item()}


def test_a_custom_evaluator_is_called_every_n_steps_and_picks_the_best_encoder(tmp_path, pairs_file):
    evaluator = CaptionSimilarity(rsicd_pairs(8, skip=8))  # other scenes than the training pairs
    recipe = write_recipe(tmp_path, pairs_file, max_steps=5, validate_every=2, save_every=5, lr=2e-4)
    out = train(load_config(recipe, output_dir=tmp_path / "out"), show_progress=False, evaluator=evaluator)
    log = [json.loads(line) for line in (out.parent / "train_log.jsonl").read_text().splitlines()]
    curve = {row["step"]: row["validation"] for row in log if "validation" in row}
    assert sorted(curve) == [2, 4, 5] and evaluator.calls == 3  # every 2 steps and at the end
    assert all(set(scores) == {"positive_similarity", "top1"} for scores in curve.values())
    best_step = max(curve, key=lambda s: (curve[s]["positive_similarity"], -s))
    best = json.loads((out.parent / "checkpoints" / "step-5" / "trainer_state.json").read_text())["best"]
    assert best["step"] == best_step
    # OUT/best holds the encoder of that step: it scores what the log says
    rescored = evaluator.evaluate(load_encoder(out.parent / "best"))
    assert rescored["positive_similarity"] == pytest.approx(best["positive_similarity"], abs=1e-4)
    assert rescored["positive_similarity"] == pytest.approx(curve[best_step]["positive_similarity"], abs=1e-3)


class NoMetric(CaptionSimilarity):
    metric = "mean_recall"


def test_an_evaluator_without_its_metric_is_a_clear_error(tmp_path, pairs_file):
    recipe = write_recipe(tmp_path, pairs_file, max_steps=1)
    with pytest.raises(GeovecError, match="evaluator NoMetric returned no 'mean_recall' score .*positive_similarity"):
        train(load_config(recipe, output_dir=tmp_path / "out"), show_progress=False,
              evaluator=NoMetric(rsicd_pairs(2, skip=8)))


@pytest.fixture(scope="module")
def regions_and_places(tmp_path_factory) -> Path:
    """A small build of whole images, mosaics and places with its validation split (real RSICD, packaged cities)."""
    if not (REAL / "rsicd" / "images").is_dir():
        pytest.skip(f"RSICD images not found under {REAL}")
    output = tmp_path_factory.mktemp("mix")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GEOVEC_HOME", str(tmp_path_factory.mktemp("home")))  # where the mosaic scenes are written
        build_training_data(["rsicd-captions", "rsicd-mosaic-regions", "gazetteer-places"], output, REAL,
                            limit=60, validation_images=8, hard_negatives=2, show_progress=False)
    return output


RANKED_TASKS = ("rsicd-mosaic-region-caption", "rsicd-mosaic-refexp", "gazetteer-place-to-point",
                "gazetteer-place-to-point-within-country")


def test_region_and_place_validation_is_p_at_1_chosen_on_together_with_whole_images(regions_and_places, tmp_path):
    validation = regions_and_places / "validation.jsonl"
    manifest = json.loads((regions_and_places / "manifest.json").read_text())
    assert manifest["validation_images"] == 8 and set(manifest["validation_queries"]) == set(RANKED_TASKS)
    validator = HeldOutValidator(validation)
    assert validator.metric == "validation_score"
    encoder = GeovecMini.initial(num_layers=1, vision="efficientnet-lite0", image_size=64, trainable_blocks=1,
                                 point_tower="geoclip")
    scores = validator.evaluate(encoder)
    ranked = [scores[f"{task}/precision_at_1"] for task in RANKED_TASKS]
    assert all(0 <= s <= 100 for s in ranked) and 0 <= scores["mean_recall"] <= 100
    assert scores["validation_score"] == pytest.approx((scores["mean_recall"] + sum(ranked)) / 5)
    # a task whose every query stands among its candidates, at a wrong answer's place, scores 0; at the right one 100
    records = [json.loads(line) for line in validation.read_text().splitlines()]
    for answer, expected in ((lambda r: r["positives"][0], 100.0), (lambda r: next(
            k for k in range(len(r["candidates"])) if k not in r["positives"]), 0.0)):
        planted = tmp_path / f"planted-{expected:g}.jsonl"
        lines = []
        for r in records:
            if r["task"] == "rsicd-mosaic-refexp":
                r = {**r, "candidates": list(r["candidates"])}
                r["candidates"][answer(r)] = r["query"]
            lines.append(json.dumps(r) + "\n")
        planted.write_text("".join(lines))
        assert HeldOutValidator(planted).evaluate(encoder)["rsicd-mosaic-refexp/precision_at_1"] == expected
    # the feature cache covers what validation embeds: its scene files and every box crop
    inputs = validator.inputs()
    assert image_crops(inputs) and {p for p, _ in image_crops(inputs)} <= set(image_files(inputs))


def test_a_bad_ranked_validation_record_is_named(tmp_path):
    bad = tmp_path / "validation.jsonl"
    bad.write_text(json.dumps({"task": "gazetteer-place-to-point", "query": {"segments": [{"type": "text",
                   "text": "Oslo, Norway"}]}, "candidates": [{"segments": [{"type": "point", "lat": 59.9,
                   "lon": 10.7}]}], "positives": [3]}) + "\n")
    with pytest.raises(GeovecInputError, match=r"validation.jsonl:1.*positives \[3\] not among 1 candidates"):
        HeldOutValidator(bad)
