"""geovec-mini: real all-MiniLM-L6-v2 text weights + patch stem; real RSICD pixels, real forward passes."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from geovec.config import data_dir
from geovec.errors import GeovecError, GeovecInputError
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment, as_input
from geovec.models import list_models, load_model
from geovec.models.mini import SHARED_WITH_MINILM, GeovecMini, build_initial, export_embedded, load_embedded
from geovec.models.trainable import load_encoder, read_encoder_config

TINY = {"num_layers": 2, "image_size": 64, "patch_size": 16, "stem_widths": (16, 32)}
SENTENCES = ["many planes are parked next to a long building in an airport .", "a bridge over a river",
             "harbour " + "with many boats " * 120]  # the last is longer than max_length: truncation must agree


def _image(name: str = "airport_1.jpg") -> ImageSegment:
    path = data_dir() / "rsicd" / "images" / name
    if not path.is_file():
        pytest.skip(f"RSICD image not found: {path}")
    return ImageSegment(path)


@pytest.fixture(scope="module")
def tiny() -> GeovecMini:
    return GeovecMini.initial(**TINY).eval()


def test_starts_as_minilm_on_text_without_instruction():
    mini = GeovecMini.initial().eval()  # the full 6-layer model
    with torch.no_grad():
        ours = mini.embed([as_input(s) for s in SENTENCES]).numpy()
    reference = load_model("minilm").encode(SENTENCES, truncate=True)  # one is longer than the 256-token window
    assert np.allclose((ours * reference).sum(axis=1), 1.0, atol=1e-5)
    assert mini.encoder_config()["pooling"] == "mean" and mini.dim == 384


def test_sequence_order_instruction_image_tokens_box_crop_point(tiny):
    item = Interleaved((_image(), BoxSegment((10, 20, 110, 120), "pixel"), TextSegment("planes"),
                        PointSegment(52.1, 4.3)), instruction="Find the caption")
    batch = tiny.prepare([item])
    ids, slots = batch["input_ids"][0], batch["image_slots"][0]
    per_image = tiny.settings.tokens_per_image
    assert batch["pixel_values"].shape == (2, 3, 64, 64)  # the image and the crop of its box
    start = int((slots == 0).nonzero()[0])
    assert tiny.tokenizer.decode(ids[:start]) == "[CLS] find the caption"  # instruction first, then the image
    assert slots[start:start + per_image].tolist() == list(range(per_image))
    crop = int((slots == per_image).nonzero()[0])
    assert slots[crop:crop + per_image].tolist() == list(range(per_image, 2 * per_image))  # contiguous, in order
    assert tiny.tokenizer.decode(ids[crop - 4:crop]) == "< / box >"  # the crop follows its box's text
    text = tiny.tokenizer.decode(ids[slots < 0])
    assert text == "[CLS] find the caption < box > ( 45, 89 ), ( 491, 536 ) < / box > planes " \
        "< loc > 52. 1000, 4. 3000 < / loc > [SEP]"


def test_mean_pooling_is_invariant_to_padding(tiny):
    short = Interleaved((_image(), TextSegment("an airport")))
    longer = [Interleaved((_image("beach_10.jpg"), TextSegment("a long beach " * 30))), as_input("sea " * 50)]
    with torch.no_grad():
        alone = tiny.embed([short])
        padded = tiny.embed([short, *longer])[:1]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_crop_weight_weighs_a_box_crop_in_the_mean_and_leaves_inputs_without_a_box_alone(tiny):
    """crop_weight w: the mean counts each of a box crop's tokens w times, in training's pass and in serving's;
    an input without a box embeds as with a plain mean."""
    boxed = Interleaved((_image(), BoxSegment((10, 20, 110, 120), "pixel")), instruction="the marked region")
    items = [boxed, Interleaved((_image("beach_10.jpg"),)), as_input("a bridge")]
    weighted = GeovecMini(replace(tiny.settings, crop_weight=3.0), tiny.tokenizer, tiny.bert, pretrained_vision=False)
    weighted.vision = tiny.vision
    batch = weighted.prepare(items)
    per_image, mask = tiny.settings.tokens_per_image, batch["attention_mask"][0]
    crop = batch["image_slots"][0] >= per_image  # the second image of the batch is row 0's crop
    assert crop.sum() == per_image and batch["pool_weights"][0][crop].eq(3.0).all()
    assert torch.equal(batch["pool_weights"][0][~crop], mask[~crop].float())
    assert torch.equal(batch["pool_weights"][1:], batch["attention_mask"][1:].float())
    assert "pool_weights" not in tiny.prepare(items)
    with torch.no_grad():
        plain, ours = tiny.embed(items), weighted.embed(items)
        twice = {**batch, "pool_weights": torch.where(batch["pool_weights"] == 3.0, 2.0, batch["pool_weights"])}
        pooled = [weighted(b)[0] for b in ({k: v for k, v in batch.items() if k != "pool_weights"}, twice, batch)]
    with torch.inference_mode():
        served = weighted.embed(items, query_pass="lean")
    # pooled w = (others + w * crop) / (n + (w - 1) k): the weight-3 mean follows from the plain and weight-2 ones
    n, k = int(mask.sum()), per_image
    assert torch.allclose((n + 2 * k) * pooled[2], 2 * (n + k) * pooled[1] - n * pooled[0], atol=1e-4)
    assert torch.allclose(ours[0], torch.nn.functional.normalize(pooled[2], dim=-1), atol=1e-6)
    assert torch.allclose(served, ours, atol=1e-5) and torch.allclose(ours[1:], plain[1:], atol=1e-6)
    assert not torch.allclose(ours[0], plain[0], atol=1e-3)
    with pytest.raises(GeovecError, match="crop_weight must be a number in \\[1, 100\\], got 0.5"):
        replace(tiny.settings, crop_weight=0.5)


def test_partial_lora_changes_boxes_and_leaves_every_input_without_one_exactly_as_it_was(tiny, tmp_path):
    """A partial LoRA starts as a no-op; trained (here: moved at random), it changes inputs with a box crop (all
    their tokens pass through it) and nothing else, in serving's pass too; it survives saving and a deep copy hooks its own updates."""
    boxed = Interleaved((_image(), BoxSegment((10, 20, 110, 120), "pixel")), instruction="the marked region")
    items = [Interleaved((_image("beach_10.jpg"),)), boxed, as_input("a bridge"),
             Interleaved((_image(), TextSegment("planes")), instruction="Represent the image")]
    model = copy.deepcopy(tiny)
    with torch.no_grad():
        before = tiny.embed(items)
        model.add_parts(partial_lora_rank=4)
        assert torch.equal(model.embed(items), before)
        for parameter in model.partial_lora.parameters():
            parameter.normal_(0.0, 0.05)
        after = model.embed(items)
        alone = model.embed([items[0], items[2], items[3]]), tiny.embed([items[0], items[2], items[3]])
    gate = model.prepare(items)["lora_gate"]
    assert torch.equal(gate[1], model.prepare(items)["attention_mask"][1].float()) and gate[[0, 2, 3]].eq(0).all()
    assert not torch.allclose(after[1], before[1], atol=1e-3)
    assert torch.allclose(after[[0, 2, 3]], before[[0, 2, 3]], atol=1e-6)
    assert torch.equal(*alone)  # no gate in the batch: the very same computation
    with torch.inference_mode():
        assert torch.allclose(model.embed(items, query_pass="lean"), after, atol=1e-5)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.partial_lora.updates["layer0_intermediate_dense"].up.weight.zero_()
        assert torch.equal(model.embed(items), after) and not torch.equal(twin.embed(items), after)
        assert torch.equal(load_encoder(model.save(tmp_path / "plora")).eval().embed(items), after)
    with pytest.raises(GeovecError, match="has a partial LoRA \\(rank 4\\) already"):
        model.add_parts(partial_lora_rank=8)
    with pytest.raises(GeovecError, match="partial_lora_rank must be a whole number in \\[0, 256\\], got 2.5"):
        replace(tiny.settings, partial_lora_rank=2.5)


def test_inference_pass_embeds_images_boxes_and_text_as_transformers_does(tiny):
    """Serving (inference mode, CPU) runs geovec.models.bert_inference; training runs BertModel: same vectors."""
    items = [Interleaved((_image(), BoxSegment((0.1, 0.1, 0.5, 0.6), "normalized"), TextSegment("planes"))),
             as_input("a bridge"), Interleaved((PointSegment(52.1, 4.3),), instruction="find the image")]
    with torch.no_grad():
        transformers_pass = tiny.embed(items)
    with torch.inference_mode():
        lean_pass = tiny.embed(items, query_pass="lean")
    assert torch.allclose(lean_pass, transformers_pass, atol=1e-5)


def test_isolated_instruction_is_computed_once_and_matches_transformers(tiny):
    """With isolated_instruction the [CLS] + instruction prefix sees only itself: inference (cached prefix states)
    and training (transformers with the isolating mask) give the same vectors; inputs without one are unchanged."""
    items = [Interleaved((TextSegment("a bridge over a river"),), instruction="Find the image"),
             Interleaved((_image(), TextSegment("planes")), instruction="Represent the image"),
             Interleaved((TextSegment("boats in a harbour near the coast"),), instruction="Find the image"),
             as_input("no instruction")]
    isolated = GeovecMini(replace(tiny.settings, isolated_instruction=True), tiny.tokenizer, tiny.bert,
                          pretrained_vision=False)
    isolated.vision = tiny.vision
    batch = isolated.prepare(items)
    assert batch["prefix_lengths"].tolist() == [4, 4, 4, 0]  # [CLS] find the image / represent the image
    assert "prefix_lengths" not in tiny.prepare(items)
    with torch.no_grad():
        transformers_pass = isolated.embed(items)
        shared = tiny.embed(items)
    with torch.inference_mode():
        lean_pass = isolated.embed(items, query_pass="lean")
        lean_again = isolated.embed(items[::-1], query_pass="lean")
    assert torch.allclose(lean_pass, transformers_pass, atol=1e-5)
    assert torch.allclose(lean_again, lean_pass.flip(0), atol=1e-5)
    assert torch.allclose(lean_pass[3], shared[3], atol=1e-5)  # no instruction: nothing is isolated
    assert not torch.allclose(lean_pass[0], shared[0], atol=1e-4)


def test_save_and_reload_give_identical_embeddings(tiny, tmp_path):
    items = [Interleaved((_image(), BoxSegment((0.1, 0.1, 0.5, 0.6), "normalized"))), as_input("a bridge"),
             Interleaved((PointSegment(51.9, 4.48), TextSegment("harbour")), instruction="Find the place")]
    folder = tiny.save(tmp_path / "mini")
    assert read_encoder_config(folder)["architecture"] == "geovec-mini"
    with torch.no_grad():
        before = tiny.embed(items).numpy()
        after = load_encoder(folder).eval().embed(items).numpy()
    assert np.array_equal(before, after)
    embedder = load_model("geovec-mini", folder)
    assert embedder.dim == 384 and {"image", "box", "point", "text"} <= embedder.modalities
    assert np.allclose(embedder.encode(items), before, atol=1e-6)
    assert "geovec-mini" in {spec.name for spec in list_models()}


def test_build_initial_writes_a_loadable_starting_checkpoint(tmp_path):
    folder = build_initial(tmp_path / "init", num_layers=1, image_size=32, patch_size=16, seed=3)
    assert read_encoder_config(folder)["bert"]["num_hidden_layers"] == 1
    assert load_encoder(folder).settings.image_size == 32


def test_bad_settings_and_oversized_inputs_are_refused(tiny):
    with pytest.raises(Exception, match="patch_size"):
        GeovecMini.initial(num_layers=1, image_size=60, patch_size=16)
    with pytest.raises(Exception, match="unknown option.*colour"):
        GeovecMini.initial(num_layers=1, colour="red")
    too_many = Interleaved(tuple(_image() for _ in range(17)))  # 17 x 16 image tokens > 256
    with pytest.raises(GeovecInputError, match=r"inputs\[1\]: its images need more than max_length=256"):
        tiny.prepare([as_input("fine"), too_many])


def test_packaged_delta_reloads_to_the_trained_model(tiny, tmp_path):
    """export_embedded ships float16 weights without MiniLM's word embeddings; reloading restores the model."""
    trained = GeovecMini.initial(**TINY)
    with torch.no_grad():  # stand-in for training: move everything but the frozen word embeddings
        for name, parameter in trained.named_parameters():
            if name != SHARED_WITH_MINILM:
                parameter.add_(0.01 * torch.randn_like(parameter))
    folder = export_embedded(trained.save(tmp_path / "trained"), tmp_path / "shipped", note="how it was trained")
    assert (folder / "TRAINING.md").read_text() == "how it was trained"
    reloaded = load_embedded(folder).eval()
    items = [Interleaved((_image(), TextSegment("planes"))), as_input("a bridge over a river")]
    with torch.no_grad():
        cosine = (trained.eval().embed(items) * reloaded.embed(items)).sum(-1)
    assert torch.all(cosine > 0.9999)  # float16 storage costs nothing measurable
    with torch.no_grad():
        trained.bert.embeddings.word_embeddings.weight.add_(1.0)
    with pytest.raises(GeovecError, match="word embeddings differ"):
        export_embedded(trained.save(tmp_path / "changed"), tmp_path / "refused")
