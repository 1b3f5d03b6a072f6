"""`geovec train` end to end in a subprocess (python -m geovec.cli.train takes the same arguments)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from train_helpers import write_recipe

from geovec.models import load_model


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "geovec.cli.train", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_train_command_end_to_end(tmp_path, pairs_file):
    recipe = write_recipe(tmp_path / "recipes", pairs_file, max_steps=3)
    out = tmp_path / "run"
    done = _run(str(recipe), "--output", str(out), "--set", "max_steps=2", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "effective config" in done.stdout and "max_steps: 2" in done.stdout and "step 2/2 loss" in done.stdout
    assert f"trained encoder saved to {out / 'final'}" in done.stderr
    assert (out / "config.yaml").is_file() and (out / "checkpoints" / "step-2").is_dir()
    assert load_model("geovec-mini", out / "final").encode("a harbour").shape == (384,)


def test_bad_config_is_one_line_and_exit_code_2(tmp_path, pairs_file):
    recipe = write_recipe(tmp_path, pairs_file, learning_rate=0.1)
    failed = _run(str(recipe), "--output", str(tmp_path / "run"))
    assert failed.returncode == 2
    assert len(failed.stderr.strip().splitlines()) == 1
    assert failed.stderr.startswith("error: config.learning_rate: unknown key")
    negative = _run(str(write_recipe(tmp_path, pairs_file, lr=-0.001)), "--output", str(tmp_path / "run"))
    assert negative.returncode == 2 and negative.stderr.strip() == "error: config.lr: must be > 0, got -0.001"
    assert not (tmp_path / "run").exists()  # refused before anything ran or was written


def test_two_process_ddp_run_with_accelerate_launch(tmp_path, pairs_file):
    """The real multi-process path (DDP over gloo on CPU): negatives gathered across processes, one saved model."""
    recipe = write_recipe(tmp_path / "recipes", pairs_file, max_steps=2, learnable_temperature=True)
    out = tmp_path / "run"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines",
              "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "geovec.cli.train", str(recipe),
              "--output", str(out), "--quiet"]
    done = subprocess.run(launch, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("effective config") == 1 and "step 2/2 loss" in done.stdout  # printed by rank 0 only
    assert load_model("geovec-mini", out / "final").encode("a harbour").shape == (384,)


@pytest.mark.parametrize("overrides, message", [
    ({"lr": float("inf")}, "error: config.lr: must be a finite number, got inf"),  # trained an encoder of NaNs
    ({"temperature": float("inf")}, "error: config.temperature: must be a finite number, got inf"),
    ({"freeze": ["("]}, "error: config.freeze[0]: invalid regular expression '('"),
    ({"train_files": ["missing.jsonl"]}, "error: config.train_files[0]: no such file: "),
    ({"init": "no-such-encoder"}, "error: config.init: no such encoder folder: "),
    ({"validation_file": "missing-validation.jsonl"}, "error: config.validation_file: no such file: "),
    # found only once data and model are loaded: still before the output folder is made
    ({"lora": {"target_modules": ["qeury"]}}, "error: config.lora.target_modules: ['qeury'] match no module"),
    ({"task_weights": {"rsicd-captoin": 1}}, "error: config.task_weights.rsicd-captoin: no examples of this task"),
    ({"task_hard_negatives": {"rsicd-captoin": 0}},
     "error: config.task_hard_negatives.rsicd-captoin: no examples of this task"),
    ({"task_hard_negatives": {"rsicd-caption": -1}}, "error: config.task_hard_negatives: counts must be whole >= 0"),
    ({"freeze": ["."]}, "error: config.freeze: leaves no trainable parameter"),
    ({"model_options": {"num_layers": -3}}, "error: geovec-mini: num_layers must be a whole number >= 1, got -3"),
])
def test_an_invalid_recipe_trains_nothing_and_writes_nothing(tmp_path, pairs_file, overrides, message, capsys,
                                                              monkeypatch):
    """`geovec train` in this interpreter (the real entry point): one line, exit 2, no output folder made."""
    from geovec.cli.train import main

    recipe = write_recipe(tmp_path / "recipes", pairs_file, **overrides)
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["geovec-train", str(recipe), "--output", str(out), "--quiet"])
    with pytest.raises(SystemExit) as stopped:
        main()
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith(message) and err.count("\n") == 1, err
    assert not out.exists()


def test_an_output_that_is_a_file_is_refused_before_training(tmp_path, pairs_file):
    taken = tmp_path / "taken"
    taken.write_text("somebody's file\n")
    failed = _run(str(write_recipe(tmp_path, pairs_file)), "--output", str(taken))
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.strip() == f"error: config.output_dir: {taken} is a file, not a folder: choose another path"
    assert taken.read_text() == "somebody's file\n"


@pytest.mark.parametrize("saved, message", [
    (b"lr: [1\n", "YAML syntax error at line 2, column 1"),
    (b"lr: caf\xe9\n", "not valid UTF-8 (byte 0xe9 at offset 7)"),
])
def test_resume_with_a_damaged_saved_config_is_one_line(tmp_path, pairs_file, saved, message, capsys, monkeypatch):
    """The run folder of a crashed run whose config.yaml was damaged: --resume names that file, no traceback."""
    from geovec.cli.train import main

    out = tmp_path / "run"
    (out / "checkpoints" / "step-2").mkdir(parents=True)
    (out / "checkpoints" / "step-2" / "trainer_state.json").write_text('{"step": 2}')
    (out / "config.yaml").write_bytes(saved)
    monkeypatch.setattr(sys, "argv", ["geovec-train", str(write_recipe(tmp_path, pairs_file)), "--output", str(out),
                                      "--resume", "--quiet"])
    with pytest.raises(SystemExit) as stopped:
        main()
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: recipe {out / 'config.yaml'}: {message}")
    assert (out / "config.yaml").read_bytes() == saved  # left as it was, for the user to mend
