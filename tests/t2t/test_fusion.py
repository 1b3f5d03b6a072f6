"""Hybrid scores: each source standardised over its whole matrix, then a weighted sum."""

import numpy as np
import pytest

from geovec.bench.metrics import retrieval_scores
from geovec.models import load_model
from geovec.t2t.fusion import Fusion, fuse, standardise


def test_standardise_is_a_global_z_score_that_keeps_excluded_entries_out():
    scores = np.array([[1.0, 3.0], [5.0, -np.inf]])
    z = standardise(scores)
    finite = np.array([1.0, 3.0, 5.0])
    np.testing.assert_allclose(z[np.isfinite(z)], (finite - 3.0) / finite.std())
    assert z[1, 1] == -np.inf
    assert standardise(np.full((2, 2), 0.7)).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_the_end_weights_are_each_source_alone_and_a_mix_can_beat_both():
    # 3 images x 3 queries (query q is about image q). Image 0 prefers query 1 by text-to-text, image 2 prefers
    # query 1 by image-text; each source is right where the other is wrong.
    text_to_text = np.array([[0.85, 0.9, 0.1], [0.8, 0.95, 0.2], [0.1, 0.2, 0.9]])
    image_text = np.array([[0.30, 0.10, 0.10], [0.10, 0.34, 0.32], [0.12, 0.33, 0.31]])
    links = [0, 1, 2]
    for weight, source in ((0.0, text_to_text), (1.0, image_text)):
        np.testing.assert_array_equal(np.argsort(-fuse(text_to_text, image_text, weight), axis=0),
                                      np.argsort(-source, axis=0))
    alone = max(retrieval_scores(s, links)["i2t_r1"] for s in (text_to_text, image_text))
    assert retrieval_scores(fuse(text_to_text, image_text, 0.5), links)["i2t_r1"] == 100.0 > alone
    with pytest.raises(ValueError, match="differ in shape"):
        fuse(text_to_text, image_text[:2])


def test_a_fusion_needs_an_image_text_model_and_a_weight_in_range():
    text_only = load_model("minilm")
    with pytest.raises(ValueError, match="cannot embed both images and text"):
        Fusion(text_only)
    image_text = load_model("geovec-mini")
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        Fusion(image_text, weight=1.5)
    assert Fusion(image_text).describe()["weight"] == 0.5
