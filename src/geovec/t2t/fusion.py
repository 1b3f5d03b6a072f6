"""Hybrid retrieval: text-to-text scores fused with an image-text embedder's scores (beyond the TRSLLaVA paper).

The two score matrices are cosines in two unrelated spaces, so neither scale nor spread is comparable. Each is
standardised over all its entries (one global z-score per matrix) and the fused score is the weighted sum
``(1 - w) * z(t2t) + w * z(image_text)``. A global affine map keeps each source's own ranking in *both* directions
(image -> text reads rows, text -> image reads columns), so ``w = 0`` is exactly text-to-text and ``w = 1`` exactly
the image-text embedder. The weight is fixed before evaluation (default 0.5); other weights are reported as a
sweep for analysis, never picked on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geovec.models.base import Embedder

DEFAULT_WEIGHT = 0.5
SWEEP_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
METHOD = "global z-score per score matrix, weighted sum"


@dataclass(frozen=True)
class Fusion:
    """An image-text embedder whose scores join the text-to-text scores, and the weight they get."""

    embedder: Embedder
    weight: float = DEFAULT_WEIGHT
    image_instruction: str | None = None  # how the embedder was trained to embed images and captions for retrieval
    text_instruction: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"fusion weight must be within [0, 1], got {self.weight}")
        if not {"image", "text"} <= set(self.embedder.modalities):
            raise ValueError(f"model {self.embedder.name!r} cannot embed both images and text: it cannot be fused "
                             "as an image-text scorer")

    def describe(self) -> dict:
        return {"model": self.embedder.name, "weight": self.weight, "method": METHOD}


def standardise(scores: np.ndarray) -> np.ndarray:
    """``(scores - mean) / std`` over the matrix's finite entries (a constant matrix becomes zeros; an excluded,
    ``-inf`` entry stays ``-inf``)."""
    scores = np.asarray(scores, np.float64)
    finite = scores[np.isfinite(scores)]
    spread = finite.std() if finite.size else 0.0
    return (scores - finite.mean()) / spread if spread > 0 else np.where(np.isfinite(scores), 0.0, scores)


def fuse(text_to_text: np.ndarray, image_text: np.ndarray, weight: float = DEFAULT_WEIGHT) -> np.ndarray:
    """Fused ``(n_images, n_queries)`` scores; both inputs have that shape."""
    if text_to_text.shape != image_text.shape:
        raise ValueError(f"score matrices differ in shape: {text_to_text.shape} vs {image_text.shape}")
    return (1 - weight) * standardise(text_to_text) + weight * standardise(image_text)
