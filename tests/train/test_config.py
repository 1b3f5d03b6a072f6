"""Training config: YAML + --set overrides, clear errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from geovec.errors import GeovecInputError
from geovec.train.config import TrainConfig, config_from_dict, load_config


def _yaml(folder: Path, **data: object) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump({"train_files": ["data/train/rsicd-train.jsonl"], **data}))
    return path


def test_paths_resolve_against_the_yaml_and_overrides_apply(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    recipe = _yaml(tmp_path / "recipes", lr="1e-4", task_weights={"rsicd-caption": 2})
    config = load_config(recipe, ["batch_size=64", "lora.r=16", "freeze=[^bert\\.embeddings\\.]", "init=ckpt",
                                  "symmetric=false"], output_dir="runs/x")
    assert config.train_files == [str(tmp_path / "recipes" / "data" / "train" / "rsicd-train.jsonl")]
    assert config.lr == 1e-4 and config.task_weights == {"rsicd-caption": 2.0} and config.batch_size == 64
    assert config.lora is not None and config.lora.r == 16 and config.lora.target_modules  # defaults filled in
    assert config.freeze == ["^bert\\.embeddings\\."] and config.symmetric is False
    assert config.init == str(tmp_path / "ckpt") and config.output_dir == str(tmp_path / "runs" / "x")
    assert config_from_dict(yaml.safe_load(config.to_yaml())) == config  # the saved copy reloads to the same


@pytest.mark.parametrize("data, overrides, message", [
    ({"learning_rate": 0.1}, [], r"config.learning_rate: unknown key; known keys: train_files, output_dir"),
    ({"lora": {"rank": 4}}, [], r"config.lora.rank: unknown key; known keys: r, alpha"),
    ({}, ["bacth_size=3"], r"config.bacth_size: unknown key"),
    ({"batch_size": "big"}, [], r"config.batch_size: expected int, got 'big'"),
    ({"max_steps": True}, [], r"config.max_steps: expected int, got True"),
    ({"mixed_precision": "fp8"}, [], r"config.mixed_precision: must be no, fp16 or bf16"),
    ({"freeze": "bert"}, [], r"config.freeze: expected a list"),
    ({}, ["lr"], r"--set: expected KEY=VALUE, got 'lr'"),
    ({"lr": -0.001}, [], r"config.lr: must be > 0, got -0.001"),
    ({}, ["weight_decay=-0.1"], r"config.weight_decay: must be >= 0, got -0.1"),
    ({"warmup_steps": -5}, [], r"config.warmup_steps: must be >= 0, got -5"),
    ({"lr_multipliers": {"^vision": 0}}, [], r"config.lr_multipliers: factors must be > 0"),
    ({"max_grad_norm": -1}, [], r"config.max_grad_norm: must be >= 0"),
    ({"lora": {"r": 0}}, [], r"config.lora: needs r >= 1"),
])
def test_bad_keys_and_values_are_named(tmp_path, data, overrides, message):
    with pytest.raises(GeovecInputError, match=message):
        load_config(_yaml(tmp_path, **data), overrides)


def test_missing_config_and_missing_required_key(tmp_path):
    with pytest.raises(GeovecInputError, match="recipe .*nope.yaml: no such file"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("batch_size: 8\n")
    with pytest.raises(GeovecInputError, match="config.train_files: is required"):
        load_config(tmp_path / "empty.yaml")
    assert TrainConfig(train_files=["a"]).architecture == "geovec-mini"
