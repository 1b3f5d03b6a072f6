"""Validation during training: the ``Evaluator`` hook, and its built-in use, retrieval mR on images held out of
the *training* split (``validation.jsonl``).

The trainer calls an evaluator every ``validate_every`` steps and at the end, logs its scores and keeps the
encoder with the highest ``metric`` in ``OUT/best``. ``RetrievalValidator`` is the one a recipe's
``validation_file`` gives; ``train(config, evaluator=...)`` takes any other.

``validation.jsonl`` is written by ``geovec train-data build --validation-images N``: one record per held-out image with all its captions,
instruction-tagged exactly like the training examples. The score is the RSICD/RSITMD protocol (R@1/5/10 both ways,
mR) from ``geovec.bench.metrics``, so a validation curve reads like the benchmark it stands in for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from geovec.bench.metrics import retrieval_scores
from geovec.errors import GeovecInputError
from geovec.ingest.jsonl import iter_jsonl
from geovec.inputs import Interleaved, image_files
from geovec.models.trainable import TrainableEncoder


class Evaluator(Protocol):
    """Scores of the encoder being trained, computed on the main process; the higher ``metric``, the better."""

    metric: str  # the key of ``evaluate``'s scores whose best step's encoder is kept

    def evaluate(self, encoder: TrainableEncoder) -> dict[str, float]:
        """Scores by name; must leave the encoder in the train/eval mode it found it in."""
        ...

    def image_paths(self) -> list[str]:
        """The image files ``evaluate`` reads, so a ``feature_cache`` covers them too ([] when none)."""
        ...


class RetrievalValidator:
    """mR of an encoder on a held-out retrieval split; ``evaluate`` leaves the encoder in the mode it found."""

    metric = "mean_recall"

    def __init__(self, path: str | Path, batch_size: int = 64) -> None:
        self.images: list[Interleaved] = []
        self.texts: list[Interleaved] = []
        self.text_image: list[int] = []
        for where, record in iter_jsonl(path, "validation records"):
            try:
                self.images.append(Interleaved.from_dict(record["image"]))
                texts = [Interleaved.from_dict(t) for t in record["texts"]]
            except (KeyError, TypeError) as exc:
                raise GeovecInputError(where, f"expected 'image' and 'texts' ({exc})") from None
            self.texts += texts
            self.text_image += [len(self.images) - 1] * len(texts)
        if not self.images:
            raise GeovecInputError("config.validation_file", f"{path} holds no validation records")
        self.batch_size = batch_size

    def image_paths(self) -> list[str]:
        return image_files(self.images)

    def _embed(self, encoder: TrainableEncoder, items: list[Interleaved]) -> np.ndarray:
        return np.concatenate([encoder.embed(items[i:i + self.batch_size]).float().cpu().numpy()
                               for i in range(0, len(items), self.batch_size)])

    def evaluate(self, encoder: TrainableEncoder) -> dict[str, float]:
        was_training = encoder.training
        encoder.eval()
        try:
            with torch.inference_mode():
                similarity = self._embed(encoder, self.images) @ self._embed(encoder, self.texts).T
        finally:
            encoder.train(was_training)
        return retrieval_scores(similarity, self.text_image)
