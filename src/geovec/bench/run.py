"""Running tasks for a model and storing one result record per task (what ``geovec bench run`` does)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from geovec.bench.evaluate import evaluate_data, outcome_record, refusal
from geovec.bench.results import write_result
from geovec.bench.task import Task, TaskMetadata
from geovec.datasets import TaskData
from geovec.models.base import Embedder
from geovec.models.cache import EmbeddingCache
from geovec.t2t.fusion import Fusion


@dataclass
class RunLine:
    task: str
    status: str  # "ok" or "skipped"
    detail: str
    record: dict | None = None


def run_loaded(items: Iterable[tuple[TaskMetadata, TaskData | Task]], embedder: Embedder, output: Path | None,
               data_root: Path, cache: EmbeddingCache, batch_size: int = 32, show_progress: bool = True,
               model_path: str | None = None, corpus: Path | None = None,
               fusion: Fusion | None = None) -> list[RunLine]:
    """Evaluate each task the model can take; write one record per task to ``output`` (when given).

    ``corpus`` is the description corpus for the text-to-text tasks among them (the human-caption oracle if none);
    ``fusion`` makes those tasks hybrid, recorded under the model name ``TEXT_MODEL+IMAGE_TEXT_MODEL``.
    """
    lines = []
    for meta, source in items:
        reason = refusal(meta, embedder)
        if reason:
            lines.append(RunLine(meta.name, "skipped", reason))
            continue
        started = time.perf_counter()
        if isinstance(source, Task):
            data = source.load(data_root, corpus if meta.protocol == "t2t" else None)
            load_seconds = time.perf_counter() - started
        else:
            data, load_seconds = source, 0.0
        hybrid = fusion if meta.protocol == "t2t" else None
        outcome = evaluate_data(meta, data, embedder, cache, batch_size, show_progress, fusion=hybrid)
        outcome.timing["load_s"] = round(load_seconds, 4)
        outcome.timing["total_s"] = round(time.perf_counter() - started, 4)
        record = outcome_record(meta, embedder, outcome, model_path=model_path)
        if hybrid is not None:  # a different system: its own result file, beside the text-only one
            record["model"]["name"] = f"{embedder.name}+{hybrid.embedder.name}"
            record["model"]["revision"] = "+".join(
                revision for revision in (record["model"]["revision"], getattr(hybrid.embedder, "revision", ""))
                if revision)
        if output is not None:
            write_result(output, record)
        score = outcome.scores["main_score"]
        lines.append(RunLine(meta.name, "ok", f"{meta.main_score} {score:.2f}", record))
    return lines
