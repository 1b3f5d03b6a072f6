"""Benchmark metrics as pure functions of score matrices (separately tested against hand-computed cases).

Ties are broken towards the lower index, deterministically, so a model that scores everything equally cannot
look good by luck.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

RECALL_KS = (1, 5, 10)


def ranks_of_best_positive(scores: np.ndarray, positives: Sequence[set[int] | frozenset[int]]) -> np.ndarray:
    """0-based rank of the best-ranked positive in each row (stable descending order)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    for row, (ranking, wanted) in enumerate(zip(order, positives)):
        ranks[row] = int(np.flatnonzero(np.isin(ranking, list(wanted)))[0])
    return ranks


def candidate_scores(query_vectors: np.ndarray, candidate_vectors: np.ndarray,
                     sizes: Sequence[int]) -> list[np.ndarray]:
    """Each query's scores over its own run of ``candidate_vectors`` (the candidate lists laid end to end, ``sizes``
    long each): what ``precision_at_1`` ranks."""
    out, start = [], 0
    for vector, size in zip(query_vectors, sizes):
        out.append(candidate_vectors[start:start + size] @ vector)
        start += size
    return out


def precision_at_1(candidate_scores: Sequence[np.ndarray], positives: Sequence[set[int] | frozenset[int]]) -> float:
    """Share of queries whose top-scored candidate is correct (MMEB); one score vector per query."""
    if not candidate_scores:
        raise ValueError("no queries")
    hits = [int(np.argmax(scores)) in wanted for scores, wanted in zip(candidate_scores, positives)]
    return float(np.mean(hits))


def recall_at_k(scores: np.ndarray, positives: Sequence[set[int] | frozenset[int]],
                ks: Sequence[int] = RECALL_KS) -> dict[int, float]:
    """R@K for each k: share of rows (queries) with a positive column within the top k."""
    ranks = ranks_of_best_positive(scores, positives)
    return {k: float(np.mean(ranks < k)) for k in ks}


def retrieval_scores(similarity: np.ndarray, text_image: Sequence[int]) -> dict[str, float]:
    """RSICD/RSITMD full retrieval in percent: image->text and text->image R@1/5/10 and mR (mean of the six).

    ``similarity`` is ``(n_images, n_texts)``; an image->text hit is any of the image's own texts in the top k.
    """
    text_image = np.asarray(text_image)
    image_texts = [set(np.flatnonzero(text_image == i)) for i in range(similarity.shape[0])]
    i2t = recall_at_k(similarity, image_texts)
    t2i = recall_at_k(similarity.T, [{int(i)} for i in text_image])
    out = {f"i2t_r{k}": 100 * v for k, v in i2t.items()} | {f"t2i_r{k}": 100 * v for k, v in t2i.items()}
    out["i2t_mean"] = float(np.mean([out[f"i2t_r{k}"] for k in RECALL_KS]))
    out["t2i_mean"] = float(np.mean([out[f"t2i_r{k}"] for k in RECALL_KS]))
    out["mean_recall"] = float(np.mean([out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in RECALL_KS]))
    return out


def accuracy(predicted: Sequence[object], truth: Sequence[object]) -> float:
    """Plain classification accuracy (classification posed as retrieval equals P@1 over the class names)."""
    if len(predicted) != len(truth) or not truth:
        raise ValueError("predicted and truth must be non-empty and of equal length")
    return float(np.mean([p == t for p, t in zip(predicted, truth)]))
