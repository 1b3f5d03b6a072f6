"""Scoring images by their descriptions: query-description similarities aggregated per image.

Aggregations (``AGGREGATIONS``):

* ``max``      — the best-matching description decides (robust when one variant mentions the queried object);
* ``mean``     — the average similarity over the image's descriptions;
* ``centroid`` — cosine to the L2-normalised mean of the image's description vectors (one vector per image).

``exclude[q]`` names a description that must not represent its image for query ``q`` (the query caption itself
when the corpus is the human captions): leaving it in would be a leak.
"""

from __future__ import annotations

import numpy as np

AGGREGATIONS = ("max", "mean", "centroid")


def image_scores(query_vectors: np.ndarray, description_vectors: np.ndarray, description_image: np.ndarray,
                 n_images: int, aggregation: str = "max", exclude: np.ndarray | None = None) -> np.ndarray:
    """``(n_images, n_queries)`` scores of every image for every query.

    Every image needs at least one description (after exclusion); ``exclude[q] = -1`` excludes nothing.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {', '.join(AGGREGATIONS)}")
    queries = np.asarray(query_vectors, np.float32)
    descriptions = np.asarray(description_vectors, np.float32)
    owner = np.asarray(description_image)
    excluded = np.flatnonzero(exclude >= 0) if exclude is not None else np.zeros(0, np.int64)
    dropped = exclude[excluded] if exclude is not None else excluded
    if aggregation == "max":
        similarity = queries @ descriptions.T
        similarity[excluded, dropped] = -np.inf
        order = np.argsort(owner, kind="stable")
        starts = np.searchsorted(owner[order], np.arange(n_images))
        return np.maximum.reduceat(similarity[:, order], starts, axis=1).T
    sums = np.zeros((n_images, descriptions.shape[1]), np.float32)
    np.add.at(sums, owner, descriptions)
    dots = queries @ sums.T  # (queries, images): q . sum of the image's descriptions
    # The excluded description's image loses it: subtract its contribution for that query only.
    image_of_dropped = owner[dropped]
    dots[excluded, image_of_dropped] -= np.einsum("qd,qd->q", queries[excluded], descriptions[dropped])
    if aggregation == "mean":
        counts = np.broadcast_to(np.bincount(owner, minlength=n_images).astype(np.float32), dots.shape).copy()
        counts[excluded, image_of_dropped] -= 1
        return (dots / np.maximum(counts, 1)).T
    norms_sq = np.broadcast_to(np.einsum("id,id->i", sums, sums), dots.shape).copy()
    e = descriptions[dropped]
    norms_sq[excluded, image_of_dropped] += -2 * np.einsum("qd,qd->q", sums[image_of_dropped], e) + np.einsum(
        "qd,qd->q", e, e)
    return (dots / np.sqrt(np.maximum(norms_sq, 1e-12))).T
