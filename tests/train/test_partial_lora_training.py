"""Training a partial LoRA: real RSICD train images with boxes and captions, the real trainer, the base frozen."""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from train_helpers import TINY_MINI, rsicd_pairs, write_recipe

from geovec.inputs import BoxSegment, Interleaved
from geovec.models.mini import GeovecMini
from geovec.models.trainable import load_encoder
from geovec.train.config import load_config
from geovec.train.examples import TrainingExample, write_examples
from geovec.train.trainer import train


def test_training_the_partial_lora_teaches_boxes_and_leaves_whole_images_and_texts_exactly_alone(tmp_path):
    """geovec-mini 3.6's recipe in small: a saved model gains a partial LoRA, trains on (image + box -> caption)
    with BERT and the vision tower frozen; its whole-image and text vectors stay bit for bit the start's."""
    pairs = rsicd_pairs(8)
    boxed = [TrainingExample(task="region-caption", positive=p.positive, negatives=p.negatives,
                             source_ids=p.source_ids,
                             query=Interleaved((*p.query.segments, BoxSegment((0.1, 0.2, 0.6, 0.7), "normalized")),
                                               instruction="Find a caption of the marked region"))
             for p in pairs]
    start = GeovecMini.initial(**TINY_MINI).save(tmp_path / "start")
    recipe = write_recipe(tmp_path, write_examples(tmp_path / "boxes.jsonl", boxed), init=str(start),
                          model_options={"partial_lora_rank": 4, "crop_weight": 4.0}, max_steps=2, lr=1e-3,
                          lr_multipliers={}, freeze=["^bert\\.", "^vision\\."], hard_negatives=1)
    final = train(load_config(recipe, output_dir=tmp_path / "out"), show_progress=False)

    before, after = load_file(start / "model.safetensors"), load_file(final / "model.safetensors")
    assert all(torch.equal(after[name], tensor) for name, tensor in before.items())
    assert any(name.startswith("partial_lora.") and tensor.abs().max() > 0
               for name, tensor in after.items() if name.endswith(".up.weight")), "the partial LoRA did not train"
    original, trained, silenced = (load_encoder(folder).eval() for folder in (start, final, final))
    whole = [p.query for p in pairs[:3]] + [p.positive for p in pairs[:3]]
    queries = [b.query for b in boxed[:3]]
    with torch.no_grad():
        for update in silenced.partial_lora.updates.values():
            update.up.weight.zero_()
        assert torch.equal(trained.embed(whole), original.embed(whole))
        cosine = (trained.embed(queries) * silenced.embed(queries)).sum(-1)  # the same crop weight, LoRA off
    assert torch.all(cosine < 1 - 1e-5)
