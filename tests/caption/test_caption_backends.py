"""Both VLM families load from a local folder and generate in batches; anything else is refused by name."""

import json

import pytest
from PIL import Image

from geovec.caption import FAMILIES, load_caption_model
from geovec.errors import GeovecError, GeovecInputError


def _images(image_dir, n=3):
    return [Image.open(p).convert("RGB") for p in sorted(image_dir.glob("*.jpg"))[:n]]


@pytest.mark.parametrize("which", ["qwen_model", "llava_model"])
def test_batched_generation_matches_one_by_one(which, request, image_dir):
    """Left padding: an image answered inside a batch gets the same greedy text as when asked alone."""
    model = request.getfixturevalue(which)
    images = _images(image_dir)
    prompts = ["Describe this image.", "List the objects in this image, please.", "Where?"]
    batched = model.generate(images, prompts, max_new_tokens=6)
    assert len(batched) == 3 and all(isinstance(g.text, str) for g in batched)
    alone = [model.generate([image], [prompt], max_new_tokens=6)[0] for image, prompt in zip(images, prompts)]
    assert [g.text for g in batched] == [g.text for g in alone]
    assert model.identity == f"{model.folder.name}@{model.revision}" and len(model.revision) == 12


def test_sampling_is_seeded(qwen_model, image_dir):
    images = _images(image_dir, 2)
    first = qwen_model.generate(images, ["Describe."] * 2, max_new_tokens=6, sample=True, seed=1)
    again = qwen_model.generate(images, ["Describe."] * 2, max_new_tokens=6, sample=True, seed=1)
    assert first == again


def test_family_table_is_keyed_by_model_type():
    assert set(FAMILIES) == {"qwen2_vl", "llava_next"}


def test_non_vlm_folders_are_refused(tmp_path, tiny_clip_checkpoint):
    with pytest.raises(GeovecInputError, match=r"tiny_clip.*'clip' checkpoint.*llava_next, qwen2_vl"):
        load_caption_model(tiny_clip_checkpoint)
    with pytest.raises(GeovecError, match=r"llava_next, qwen2_vl\): missing config.json"):
        load_caption_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    with pytest.raises(GeovecError, match=str(tmp_path)):  # right family, but no weights or processor
        load_caption_model(tmp_path)


def test_bad_device_is_refused(qwen_checkpoint):
    with pytest.raises(GeovecInputError, match="device"):
        load_caption_model(qwen_checkpoint, device="gpu0")
