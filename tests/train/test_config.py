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


@pytest.mark.parametrize("data, overrides, message", [
    ({"lr": float("inf")}, [], r"config.lr: must be a finite number, got inf"),
    ({}, ["lr=.inf"], r"config.lr: must be a finite number, got inf"),
    ({"lr": "1e999"}, [], r"config.lr: must be a finite number, got inf"),  # overflows to inf when read
    ({"temperature": float("inf")}, [], r"config.temperature: must be a finite number"),
    ({"weight_decay": float("nan")}, [], r"config.weight_decay: must be a finite number, got nan"),
    ({"max_grad_norm": float("inf")}, [], r"config.max_grad_norm: must be a finite number"),
    ({"lr_multipliers": {"^vision": float("inf")}}, [], r"config.lr_multipliers.\^vision: must be a finite"),
    ({"task_weights": {"rsicd-caption": float("inf")}}, [], r"config.task_weights.rsicd-caption: must be a finite"),
    ({"lora": {"dropout": float("nan")}}, [], r"config.lora.dropout: must be a finite number"),
    ({"model_options": {"num_layers": float("nan")}}, [], r"config.model_options.num_layers: must be a finite"),
    ({"freeze": ["^bert", "("]}, [], r"config.freeze\[1\]: invalid regular expression '\(': missing \)"),
    ({"lr_multipliers": {"[vision": 2}}, [], r"config.lr_multipliers.\[vision: invalid regular expression"),
    ({"lora": {"fully_trainable": ["*x"]}}, [], r"config.lora.fully_trainable\[0\]: invalid regular expression"),
    ({"seed": -1}, [], r"config.seed: must be between 0 and 2\*\*32 - 1, got -1"),
    ({"lora": {"target_modules": []}}, [], r"config.lora: needs .* at least one target module"),
    ({}, ["lr=[1"], r"--set lr: cannot parse value '\[1': YAML syntax error at line 1, column 3: expected ','"),
    ({}, ["lr=caf\udce9"], r"--set: not valid UTF-8 \(byte 0xe9 at character 6\)"),
])
def test_non_finite_numbers_bad_regexes_and_bad_overrides_are_named(tmp_path, data, overrides, message):
    with pytest.raises(GeovecInputError, match=message) as refused:
        load_config(_yaml(tmp_path, **data), overrides)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("content, message", [
    (b"train_files: [a.jsonl]\nlr: [1, 2\n", "YAML syntax error at line 3, column 1: expected ',' or ']', but got"),
    (b"train_files: [a.jsonl]\n\tlr: 1\n", "YAML syntax error at line 2, column 1: found character '\\t' that cannot"),
    (b"train_files: !!python/object:os.system [x]\n", "YAML syntax error at line 1, column 14: could not determine"),
    (b"train_files: [caf\xe9.jsonl]\n", "not valid UTF-8 (byte 0xe9 at offset 17): save it as UTF-8"),
    (b"\xff\xfe\x00binary", "not valid UTF-8 (byte 0xff at offset 0)"),
    (b"- a\n- b\n", "must hold a mapping of keys to values"),
])
def test_a_malformed_recipe_file_is_one_line_naming_the_file(tmp_path, content, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(content)
    with pytest.raises(GeovecInputError) as refused:
        load_config(recipe)
    assert str(refused.value) == f"recipe {recipe}: {message}" or str(refused.value).startswith(
        f"recipe {recipe}: {message}")
    assert "\n" not in str(refused.value)
    with pytest.raises(GeovecInputError, match=f"recipe {tmp_path}: is a folder"):
        load_config(tmp_path)


@pytest.mark.parametrize("recipe", sorted((Path(__file__).resolve().parents[2] / "recipes").rglob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_committed_recipe_is_a_valid_config(recipe):
    """Keys and values of the recipes README points to (their data and runs are built by the commands they quote)."""
    config = load_config(recipe)
    assert config.train_files and all(Path(f).is_absolute() for f in config.train_files)
