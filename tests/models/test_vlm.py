"""VLM2GeoVec on a tiny randomly initialised Qwen2-VL built here (real architecture, real forward passes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    Qwen2Tokenizer,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
)
from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

from geovec.errors import GeovecError, GeovecInputError
from geovec.inputs import (
    BoxSegment,
    ImageSegment,
    Interleaved,
    PointSegment,
    TextSegment,
)
from geovec.models.registry import get_spec, load_model
from geovec.models.trainable import load_encoder
from geovec.models.vlm import VLMEncoder

DIM = 32
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
MERGES = ["Ġ t", "t h", "e r", "a n", "o r", "Ġ a"]
BUDGET = dict(min_pixels=14 * 14 * 4, max_pixels=56 * 56)  # patch 7 x merge 2: images become 14-pixel multiples


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Qwen2-VL checkpoint folder as the hub ships it (with LM head), tokenizer with Qwen2-VL's special tokens."""
    root = tmp_path_factory.mktemp("tiny_qwen2vl")
    tokens = list(bytes_to_unicode().values()) + ["".join(m.split()) for m in MERGES]
    (root / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(dict.fromkeys(tokens))}))
    (root / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    tokenizer = Qwen2Tokenizer(str(root / "vocab.json"), str(root / "merges.txt"))
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL, "eos_token": "<|im_end|>"})
    ids = tokenizer.convert_tokens_to_ids(SPECIAL)
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=DIM, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         rope_scaling={"type": "mrope", "mrope_section": [2, 1, 1]}),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=DIM, num_heads=4, mlp_ratio=2, patch_size=7,
                           spatial_merge_size=2, temporal_patch_size=2),
        vision_start_token_id=ids[2], vision_end_token_id=ids[3], image_token_id=ids[4], video_token_id=ids[5])
    torch.manual_seed(0)
    folder = root / "model"
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    Qwen2VLImageProcessor(patch_size=7, merge_size=2, temporal_patch_size=2).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def encoder(base: Path) -> VLMEncoder:
    return VLMEncoder.from_pretrained(base, device="cpu", **BUDGET).eval()


def _image(width: int, height: int, seed: int) -> ImageSegment:
    rng = np.random.default_rng(seed)
    return ImageSegment(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


SCENE = _image(56, 56, 0)
MIXED = [
    Interleaved((TextSegment("the harbour and the sea"),)),
    Interleaved((SCENE,)),
    Interleaved((SCENE, BoxSegment((7, 14, 42, 49), "pixel"))),
    Interleaved((_image(70, 42, 1), PointSegment(52.37, 4.89))),
    Interleaved((SCENE, TextSegment("what is in the corner?")), instruction="Represent the image with the question:"),
]


def _embed(encoder: VLMEncoder, items: list[Interleaved]) -> np.ndarray:
    with torch.inference_mode():
        return encoder.embed(items).numpy()


def test_mixed_inputs_give_unit_vectors(encoder: VLMEncoder) -> None:
    vectors = _embed(encoder, MIXED)
    assert vectors.shape == (len(MIXED), DIM) and encoder.dim == DIM
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in vectors}) == len(MIXED)


def test_prompt_ends_with_end_of_turn_and_renders_boxes(encoder: VLMEncoder) -> None:
    batch = encoder.prepare(MIXED[2:3])
    text = encoder.adapter.tokenizer.decode(batch["input_ids"][0])
    assert text.endswith(" <box>(125,250),(750,875)</box><|im_end|>")
    assert text.count("<|image_pad|>") == 16  # 56x56 -> 8x8 patches -> 4x4 after the 2x2 merge


def test_same_vector_in_any_batch_and_padding(encoder: VLMEncoder, base: Path) -> None:
    alone = _embed(encoder, MIXED[2:3])[0]
    text_alone = _embed(encoder, MIXED[:1])[0]
    mixed = _embed(encoder, MIXED[::-1])
    np.testing.assert_allclose(mixed[2], alone, atol=1e-5)
    np.testing.assert_allclose(mixed[4], text_alone, atol=1e-5)
    left = VLMEncoder.from_pretrained(base, device="cpu", padding_side="left", **BUDGET).eval()
    assert (left.prepare(MIXED)["attention_mask"][:, 0] == 0).any()  # some rows really are left-padded
    np.testing.assert_allclose(_embed(left, MIXED), _embed(encoder, MIXED), atol=1e-5)


def test_instruction_changes_the_vector(encoder: VLMEncoder) -> None:
    plain, instructed = _embed(encoder, [MIXED[1], Interleaved(MIXED[1].segments, "Represent the scene:")])
    assert np.abs(plain - instructed).max() > 1e-3
    assert encoder.instruction("region", "candidate").startswith("Represent")


def test_save_and_reload_gives_identical_vectors(encoder: VLMEncoder, tmp_path: Path) -> None:
    encoder.save(tmp_path / "enc")
    config = json.loads((tmp_path / "enc" / "geovec_encoder.json").read_text())
    assert config["architecture"] == "vlm2geovec" and config["lora"] is None and config["max_pixels"] == 56 * 56
    reloaded = load_encoder(tmp_path / "enc", device="cpu")
    np.testing.assert_allclose(_embed(reloaded, MIXED), _embed(encoder, MIXED), atol=1e-6)


def test_lora_adapter_round_trip(base: Path, encoder: VLMEncoder, tmp_path: Path) -> None:
    tuned = VLMEncoder.from_pretrained(base, device="cpu", **BUDGET).add_lora(r=4, alpha=8, dropout=0.0).eval()
    np.testing.assert_allclose(_embed(tuned, MIXED), _embed(encoder, MIXED), atol=1e-6)  # B=0: no change yet
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    vectors = _embed(tuned, MIXED)
    assert np.abs(vectors - _embed(encoder, MIXED)).max() > 1e-3
    tuned.save(tmp_path / "lora-enc")
    assert not (tmp_path / "lora-enc" / "model.safetensors").exists()  # adapter only, base referenced
    reloaded = load_encoder(tmp_path / "lora-enc", device="cpu")
    assert reloaded.has_lora
    np.testing.assert_allclose(_embed(reloaded, MIXED), vectors, atol=1e-6)
    merged = VLMEncoder.from_pretrained(base, lora=tmp_path / "lora-enc" / "lora", merge_lora=True, device="cpu",
                                        **BUDGET).eval()
    assert not merged.has_lora
    np.testing.assert_allclose(_embed(merged, MIXED), vectors, atol=1e-5)


def test_registry_model_encodes_to_numpy(encoder: VLMEncoder, tmp_path: Path) -> None:
    assert get_spec("vlm2geovec").needs_path
    with pytest.raises(GeovecError, match="local checkpoint"):
        load_model("vlm2geovec")
    model = load_model("vlm2geovec", encoder.save(tmp_path / "enc"), device="cpu")
    vectors = model.encode(MIXED + ["a bridge over a river"], batch_size=2)
    assert isinstance(vectors, np.ndarray) and vectors.shape == (len(MIXED) + 1, DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[:len(MIXED)], _embed(encoder, MIXED), atol=1e-5)


def test_bad_inputs_are_refused_clearly(base: Path, encoder: VLMEncoder, tmp_path: Path) -> None:
    strict = VLMEncoder.from_pretrained(base, device="cpu", resize=False, **BUDGET)
    with pytest.raises(GeovecInputError, match=r"inputs\[1\]\.segments\[0\]: image <in-memory 64x64 image> has "
                                               r"64x64 = 4096 pixels, over this encoder's limit of 3136"):
        strict.prepare([MIXED[0], Interleaved((_image(64, 64, 2),))])
    assert encoder.prepare([Interleaved((_image(64, 64, 2),))])["image_grid_thw"].prod() <= 3136 // 49  # resized
    with pytest.raises(GeovecInputError, match=r"inputs\[0\]\.segments\[0\]\.text: contains the backbone's control"):
        encoder.prepare([Interleaved((TextSegment("fake <|image_pad|> slot"),))])
    with pytest.raises(GeovecInputError, match="pixel box needs an image"):
        Interleaved((TextSegment("a"), BoxSegment((1, 2, 3, 4), "pixel")))
    with pytest.raises(GeovecInputError, match="encoder option max_pixel: unknown; known options: pooling"):
        VLMEncoder.from_pretrained(base, max_pixel=100)
    with pytest.raises(GeovecInputError, match="encoder option pooling"):
        VLMEncoder.from_pretrained(base, pooling="cls")
    with pytest.raises(GeovecInputError, match="encoder option min_pixels: must be a positive integer no larger"):
        VLMEncoder.from_pretrained(base, min_pixels=10**9)
    with pytest.raises(GeovecInputError, match=r"model_options\.base: give the base"):
        VLMEncoder.initial()
    with pytest.raises(GeovecInputError, match=r"segments\[0\]: image <in-memory 402x2 image> aspect ratio"):
        encoder.prepare([Interleaved((_image(402, 2, 3),))])


def test_bad_checkpoints_are_refused_clearly(base: Path, tmp_path: Path) -> None:
    with pytest.raises(GeovecError, match="folder does not exist"):
        VLMEncoder.from_pretrained(tmp_path / "nowhere")
    other = Path(shutil.copytree(base, tmp_path / "llava"))
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "llava"}))
    with pytest.raises(GeovecError, match=r"unsupported vision-language backbone 'llava'.*supported: qwen2_5_vl, "
                                          r"qwen2_vl"):
        VLMEncoder.from_pretrained(other)
    (other / "model.safetensors").unlink()
    with pytest.raises(GeovecError, match="has no weights: expected one of model.safetensors"):
        VLMEncoder.from_pretrained(other)
    (other / "config.json").unlink()
    with pytest.raises(GeovecError, match="missing config.json"):
        VLMEncoder.from_pretrained(other)


def test_lora_save_refuses_a_changed_base(base: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(base, tmp_path / "base"))
    VLMEncoder.from_pretrained(copy, device="cpu", **BUDGET).add_lora(r=2).save(tmp_path / "enc")
    (copy / "extra.json").write_text("{}")
    with pytest.raises(GeovecError, match="changed since the adapter was saved"):
        load_encoder(tmp_path / "enc")


def test_gradients_flow(base: Path) -> None:
    full = VLMEncoder.from_pretrained(base, device="cpu", **BUDGET).train()
    full.gradient_checkpointing_enable()
    full.embed(MIXED).sum().backward()
    grads = {name: p.grad for name, p in full.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["backbone.visual.patch_embed.proj.weight"].abs().sum() > 0
    lora = VLMEncoder.from_pretrained(base, device="cpu", **BUDGET).add_lora(r=2).train()
    lora.embed(MIXED).sum().backward()
    trainable = [(n, p) for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and p.grad is not None and torch.isfinite(p.grad).all() for n, p in trainable)
