"""Scoring images by their descriptions: query-description similarities aggregated per image.

Aggregations (``AGGREGATIONS``):

* ``max``      — the best-matching description decides (robust when one variant mentions the queried object);
* ``mean``     — the average similarity over the image's descriptions;
* ``centroid`` — cosine to the L2-normalised mean of the image's description vectors (one vector per image);
* ``max-mean`` — the average of ``max`` and ``mean``: the best variant decides, but an image whose other variants
  disagree with the query drops below one whose variants agree (a fusion of the two, no parameter to tune).

``exclude[q]`` names a description that must not represent its image for query ``q`` (the query caption itself
when the corpus is the human captions): leaving it in would be a leak.
"""

from __future__ import annotations

import numpy as np

AGGREGATIONS = ("max", "mean", "centroid", "max-mean")


class DescriptionIndex:
    """Descriptions grouped by image, with the per-image sums that mean and centroid need computed once."""

    def __init__(self, description_vectors: np.ndarray, description_image: np.ndarray, n_images: int) -> None:
        self.descriptions = np.asarray(description_vectors, np.float32)
        self.owner = np.asarray(description_image)
        self.n_images = n_images
        self.order = np.argsort(self.owner, kind="stable")  # descriptions grouped by image
        self.starts = np.searchsorted(self.owner[self.order], np.arange(n_images))
        self.sums = np.add.reduceat(self.descriptions[self.order], self.starts, axis=0)
        self.counts = np.bincount(self.owner, minlength=n_images).astype(np.float32)
        self.norms_sq = np.einsum("id,id->i", self.sums, self.sums)

    def scores(self, query_vectors: np.ndarray, aggregation: str = "max",
               exclude: np.ndarray | None = None) -> np.ndarray:
        """``(n_images, n_queries)`` scores; ``exclude[q] = -1`` excludes nothing for query ``q``."""
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {', '.join(AGGREGATIONS)}")
        if aggregation == "max-mean":
            return (self.scores(query_vectors, "max", exclude) + self.scores(query_vectors, "mean", exclude)) / 2
        queries = np.asarray(query_vectors, np.float32)
        excluded = np.flatnonzero(exclude >= 0) if exclude is not None else np.zeros(0, np.int64)
        dropped = exclude[excluded] if exclude is not None else excluded
        if aggregation == "max":
            similarity = queries @ self.descriptions.T
            similarity[excluded, dropped] = -np.inf
            return np.maximum.reduceat(similarity[:, self.order], self.starts, axis=1).T
        dots = queries @ self.sums.T  # (queries, images): q . sum of the image's descriptions
        # The excluded description's image loses it: remove its contribution for that query only.
        image_of_dropped = self.owner[dropped]
        removed = self.descriptions[dropped]
        dots[excluded, image_of_dropped] -= np.einsum("qd,qd->q", queries[excluded], removed)
        if aggregation == "mean":
            counts = np.broadcast_to(self.counts, dots.shape).copy()
            counts[excluded, image_of_dropped] -= 1
            return (dots / np.maximum(counts, 1)).T
        norms_sq = np.broadcast_to(self.norms_sq, dots.shape).copy()
        norms_sq[excluded, image_of_dropped] += (-2 * np.einsum("qd,qd->q", self.sums[image_of_dropped], removed)
                                                 + np.einsum("qd,qd->q", removed, removed))
        return (dots / np.sqrt(np.maximum(norms_sq, 1e-12))).T


def image_scores(query_vectors: np.ndarray, description_vectors: np.ndarray, description_image: np.ndarray,
                 n_images: int, aggregation: str = "max", exclude: np.ndarray | None = None) -> np.ndarray:
    """``(n_images, n_queries)`` scores of every image for every query (one-off; reuse a ``DescriptionIndex``
    to score many query batches against the same corpus). Every image needs at least one description."""
    return DescriptionIndex(description_vectors, description_image, n_images).scores(query_vectors, aggregation,
                                                                                     exclude)
