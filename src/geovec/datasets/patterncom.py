"""PatternCom composed image retrieval (Psomas et al. 2024): image + modifying text -> target image.

Published layout (github.com/billpsomas/rscir): PatternNet as ``PatternNet/images/<class>/<file>.jpg`` with
``PatternNet/PatternCom/{color,context,density,existence,quantity,shape}.csv``; every CSV row is
``image_file,attribute,value`` (no header; e.g. ``airplane001.jpg,color,white``), the class being the file-name
prefix. The official protocol pairs each row with every *other* value of the same attribute within its class group
(a few classes are merged, e.g. dense + sparse residential) and counts as relevant the rows with that value.

Here, MMEB style: query = image + the other value as text; candidates = one relevant image (seeded) plus up to
``distractors`` seeded non-relevant images of the same attribute file (other values of the same class included:
they are the hard negatives), never the query image itself.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from geovec.datasets.common import IMAGE_SUFFIXES, image, need_dir, need_file, rng, subsample, with_distractors
from geovec.datasets.samples import CandidateQuery, DatasetError
from geovec.inputs import ImageSegment, Interleaved, TextSegment

ATTRIBUTES = ("color", "context", "density", "existence", "quantity", "shape")
# Classes the official evaluation merges into one group (rscir utils.class_mapping).
MERGED = {"denseresidential": "residential", "sparseresidential": "residential", "closedroad": "road",
          "intersection": "road", "bridge": "roadpass", "overpass": "roadpass", "ferryterminal": "pier",
          "harbor": "pier", "parkingspace": "parking", "parkinglot": "parking"}


def _group(filename: str) -> str:
    label = re.split(r"\d", filename)[0].replace("_", "").lower()
    return MERGED.get(label, label)


def read_rows(csv_path: Path) -> list[tuple[str, str, str]]:
    """``(image file, attribute, value)`` rows; a header row, if any, is skipped."""
    rows = []
    with need_file(csv_path).open(newline="", encoding="utf-8") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            if line_no == 1 and Path(cells[0]).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if len(cells) < 3 or not all(cells[:3]):
                raise DatasetError(f"PatternCom/{csv_path.name} line {line_no}: expected image_file,attribute,value")
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def read_patterncom(folder: Path, attributes: tuple[str, ...] = ATTRIBUTES, limit: int | None = None,
                    distractors: int = 99) -> list[CandidateQuery]:
    """Queries of every attribute file, seeded-subsampled to ``limit`` over all of them."""
    files: dict[str, Path] = {}
    for base, _, names in os.walk(need_dir(folder / "images")):
        for name in names:
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                files.setdefault(name, Path(base) / name)
    plans: dict[str, tuple[str, str, str, list[str]]] = {}  # query id -> (attribute, image, target, relevant)
    pools: dict[str, list[str]] = {}
    for attribute in attributes:
        rows = read_rows(folder / "PatternCom" / f"{attribute}.csv")
        groups: dict[tuple[str, str], dict[str, set[str]]] = {}  # (attribute, class group) -> value -> images
        for line, (name, attr, value) in enumerate(rows, start=1):
            if name not in files:
                raise DatasetError(f"PatternCom/{attribute}.csv line {line}: image {name!r} is not in images/")
            groups.setdefault((attr, _group(name)), {}).setdefault(value, set()).add(name)
        pools[attribute] = sorted({name for name, _, _ in rows})
        for name, attr, value in rows:
            for target, relevant in sorted(groups[(attr, _group(name))].items()):
                others = sorted(relevant - {name})
                if target != value and others:
                    plans.setdefault(f"{attribute}/{name}->{target}", (attribute, name, target, others))
    if not plans:
        raise DatasetError(f"{folder / 'PatternCom'}: no query (each class needs two values of an attribute)")
    segments: dict[str, ImageSegment] = {}

    def segment(name: str, record: str) -> Interleaved:
        if name not in segments:
            segments[name] = image(files[name], record)
        return Interleaved((segments[name],))

    out = []
    for query_id in subsample(list(plans), limit, "patterncom"):
        attribute, name, target, relevant = plans[query_id]
        record = f"PatternCom/{attribute}.csv: {name}"
        positive = rng("patterncom-target", query_id).choice(relevant)
        excluded = {name, *relevant}
        pool = [n for n in pools[attribute] if n not in excluded]
        chosen, positives = with_distractors(positive, pool, distractors, "patterncom", query_id)
        out.append(CandidateQuery(query_id, Interleaved((segment(name, record).segments[0], TextSegment(target))),
                                  tuple(segment(n, record) for n in chosen), positives))
    return out
