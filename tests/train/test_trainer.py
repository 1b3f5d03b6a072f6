"""The contrastive trainer on real RSICD train pairs with a reduced geovec-mini (2 real MiniLM layers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from train_helpers import rsicd_pairs, write_recipe

from geovec.errors import GeovecError, GeovecInputError
from geovec.models import load_model
from geovec.models.trainable import load_encoder
from geovec.train.config import load_config
from geovec.train.trainer import train


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, pairs_file) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    config = load_config(write_recipe(folder, pairs_file, max_steps=16, lr=2e-4, save_every=100),
                         output_dir=folder / "out")
    return train(config, show_progress=False).parent


def test_loss_falls_and_in_batch_accuracy_rises(trained):
    log = _log(trained)
    assert [row["step"] for row in log] == list(range(1, 17))
    first, last = log[:3], log[-3:]
    assert np.mean([r["loss"] for r in last]) < 0.5 * np.mean([r["loss"] for r in first])
    assert np.mean([r["accuracy"] for r in last]) >= 0.9 > np.mean([r["accuracy"] for r in first])
    assert {"temperature", "lr", "examples_per_s", "steps_per_s", "epoch"} <= set(log[0])
    assert (trained / "config.yaml").is_file()
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == ["step-16"]
    # the trained encoder, loaded as a registry model, retrieves each training caption from its image
    examples = rsicd_pairs(8)
    model = load_model("geovec-mini", trained / "final")
    images = model.encode([e.query for e in examples])
    captions = model.encode([e.positive for e in examples])
    assert (np.argmax(images @ captions.T, axis=1) == np.arange(8)).mean() >= 0.875


def test_killed_run_resumes_to_the_same_next_step(tmp_path, pairs_file):
    recipe = write_recipe(tmp_path, pairs_file, max_steps=3, save_every=2, learnable_temperature=True)
    whole = tmp_path / "whole"
    train(load_config(recipe, output_dir=whole), show_progress=False)
    # What a run killed during step 3 leaves: checkpoint step-2, its config, a log that already has step 3.
    killed = tmp_path / "killed"
    (killed / "checkpoints").mkdir(parents=True)
    shutil.copytree(whole / "checkpoints" / "step-2", killed / "checkpoints" / "step-2")
    (killed / "checkpoints" / "step-4.tmp").mkdir()  # a half-written checkpoint is ignored
    for name in ("config.yaml", "train_log.jsonl"):
        shutil.copy(whole / name, killed / name)
    with pytest.raises(GeovecError, match="--resume"):
        train(load_config(recipe, output_dir=killed), show_progress=False)
    train(load_config(recipe, output_dir=killed), resume=True, show_progress=False)
    assert [r["step"] for r in _log(killed)] == [1, 2, 3]
    assert _log(killed)[2]["loss"] == _log(whole)[2]["loss"]
    assert _log(killed)[2]["temperature"] == _log(whole)[2]["temperature"] != 0.05
    a, b = load_file(whole / "final" / "model.safetensors"), load_file(killed / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(GeovecError, match="differs in lr"):
        train(load_config(recipe, ["lr=0.1"], output_dir=killed), resume=True, show_progress=False)


def test_saved_model_reloads_to_identical_embeddings(trained):
    examples = rsicd_pairs(3)
    items = [e.query for e in examples] + [e.positive for e in examples]
    first, second = load_encoder(trained / "final").eval(), load_encoder(trained / "final").eval()
    with torch.no_grad():
        direct = first.embed(items).numpy()
        assert np.array_equal(direct, second.embed(items).numpy())
    assert np.allclose(load_model("geovec-mini", trained / "final").encode(items), direct, atol=1e-6)


def test_lora_gradcache_freeze_and_checkpointing_together(tmp_path, pairs_file):
    recipe = write_recipe(tmp_path, pairs_file, max_steps=2, mini_batch_size=3, hard_negatives=1,
                          gradient_checkpointing=True, freeze=["^bert\\.embeddings\\."],
                          lora={"r": 4, "target_modules": ["query", "value"]})
    final = train(load_config(recipe, output_dir=tmp_path / "o"), show_progress=False)
    weights = load_file(final / "model.safetensors")
    assert not any("lora" in key for key in weights)  # adapters merged into the base weights
    start = load_encoder(final).state_dict()
    assert set(start) == set(weights)
    assert load_model("geovec-mini", final).encode("a bridge").shape == (384,)


def test_missing_data_file_and_bad_task_weight_are_named(tmp_path, pairs_file):
    missing = load_config(write_recipe(tmp_path, tmp_path / "nope.jsonl"), output_dir=tmp_path / "o")
    with pytest.raises(GeovecInputError, match=r"config.train_files\[0\]: no such file: .*nope.jsonl"):
        train(missing, show_progress=False)
    typo = load_config(write_recipe(tmp_path, pairs_file, task_weights={"rsicd-captoin": 1.0}), output_dir=tmp_path / "o")
    with pytest.raises(GeovecInputError, match="task_weights.rsicd-captoin: no examples of this task"):
        train(typo, show_progress=False)


def test_a_task_brings_its_own_count_of_hard_negatives(tmp_path, pairs_file):
    """``task_hard_negatives`` overrides ``hard_negatives`` for that task: its first loss is the loss without them."""
    def first_loss(name: str, **overrides: object) -> float:
        recipe = write_recipe(tmp_path / name, pairs_file, max_steps=1, **overrides)
        out = train(load_config(recipe, output_dir=tmp_path / name / "out"), show_progress=False)
        return _log(out.parent)[0]["loss"]

    without, with_one = first_loss("none", hard_negatives=0), first_loss("one", hard_negatives=1)
    overridden = first_loss("overridden", hard_negatives=1, task_hard_negatives={"rsicd-caption": 0})
    assert overridden == pytest.approx(without, abs=1e-6) and abs(with_one - without) > 1e-3
