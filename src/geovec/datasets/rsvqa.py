"""RSVQA-LR / RSVQA-HR visual question answering posed as retrieval over answers.

Published layout (Lobry et al. 2020, Zenodo): ``{prefix}_split_{split}_{questions,answers,images}.json``, each an
object holding one list (``"questions"``, ``"answers"``, ``"images"``) of records keyed by ``"id"``:

* question: ``id, img_id, type, question, answers_ids, active``
* answer: ``id, question_id, answer, active``
* image: ``id, questions_ids, active`` (pixels in ``Images_LR/<id>.tif`` or, for HR, ``Data/<id>.tif``)

The files list every id of the whole dataset; only ``active`` records belong to the split (the others are stubs
with just ``id`` and ``active``). Query = image + question; candidates = the distinct answers given to questions of
the same type in the split (``["yes", "no"]`` for presence/comparison, the counts present for counting...);
positive = the ground-truth answer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from geovec.datasets.common import image, need_dir, read_json, subsample
from geovec.datasets.samples import CandidateQuery, DatasetError
from geovec.inputs import ImageSegment, Interleaved, TextSegment


def _records(path: Path, kind: str) -> dict[Any, dict]:
    """The active records of one split file by id (inactive stubs dropped, duplicate ids refused)."""
    data = read_json(path)
    rows = data.get(kind) if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise DatasetError(f"{path.name}: expected an object with a {kind!r} list")
    out: dict[Any, dict] = {}
    seen: set = set()
    for position, row in enumerate(rows):
        if not isinstance(row, dict) or "id" not in row:
            raise DatasetError(f"{path.name}: record {position} has no 'id'")
        if row["id"] in seen:
            raise DatasetError(f"{path.name}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        if row.get("active", True):
            out[row["id"]] = row
    return out


def _answer_order(answers: set[str]) -> list[str]:
    """Stable, readable candidate order: yes/no first, then natural order (``2`` before ``10``)."""
    if answers <= {"yes", "no"}:
        return [a for a in ("yes", "no") if a in answers]
    return sorted(answers, key=lambda a: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", a)])


def hr_images_dir(folder: Path) -> Path:
    """RSVQA-HR's image folder: ``Data/`` as published on Zenodo, ``Images/`` in some repackagings."""
    return next((folder / d for d in ("Data", "Images") if (folder / d).is_dir()), folder / "Data")


def read_rsvqa(folder: Path, prefix: str, images_dir: Path, split: str = "test",
               limit: int | None = None) -> list[CandidateQuery]:
    """Active questions of ``{prefix}_split_{split}_*.json`` in ``folder`` (``prefix``: ``LR`` or ``USGS``)."""
    files = {kind: folder / f"{prefix}_split_{split}_{kind}.json" for kind in ("questions", "answers", "images")}
    questions, answers, images = (_records(path, kind) for kind, path in files.items())
    need_dir(images_dir)
    qname = files["questions"].name
    checked = []
    for qid, q in questions.items():
        label = f"{qname}: question {qid}"
        text, kind, ids = q.get("question"), q.get("type"), q.get("answers_ids")
        if not isinstance(text, str) or not text.strip() or not isinstance(kind, str):
            raise DatasetError(f"{label}: needs a non-empty 'question' and a 'type'")
        if q.get("img_id") not in images:
            raise DatasetError(f"{label} refers to image {q.get('img_id')} which is not an active record of "
                               f"{files['images'].name}")
        if not isinstance(ids, list) or not ids:
            raise DatasetError(f"{label}: has no 'answers_ids'")
        missing = [a for a in ids if a not in answers]
        if missing:
            raise DatasetError(f"{label}: its answer {missing[0]} is not an active record of "
                               f"{files['answers'].name}, so the positive is missing")
        truth = {str(answers[a].get("answer", "")).strip() for a in ids} - {""}
        if not truth:
            raise DatasetError(f"{label}: its answers are empty")
        checked.append((qid, q, kind, truth))
    if not checked:
        raise DatasetError(f"{qname}: no active question")
    by_type: dict[str, set[str]] = {}
    for _, _, kind, truth in checked:
        by_type.setdefault(kind, set()).update(truth)
    options = {kind: _answer_order(found) for kind, found in by_type.items()}
    texts = {kind: tuple(Interleaved((TextSegment(a),)) for a in found) for kind, found in options.items()}
    pixels: dict[Any, ImageSegment] = {}
    out = []
    for qid, q, kind, truth in subsample(checked, limit, f"{prefix}-{split}-vqa"):
        img_id = q["img_id"]
        if img_id not in pixels:
            pixels[img_id] = image(images_dir / f"{img_id}.tif", f"{qname}: question {qid}: image {img_id}")
        out.append(CandidateQuery(f"q{qid}", Interleaved((pixels[img_id], TextSegment(q["question"].strip()))),
                                  texts[kind], frozenset(i for i, a in enumerate(options[kind]) if a in truth)))
    return out
