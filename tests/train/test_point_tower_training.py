"""Training geovec-mini with the GeoCLIP point tower: real RSVQA-LR tile centres and pixels, the real trainer."""

from __future__ import annotations

import importlib.metadata
import itertools

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import TINY_MINI, write_recipe

from geovec.config import data_dir
from geovec.datasets.geo import read_tiles
from geovec.inputs import ImageSegment, Interleaved, PointSegment
from geovec.models.geoclip_location import frozen_location_encoder, weights_path
from geovec.models.mini import GeovecMini
from geovec.models.trainable import load_encoder
from geovec.train.config import load_config
from geovec.train.examples import TrainingExample, write_examples
from geovec.train.trainer import train

OPTIONS = {**TINY_MINI, "point_tower": "geoclip", "point_tokens": 2}


def _point_to_tile_examples(count: int) -> list[TrainingExample]:
    """RSVQA-LR tile centre -> its tile (hard negative: the next tile), the geo-localisation direction."""
    folder = data_dir() / "rsvqa_lr"
    if not folder.is_dir():
        pytest.skip(f"RSVQA-LR tiles not found: {folder}")
    tiles = read_tiles(folder)[:count + 1]
    return [TrainingExample(task="tile-location", query=Interleaved((PointSegment(t.lat, t.lon),),
                                                                    instruction="Find the image taken here"),
                            positive=Interleaved((ImageSegment(t.path),)),
                            negatives=(Interleaved((ImageSegment(other.path),)),), source_ids=(t.id,))
            for t, other in itertools.pairwise(tiles)]


@pytest.mark.slow
def test_training_moves_the_point_projection_and_not_geoclip_through_gradcache_and_checkpointing(tmp_path):
    try:
        importlib.metadata.distribution("geoclip")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("geoclip is not installed (pip install --no-deps geoclip==1.3.0)")
    examples = write_examples(tmp_path / "points.jsonl", _point_to_tile_examples(8))
    recipe = write_recipe(tmp_path, examples, model_options=OPTIONS, max_steps=2, lr=1e-3, mini_batch_size=3,
                          hard_negatives=1, gradient_checkpointing=True)
    final = train(load_config(recipe, output_dir=tmp_path / "out"), show_progress=False)

    saved = load_file(final / "model.safetensors")
    start = GeovecMini.initial(**OPTIONS).state_dict()  # what training started from (seeded)
    assert set(saved) == set(start) and not any("LocEnc" in key for key in saved)
    moved = (saved["point_projection.weight"] - start["point_projection.weight"]).abs().max()
    assert moved > 1e-4, "the point projection did not train"
    package = torch.load(weights_path(), map_location="cpu", weights_only=True)
    assert all(torch.equal(frozen_location_encoder().state_dict()[k], v) for k, v in package.items())
    reloaded = load_encoder(final).eval()
    items = [e.query for e in _point_to_tile_examples(3)]
    with torch.no_grad():
        vectors = reloaded.embed(items)
        batch = reloaded.prepare(items)
        batch["point_features"] = batch["point_features"].flip(0)  # the same texts with other points' features
        swapped = torch.nn.functional.normalize(reloaded(batch), dim=-1)
    assert torch.equal(reloaded.point_projection.weight, saved["point_projection.weight"])
    assert not torch.allclose(vectors, swapped, atol=1e-6)


def test_a_saved_model_gains_a_point_tower_from_the_recipe_and_keeps_its_weights(tmp_path):
    """`init` + `model_options: {point_tower: geoclip}`: geovec-mini 3 starts from 2.1's weights plus a new
    projection; any other option would silently fight the folder's settings, so it is refused by name."""
    try:
        importlib.metadata.distribution("geoclip")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("geoclip is not installed (pip install --no-deps geoclip==1.3.0)")
    from geovec.errors import GeovecInputError
    from geovec.train.trainer import build_encoder

    saved = GeovecMini.initial(**TINY_MINI).save(tmp_path / "saved")
    examples = write_examples(tmp_path / "e.jsonl", [TrainingExample(
        task="t", query=Interleaved((PointSegment(52.0, 4.5),)), positive=Interleaved((PointSegment(52.0, 4.5),)))])
    grown = build_encoder(load_config(write_recipe(tmp_path, examples, init=str(saved), model_options={
        "point_tower": "geoclip", "point_tokens": 2}), output_dir=tmp_path / "out"))
    before = load_file(saved / "model.safetensors")
    after = grown.state_dict()
    assert set(after) - set(before) == {"point_projection.weight", "point_projection.bias"}
    assert all(torch.equal(after[name], tensor) for name, tensor in before.items())
    assert grown.settings.point_tower == "geoclip" and grown.point_projection.out_features == 2 * grown.dim
    batch = grown.prepare([Interleaved((PointSegment(52.0, 4.5),))])
    assert "point_features" in batch  # the point now brings its GeoCLIP tokens
    pooled = build_encoder(load_config(write_recipe(tmp_path, examples, init=str(saved), model_options={
        "crop_weight": 4.0}), output_dir=tmp_path / "out3"))  # a pooling setting: no new weights
    assert pooled.settings.crop_weight == 4.0 and set(pooled.state_dict()) == set(before)
    with pytest.raises(GeovecInputError, match=r"config.model_options: .*image_size belong to the saved model"):
        build_encoder(load_config(write_recipe(tmp_path, examples, init=str(saved), model_options={
            "image_size": 128}), output_dir=tmp_path / "out2"))
