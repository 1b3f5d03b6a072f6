"""Shared fixtures: a tiny randomly initialised CLIP checkpoint (real architecture, real forward passes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer
from transformers.models.clip.tokenization_clip import bytes_to_unicode

TINY_CLIP_DIM = 16
MERGES = ["t h", "th e</w>", "a n", "an d</w>", "i n", "o r", "h a", "ha r", "b o", "u r</w>", "s e", "a t"]


def _write_tokenizer(folder: Path) -> CLIPTokenizer:
    """A byte-level BPE CLIP tokenizer with the full byte alphabet and a handful of merges."""
    alphabet = list(bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    raw = folder / "raw_tokenizer"
    raw.mkdir()
    (raw / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(dict.fromkeys(tokens))}), encoding="utf-8")
    (raw / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n", encoding="utf-8")
    return CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"))


def build_tiny_clip(root: Path) -> Path:
    """Write a tiny randomly initialised CLIP checkpoint (seeded) to ``root/model``; also used by benchmarks."""
    tokenizer = _write_tokenizer(root)
    folder = root / "model"
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, **special),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                           num_attention_heads=4),
        projection_dim=TINY_CLIP_DIM)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_clip_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


