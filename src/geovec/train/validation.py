"""Validation during training: the ``Evaluator`` hook, and its built-in use, scores on what a train-data build
held out of the *training* data (``validation.jsonl``).

The trainer calls an evaluator every ``validate_every`` steps and at the end, logs its scores and keeps the
encoder with the highest ``metric`` in ``OUT/best``. ``HeldOutValidator`` is the one a recipe's
``validation_file`` gives; ``train(config, evaluator=...)`` takes any other.

``validation.jsonl`` is written by ``geovec train-data build --validation-images N`` and holds two kinds of record:

* retrieval: ``{"image", "texts"}``, one per held-out image with all its captions, instruction-tagged exactly like
  the training examples, scored by the RSICD/RSITMD protocol (R@1/5/10 both ways, ``mean_recall``) from
  ``geovec.bench.metrics``, so a validation curve reads like the benchmark it stands in for;
* candidates: ``{"task", "query", "candidates", "positives"}``, a ranked query like an RSMEB task's (mosaics of
  held-out images, held-out training cities), scored by P@1 per task (``<task>/precision_at_1``).

With both kinds, ``metric`` is ``validation_score``: the mean of ``mean_recall`` and every task's P@1, so the kept
checkpoint is the one best on whole images, regions and places together, not on one at the others' cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from geovec.bench.metrics import candidate_scores, precision_at_1, retrieval_scores
from geovec.errors import GeovecInputError
from geovec.ingest.jsonl import iter_jsonl
from geovec.inputs import Interleaved
from geovec.models.trainable import TrainableEncoder


class Evaluator(Protocol):
    """Scores of the encoder being trained, computed on the main process; the higher ``metric``, the better."""

    metric: str  # the key of ``evaluate``'s scores whose best step's encoder is kept

    def evaluate(self, encoder: TrainableEncoder) -> dict[str, float]:
        """Scores by name; must leave the encoder in the train/eval mode it found it in."""
        ...

    def inputs(self) -> list[Interleaved]:
        """The inputs ``evaluate`` embeds, so a ``feature_cache`` covers their images and box crops ([] if none)."""
        ...


class HeldOutValidator:
    """Scores of an encoder on a ``validation.jsonl`` (see the module docstring); ``evaluate`` leaves the encoder
    in the mode it found."""

    def __init__(self, path: str | Path, batch_size: int = 64) -> None:
        self.images: list[Interleaved] = []
        self.texts: list[Interleaved] = []
        self.text_image: list[int] = []
        self.ranked: dict[str, list[tuple[Interleaved, list[Interleaved], frozenset[int]]]] = {}
        for where, record in iter_jsonl(path, "validation records"):
            try:
                if "query" in record:
                    candidates = [Interleaved.from_dict(c) for c in record["candidates"]]
                    positives = frozenset(int(p) for p in record["positives"])
                    if not positives or not positives <= set(range(len(candidates))):
                        raise ValueError(f"positives {sorted(positives)} not among {len(candidates)} candidates")
                    self.ranked.setdefault(str(record["task"]), []).append(
                        (Interleaved.from_dict(record["query"]), candidates, positives))
                    continue
                self.images.append(Interleaved.from_dict(record["image"]))
                texts = [Interleaved.from_dict(t) for t in record["texts"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise GeovecInputError(where, f"expected 'image' and 'texts', or 'task', 'query', 'candidates' "
                                       f"and 'positives' ({exc})") from None
            self.texts += texts
            self.text_image += [len(self.images) - 1] * len(texts)
        if not self.images and not self.ranked:
            raise GeovecInputError("config.validation_file", f"{path} holds no validation records")
        self.metric = "validation_score" if self.ranked else "mean_recall"
        self.batch_size = batch_size

    def inputs(self) -> list[Interleaved]:
        return [*self.images, *(item for rows in self.ranked.values() for q, c, _ in rows for item in (q, *c))]

    def _embed(self, encoder: TrainableEncoder, items: list[Interleaved]) -> np.ndarray:
        """One vector per item; an input that occurs several times is embedded once."""
        keys = [item.cache_key() for item in items]
        unique = list({key: item for key, item in zip(keys, items)}.items())
        vectors = np.concatenate([encoder.embed([item for _, item in unique[i:i + self.batch_size]]).float().cpu()
                                  .numpy() for i in range(0, len(unique), self.batch_size)])
        row = {key: n for n, (key, _) in enumerate(unique)}
        return vectors[[row[key] for key in keys]]

    def _scores(self, encoder: TrainableEncoder) -> dict[str, float]:
        scores: dict[str, float] = {}
        if self.images:
            scores.update(retrieval_scores(self._embed(encoder, self.images) @ self._embed(encoder, self.texts).T,
                                           self.text_image))
        for task, rows in self.ranked.items():
            queries = self._embed(encoder, [q for q, _, _ in rows])
            candidates = self._embed(encoder, [c for _, group, _ in rows for c in group])
            per_query = candidate_scores(queries, candidates, [len(group) for _, group, _ in rows])
            scores[f"{task}/precision_at_1"] = 100 * precision_at_1(per_query, [p for _, _, p in rows])
        if self.ranked:
            parts = [v for k, v in scores.items() if k == "mean_recall" or k.endswith("/precision_at_1")]
            scores["validation_score"] = float(np.mean(parts))
        return scores

    def evaluate(self, encoder: TrainableEncoder) -> dict[str, float]:
        was_training = encoder.training
        encoder.eval()
        try:
            with torch.inference_mode():
                return self._scores(encoder)
        finally:
            encoder.train(was_training)
