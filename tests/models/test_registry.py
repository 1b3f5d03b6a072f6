"""The model table (``geovec.models.registry``): data that names code by import path, checked against that code."""

import json

import pytest

from geovec.bench import get_task
from geovec.errors import GeovecError
from geovec.models.registry import BUILTIN_MODELS, get_spec, resolve
from geovec.models.trainable import TrainableEncoder, architecture_class, load_encoder


@pytest.mark.parametrize("spec", BUILTIN_MODELS, ids=lambda spec: spec.name)
def test_every_builtin_loader_and_encoder_class_resolves(spec):
    assert callable(resolve(spec.loader))
    if spec.encoder_class_path:
        cls = architecture_class(spec.name)
        assert issubclass(cls, TrainableEncoder) and cls.architecture == spec.name
        assert cls.modalities == spec.modalities  # what `geovec models` states is what the encoder takes


def test_geovec_mini_indexes_with_the_instructions_it_was_trained_with():
    """Trained on rsicd-retrieval (image query, caption candidates): index items are images, queries captions."""
    task = get_task("rsicd-retrieval").metadata
    spec = get_spec("geovec-mini")
    assert (spec.item_instruction, spec.query_instruction) == (task.query_instruction, task.candidate_instruction)


def test_unknown_architecture_is_named_with_the_known_ones(tmp_path):
    (tmp_path / "geovec_encoder.json").write_text(json.dumps({"architecture": "resnet-9000"}))
    with pytest.raises(GeovecError, match=r"unknown encoder architecture 'resnet-9000'; known: geovec-mini, vlm2geovec"):
        load_encoder(tmp_path)
