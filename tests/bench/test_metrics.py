"""Metric functions against hand-computed cases."""

import numpy as np
import pytest

from geovec.bench.metrics import accuracy, precision_at_1, recall_at_k, retrieval_scores


def test_precision_at_1_counts_top_candidate_and_breaks_ties_low():
    scores = [np.array([0.1, 0.9]), np.array([0.8, 0.2]), np.array([0.5, 0.5]), np.array([0.3, 0.3, 0.9])]
    positives = [{1}, {1}, {1}, {0, 2}]
    # hit, miss, tie broken towards index 0 -> miss, hit (either positive counts)
    assert precision_at_1(scores, positives) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        precision_at_1([], [])


def test_recall_at_k_by_rank_of_best_positive():
    scores = np.array([[0.9, 0.1, 0.0, 0.2, 0.3, 0.4],    # positive col 0 at rank 0
                       [0.9, 0.8, 0.7, 0.6, 0.5, 0.1],    # positive col 5 at rank 5
                       [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])   # positive col 3 at rank 2
    r = recall_at_k(scores, [{0}, {5}, {3}], ks=(1, 3, 6))
    assert r == {1: pytest.approx(1 / 3), 3: pytest.approx(2 / 3), 6: pytest.approx(1.0)}


def test_retrieval_scores_both_directions_and_mean_recall():
    # 2 images, 4 texts: texts 0,1 belong to image 0; texts 2,3 to image 1
    similarity = np.array([[0.1, 0.9, 0.8, 0.0],   # image 0: best text 1 (own) -> i2t R@1 hit
                           [0.7, 0.6, 0.2, 0.1]])  # image 1: texts 0,1 first, own texts at ranks 2,3 -> R@1 miss
    s = retrieval_scores(similarity, [0, 0, 1, 1])
    assert s["i2t_r1"] == 50 and s["i2t_r5"] == 100 and s["i2t_r10"] == 100
    # text->image: text0 best image 1 (miss), text1 image 0 (hit), text2 image 0 (miss), text3 image 1 (hit)
    assert s["t2i_r1"] == 50 and s["t2i_r5"] == 100
    assert s["i2t_mean"] == pytest.approx(250 / 3) and s["t2i_mean"] == pytest.approx(250 / 3)
    assert s["mean_recall"] == pytest.approx((50 + 100 + 100 + 50 + 100 + 100) / 6)


def test_accuracy():
    assert accuracy(["a", "b", "c", "a"], ["a", "b", "a", "b"]) == 0.5
    with pytest.raises(ValueError):
        accuracy(["a"], [])
