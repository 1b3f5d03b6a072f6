"""The CLIP embedder on a tiny randomly initialised CLIP checkpoint built here (real forward passes, no network)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPModel, CLIPTokenizer

from geovec.errors import GeovecError, UnsupportedInputError
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment
from geovec.models import get_spec, l2_normalize, load_model

DIM = 16
@pytest.fixture(scope="session")
def clip(tiny_clip_checkpoint: Path):
    return load_model("clip", path=tiny_clip_checkpoint)


@pytest.fixture(scope="session")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("images") / "scene.png"
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)  # 64 wide, 48 high
    return path


def _unit(vectors: np.ndarray) -> None:
    assert vectors.dtype == np.float32 and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, atol=1e-5)


def test_spec_and_dimension(clip) -> None:
    spec = get_spec("clip")
    assert spec.needs_path and spec.modalities == {"text", "image", "box", "point"}
    assert clip.name == "clip" and clip.dim == DIM


def test_every_modality_gives_unit_vectors(clip, image_file: Path) -> None:
    image = ImageSegment(image_file)
    inputs = ["the harbour and the sea", image, ImageSegment(Image.open(image_file)),
              ImageSegment(np.asarray(Image.open(image_file))),
              Interleaved((image, BoxSegment((8, 8, 40, 32), "pixel"))),
              Interleaved((image, TextSegment("make it snowy"))), PointSegment(52.37, 4.89)]
    vectors = clip.encode(inputs)
    assert vectors.shape == (len(inputs), DIM)
    _unit(vectors)
    np.testing.assert_allclose(vectors[1], vectors[2], atol=1e-6)  # path, PIL and numpy: same pixels, same vector
    np.testing.assert_allclose(vectors[1], vectors[3], atol=1e-6)


def test_box_embeds_the_crop_instead_of_the_image(clip, image_file: Path) -> None:
    image = ImageSegment(image_file)
    crop = Image.open(image_file).convert("RGB").crop((16, 12, 48, 24))
    boxed = clip.encode(Interleaved((image, BoxSegment((16, 12, 48, 24), "pixel"))))
    normalised = clip.encode(Interleaved((image, BoxSegment((0.25, 0.25, 0.75, 0.5), "normalized"))))
    direct = clip.encode([ImageSegment(crop)])[0]
    np.testing.assert_allclose(boxed, direct, atol=1e-5)
    np.testing.assert_allclose(normalised, direct, atol=1e-5)
    other = clip.encode(Interleaved((image, BoxSegment((0, 0, 20, 20), "pixel"))))
    assert not np.allclose(boxed, other, atol=1e-3)
    assert not np.allclose(boxed, clip.encode([image])[0], atol=1e-3)


def test_box_replaces_only_its_own_image(clip, image_file: Path) -> None:
    first, second = ImageSegment(image_file), ImageSegment(np.full((40, 40, 3), 90, dtype=np.uint8))
    fused = clip.encode(Interleaved((first, second, BoxSegment((0, 0, 32, 32), "pixel", image=0))))
    crop = ImageSegment(Image.open(image_file).convert("RGB").crop((0, 0, 32, 32)))
    parts = clip.encode([crop, second])
    np.testing.assert_allclose(fused, l2_normalize(parts.mean(axis=0)), atol=1e-5)


def test_image_text_fusion_is_normalised_sum(clip, image_file: Path) -> None:
    image, text = ImageSegment(image_file), TextSegment("and the harbour in winter")
    fused = clip.encode(Interleaved((image, text)))
    separate = clip.encode([Interleaved((image,)), Interleaved((text,))])
    np.testing.assert_allclose(fused, l2_normalize(separate.sum(axis=0)), atol=1e-5)


def test_point_is_a_caption_and_instruction_is_ignored(clip) -> None:
    point = clip.encode(Interleaved((PointSegment(52.37, 4.89),)))
    caption = clip.encode("a satellite image at latitude 52.3700, longitude 4.8900")
    np.testing.assert_allclose(point, caption, atol=1e-6)
    plain, instructed = clip.encode(["the harbour"]), clip.encode(["the harbour"], instruction="Find the scene")
    np.testing.assert_allclose(plain, instructed, atol=1e-6)


def test_batch_invariance(clip, image_file: Path) -> None:
    image = ImageSegment(image_file)
    inputs = [Interleaved((TextSegment("a very long description of the harbour and the boats " * 3),)),
              Interleaved((image,)), Interleaved((image, BoxSegment((8, 8, 40, 32), "pixel"))),
              Interleaved((image, TextSegment("the sea"))), Interleaved((PointSegment(-33.9, 151.2),)),
              Interleaved((TextSegment("or"),))]
    together = clip.encode(inputs, batch_size=len(inputs), truncate=True)  # the long text is cut at 77 tokens
    for position, item in enumerate(inputs):
        np.testing.assert_allclose(clip.encode([item], truncate=True)[0], together[position], atol=1e-5)


def test_text_tower_matches_direct_forward_pass(clip, tiny_clip_checkpoint: Path) -> None:
    texts = ["the harbour", "boats and the sea at dusk"]
    model = CLIPModel.from_pretrained(tiny_clip_checkpoint).eval()
    tokens = CLIPTokenizer.from_pretrained(tiny_clip_checkpoint)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model.get_text_features(**tokens).numpy()
    np.testing.assert_allclose(clip.encode(texts), l2_normalize(expected), atol=1e-5)


def test_missing_folder_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(GeovecError, match="--model-path"):
        load_model("clip")
    missing = tmp_path / "nowhere"
    with pytest.raises(GeovecError, match=str(missing)):
        load_model("clip", path=missing)


@pytest.mark.parametrize("problem, expected", [
    ("empty", "missing config.json"), ("bert", "model_type 'bert'"),
    ("no_tokenizer", "missing tokenizer files"), ("no_processor", "missing preprocessor_config.json")])
def test_non_clip_folder_is_refused(tiny_clip_checkpoint: Path, tmp_path: Path, problem: str, expected: str) -> None:
    folder = tmp_path / "ckpt"
    if problem == "empty":
        folder.mkdir()
    elif problem == "bert":
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    else:
        dropped = ("vocab.json", "merges.txt", "tokenizer.json") if problem == "no_tokenizer" else (
            "preprocessor_config.json",)
        shutil.copytree(tiny_clip_checkpoint, folder, ignore=shutil.ignore_patterns(*dropped))
    with pytest.raises(GeovecError, match=expected) as caught:
        load_model("clip", path=folder)
    assert str(folder) in str(caught.value)


def test_box_without_image_is_refused(clip) -> None:
    box = BoxSegment((0.1, 0.1, 0.5, 0.5), "normalized")
    for item in (Interleaved((box,)), Interleaved((TextSegment("the harbour"), box))):
        with pytest.raises(UnsupportedInputError, match="no image"):
            clip.encode([item])
