"""Helpers for the training tests: small real training sets of RSICD train images with their own captions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from geovec.config import data_dir
from geovec.datasets.captions import read_caption_split
from geovec.inputs import ImageSegment, Interleaved, TextSegment
from geovec.train.examples import TrainingExample


def tiny_encoder(dropout: float = 0.1):
    """A tiny randomly initialised geovec-mini (real BERT + stem, seeded), small enough for loss tests."""
    import torch
    from transformers import AutoTokenizer, BertConfig

    from geovec.models.mini import GeovecMini, MiniSettings, minilm_path

    bert = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=37, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    torch.manual_seed(0)
    settings = MiniSettings(image_size=32, patch_size=16, stem_widths=(8, 16), bert=bert.to_dict())
    return GeovecMini(settings, AutoTokenizer.from_pretrained(str(minilm_path()), local_files_only=True))


# A reduced geovec-mini: the first 2 real MiniLM layers, 64 px images in 16 px patches (16 image tokens).
TINY_MINI = {"num_layers": 2, "image_size": 64, "patch_size": 16, "stem_widths": [16, 32]}


def batch_tokens(encoder, features) -> int:
    """How many token positions a batch (lists of items per side) has: the length of the sums that make every
    weight's gradient, the ``terms`` of a float32 tolerance on gradients."""
    return sum(encoder.prepare(side)["input_ids"].numel() for side in features)


def largest_gradient(gradients) -> float:
    """The largest gradient of all (a dict of tensors): a gradient that is zero in exact arithmetic (the attention
    key biases: softmax ignores a shift shared by all keys) is the rounding residue of terms about that large, so
    this, not its own size, scales its tolerance."""
    return max(float(g.abs().max()) for g in gradients.values())


def rsicd_pairs(count: int, skip: int = 0) -> list[TrainingExample]:
    """``count`` (image -> caption) examples from different RSICD train scenes, so each batch has one true match."""
    root = data_dir()
    if not (root / "rsicd" / "images").is_dir():
        pytest.skip(f"RSICD images not found under {root}")
    seen: dict[str, TrainingExample] = {}
    for item in read_caption_split(root / "rs_caption_splits", "rsicd", "train"):
        scene = item.scene
        if scene and scene not in seen:
            seen[scene] = TrainingExample(
                task="rsicd-caption",
                query=Interleaved((ImageSegment(root / "rsicd" / "images" / item.filename),),
                                  instruction="Find a caption describing this remote-sensing image"),
                positive=Interleaved((TextSegment(item.captions[0]),)),
                negatives=(Interleaved((TextSegment(item.captions[0].replace(" ", "  ") + " far away"),)),),
                source_ids=(item.filename,))
        if len(seen) == count + skip:
            break
    return list(seen.values())[skip:]



def write_recipe(folder: Path, examples: Path, **overrides: object) -> Path:
    """A tiny YAML recipe; ``train_files`` relative to the YAML's folder, as committed recipes write it."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"train_files": [str(Path(examples).resolve())], "model_options": TINY_MINI, "batch_size": 8,
              "max_steps": 3, "lr": 1e-4, "lr_multipliers": {"^vision\\.": 20.0}, "warmup_steps": 0,
              "log_every": 1, "save_every": 2, "keep_last": 2, **overrides}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
