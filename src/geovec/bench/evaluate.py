"""Run one task for one model: load, embed every unique input once (through the cache), score, time it.

One evaluator per protocol, looked up in ``EVALUATORS``: ``candidates`` (Precision@1 over per-query candidate
lists, plus ``precision_at_1_<name>`` for each reference row the queries carry), ``retrieval`` (R@1/5/10 both
directions and mR) and ``t2t`` (the same recalls, images represented by descriptions, per aggregation). For
retrieval tasks the query instruction goes to the image side and the candidate instruction to the text side.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import geovec
from geovec.bench.metrics import candidate_scores, precision_at_1, retrieval_scores
from geovec.bench.task import TaskMetadata
from geovec.datasets import CandidateQuery, RetrievalSplit, TaskData, TextToTextSplit, check_unique_ids
from geovec.errors import GeovecError
from geovec.inputs import Interleaved
from geovec.models.base import Embedder
from geovec.models.cache import EmbeddingCache
from geovec.t2t.fusion import SWEEP_WEIGHTS, Fusion, fuse
from geovec.t2t.retrieval import AGGREGATIONS, DescriptionIndex


@dataclass
class TaskOutcome:
    scores: dict[str, float]
    counts: dict[str, int]
    timing: dict[str, float]
    fingerprint: str  # hash of every input the task produced: same data <=> same fingerprint
    cache: dict[str, int] = field(default_factory=dict)
    corpus: dict[str, Any] | None = None  # t2t tasks: which descriptions represented the images, oracle or not


def refusal(task: TaskMetadata, embedder: Embedder) -> str | None:
    """Why ``embedder`` cannot run ``task`` (``None`` when it can)."""
    missing = task.kinds - embedder.modalities
    if missing:
        return f"model {embedder.name!r} cannot embed {', '.join(sorted(missing))} segments"
    return None


def _instructed(items: Sequence[Interleaved], instruction: str | None) -> list[Interleaved]:
    if instruction is None:
        return list(items)
    return [item if item.instruction else Interleaved(item.segments, instruction) for item in items]


def _fingerprint(keys: Sequence[str], extra: str = "") -> str:
    """Identity of a task's data: the cache keys of all its inputs plus the answers (``extra``)."""
    digest = hashlib.sha256(extra.encode())
    for key in keys:
        digest.update(key.encode())
    return digest.hexdigest()[:16]


def _keys(*groups: Sequence[Interleaved]) -> list[str]:
    return [item.cache_key() for group in groups for item in group]


def _score_references(meta: TaskMetadata, data: Sequence[CandidateQuery], embed, candidate_vectors: np.ndarray,
                      positives: list[frozenset[int]]) -> tuple[dict[str, float], list[str]]:
    """``precision_at_1_<name>`` per reference row (every query must carry it), and the keys of its inputs."""
    scores, keys = {}, []
    for name in dict.fromkeys(r.name for sample in data for r in sample.references):
        rows = [next((r for r in sample.references if r.name == name), None) for sample in data]
        if any(row is None for row in rows):
            raise GeovecError(f"task {meta.name}: reference row {name!r} is missing from some queries")
        queries = _instructed([row.query for row in rows], meta.query_instruction)  # type: ignore[union-attr]
        own = [sample.candidates if row.candidates is None else row.candidates  # type: ignore[union-attr]
               for sample, row in zip(data, rows)]
        flat = _instructed([item for group in own for item in group], meta.candidate_instruction)
        same = all(row.candidates is None for row in rows)  # type: ignore[union-attr]
        vectors = candidate_vectors if same else embed(flat)
        per_query = candidate_scores(embed(queries), vectors, [len(group) for group in own])
        scores[f"precision_at_1_{name}"] = 100 * precision_at_1(per_query, positives)
        keys += [name, *_keys(queries, [] if same else flat)]
    return scores, keys


def _score_candidates(meta: TaskMetadata, data: Sequence[CandidateQuery], embed) -> tuple[dict, dict, str]:
    """P@1; queries carrying reference rows (box dropped, region alone...) add ``precision_at_1_<name>`` each."""
    check_unique_ids(data)
    queries = _instructed([sample.query for sample in data], meta.query_instruction)
    candidates = [_instructed(sample.candidates, meta.candidate_instruction) for sample in data]
    flat = [item for group in candidates for item in group]
    query_vectors, candidate_vectors = embed(queries), embed(flat)
    positives = [sample.positives for sample in data]
    per_query = candidate_scores(query_vectors, candidate_vectors, [len(group) for group in candidates])
    scores = {"precision_at_1": 100 * precision_at_1(per_query, positives)}
    references, reference_keys = _score_references(meta, data, embed, candidate_vectors, positives)
    scores.update(references)
    keys = _keys(queries, flat)
    counts = {"queries": len(data), "candidates": len(flat), "unique_inputs": len(set(keys))}
    answers = ";".join(",".join(map(str, sorted(p))) for p in positives)
    return scores, counts, _fingerprint(keys + reference_keys, extra=answers)


def _score_retrieval(meta: TaskMetadata, data: RetrievalSplit, embed) -> tuple[dict, dict, str]:
    images = _instructed(data.images, meta.query_instruction)
    texts = _instructed(data.texts, meta.candidate_instruction)
    similarity = embed(images) @ embed(texts).T
    counts = {"images": len(images), "texts": len(texts)}
    return retrieval_scores(similarity, data.text_image), counts, _fingerprint(
        _keys(images, texts), extra=",".join(map(str, data.text_image)))


def _score_text_to_text(meta: TaskMetadata, data: TextToTextSplit, embed,
                        fusion: tuple[Fusion, Callable] | None = None) -> tuple[dict, dict, str]:
    """Recalls per aggregation; with ``fusion`` (an image-text embedder and its embed function), the main scores
    are the hybrid's and the record also keeps each source alone and a sweep of weights (analysis only)."""
    queries = _instructed(data.queries, meta.query_instruction)
    descriptions = _instructed(data.descriptions, meta.candidate_instruction)
    query_vectors, description_vectors = embed(queries), embed(descriptions)
    exclude = np.asarray(data.exclude)
    scores: dict[str, float] = {}
    index = DescriptionIndex(description_vectors, np.asarray(data.description_image), len(data.image_ids))
    main_similarity = None
    for aggregation in AGGREGATIONS:
        similarity = index.scores(query_vectors, aggregation, exclude)
        result = retrieval_scores(similarity, data.query_image)
        if aggregation == AGGREGATIONS[0]:
            scores.update(result)
            main_similarity = similarity
        scores[f"mean_recall_{aggregation}"] = result["mean_recall"]
    counts = {"images": len(data.image_ids), "queries": len(queries), "descriptions": len(descriptions)}
    extra = f"{data.exclude}{data.description_image}"
    if fusion is not None:
        settings, embed_fused = fusion
        if data.images is None:
            raise GeovecError(f"task {meta.name}: hybrid scoring needs the images on disk ({meta.name} found none "
                              "under the data root)")
        image_text = (embed_fused(_instructed(data.images, settings.image_instruction))
                      @ embed_fused(_instructed(data.queries, settings.text_instruction)).T)
        scores["mean_recall_text_to_text"] = scores["mean_recall"]
        scores["mean_recall_image_text"] = retrieval_scores(image_text, data.query_image)["mean_recall"]
        for weight in SWEEP_WEIGHTS:
            fused = retrieval_scores(fuse(main_similarity, image_text, weight), data.query_image)
            scores[f"mean_recall_fused_w{weight:g}"] = fused["mean_recall"]
        scores.update(retrieval_scores(fuse(main_similarity, image_text, settings.weight), data.query_image))
        extra += f"fused:{settings.describe()}"
    return scores, counts, _fingerprint(_keys(queries, descriptions), extra=extra)


@dataclass(frozen=True)
class Evaluator:
    """How tasks of one protocol are scored: ``score(meta, data, embed)`` -> (scores, counts, fingerprint)."""

    score: Callable[..., tuple[dict, dict, str]]
    accepts: Callable[[TaskData], bool]  # whether the loaded data has this protocol's shape
    expects: str  # that shape, for the error when it does not
    fuses: bool = False  # takes ``fusion=(Fusion, embed)``: a hybrid with an image-text model


EVALUATORS: dict[str, Evaluator] = {
    "candidates": Evaluator(_score_candidates, lambda data: isinstance(data, Sequence) and len(data) > 0,
                            "a non-empty list of CandidateQuery"),
    "retrieval": Evaluator(_score_retrieval, lambda data: isinstance(data, RetrievalSplit), "a RetrievalSplit"),
    "t2t": Evaluator(_score_text_to_text, lambda data: isinstance(data, TextToTextSplit), "a TextToTextSplit",
                     fuses=True),
}


def evaluate_data(meta: TaskMetadata, data: TaskData, embedder: Embedder, cache: EmbeddingCache,
                  batch_size: int = 32, show_progress: bool = False, fusion: Fusion | None = None) -> TaskOutcome:
    """Score already-loaded task data (also used by the in-memory mock tasks); ``fusion`` (t2t tasks only) adds an
    image-text embedder's scores to the text-to-text ones."""
    reason = refusal(meta, embedder)
    if reason:
        raise GeovecError(f"task {meta.name}: {reason}")
    hits, misses = cache.stats.hits, cache.stats.misses
    embed_seconds = 0.0

    def embed(items: Sequence[Interleaved], model: Embedder = embedder) -> np.ndarray:
        nonlocal embed_seconds
        started = time.perf_counter()
        # benchmarks score models as published, which cut texts at their window
        vectors = cache.encode(model, items, batch_size=batch_size, show_progress=show_progress, truncate=True)
        embed_seconds += time.perf_counter() - started
        return vectors

    started = time.perf_counter()
    evaluator = EVALUATORS[meta.protocol]
    if fusion is not None and not evaluator.fuses:
        raise GeovecError(f"task {meta.name}: hybrid fusion applies to text-to-text (t2t) tasks only")
    if not evaluator.accepts(data):
        raise GeovecError(f"task {meta.name}: a {meta.protocol} task must load {evaluator.expects}")
    hybrid = {"fusion": (fusion, lambda items: embed(items, fusion.embedder))} if fusion is not None else {}
    scores, counts, fingerprint = evaluator.score(meta, data, embed, **hybrid)
    total = time.perf_counter() - started
    scores["main_score"] = scores[meta.main_score]
    corpus = ({"name": data.corpus, "oracle": data.oracle, "describers": list(data.describers)}
              if isinstance(data, TextToTextSplit) else None)
    if corpus is not None and fusion is not None:
        corpus["fusion"] = fusion.describe()
    return TaskOutcome(scores=scores, counts=counts, fingerprint=fingerprint, corpus=corpus,
                       timing={"embed_s": round(embed_seconds, 4), "score_s": round(total - embed_seconds, 4)},
                       cache={"hits": cache.stats.hits - hits, "misses": cache.stats.misses - misses})


def outcome_record(meta: TaskMetadata, embedder: Embedder, outcome: TaskOutcome, **extra: Any) -> dict[str, Any]:
    """The JSON result record of one (model, task) run; see ``geovec.bench.results``."""
    return {
        "schema": 1,
        "geovec_version": geovec.__version__,
        "model": {"name": embedder.name, "revision": getattr(embedder, "revision", ""), "dim": embedder.dim},
        "task": {"name": meta.name, "category": meta.category, "protocol": meta.protocol,
                 "revision": meta.revision, "main_score": meta.main_score},
        "dataset": {"name": meta.dataset, "split": meta.split, "fingerprint": outcome.fingerprint},
        "metadata": asdict(meta),
        "scores": outcome.scores,
        "counts": outcome.counts,
        "timing": outcome.timing,
        "cache": outcome.cache,
        **({"corpus": outcome.corpus} if outcome.corpus else {}),
        **extra,
    }
