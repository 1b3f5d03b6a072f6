"""Region matching on an image with box annotations (DeepForest CSV: ``image_path,xmin,ymin,xmax,ymax,label``).

Query = the image + one box (pixels); candidates = context crops (the box widened by ``CONTEXT`` of its size on every
side, clipped to the image) of that box and of ``distractors`` other boxes of the same image (seeded), each an
in-memory image; positive = the context crop of the query's box. It asks "which view shows this box", i.e. whether
a model localises the region a box points at. Candidates carry context so that they are never pixel-identical to
the box itself: a dual encoder that crops the box must still recognise the same object in a wider view.
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from geovec.datasets.common import image, need_file, rng, subsample, with_distractors
from geovec.datasets.samples import CandidateQuery, DatasetError
from geovec.fileio import atomic_write
from geovec.inputs import BoxSegment, ImageSegment, Interleaved

Box = tuple[int, int, int, int]
CONTEXT = 0.5


def read_box_csv(csv_path: Path) -> dict[str, list[tuple[int, Box]]]:
    """Boxes per image file, each with its CSV line number; boxes are widened to whole pixels."""
    out: dict[str, list[tuple[int, Box]]] = {}
    with need_file(csv_path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"image_path", "xmin", "ymin", "xmax", "ymax"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{csv_path.name}: missing columns {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                x1, y1, x2, y2 = (float(row[c]) for c in ("xmin", "ymin", "xmax", "ymax"))
            except (TypeError, ValueError):
                raise DatasetError(f"{csv_path.name} line {line}: box coordinates must be numbers") from None
            box = (math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2))
            out.setdefault(row["image_path"], []).append((line, box))
    return out


def _clip(box: Box, size: tuple[int, int], record: str) -> Box:
    """Boxes running over the edge are clipped (with a warning); boxes off the image are a data error."""
    w, h = size
    clipped = (max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3]))
    if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
        raise DatasetError(f"{record}: box {box} lies outside the {w}x{h} image (or is empty)")
    if clipped != box:
        warnings.warn(f"{record}: box {box} runs over the {w}x{h} image; clipped to {clipped}", stacklevel=3)
    return clipped


def with_context(box: Box, size: tuple[int, int]) -> Box:
    """The box widened by ``CONTEXT`` of its size on every side, clipped to the image: the view a candidate shows."""
    dx, dy = math.ceil(CONTEXT * (box[2] - box[0])), math.ceil(CONTEXT * (box[3] - box[1]))
    return (max(0, box[0] - dx), max(0, box[1] - dy), min(size[0], box[2] + dx), min(size[1], box[3] + dy))


VIEW_SIDES = (0.1, 0.3)  # a drawn box's side, as a share of the image's: RSICD's 224 px -> 22-67 px, like OSBS trees


def drawn_boxes(size: tuple[int, int], count: int, *key: object) -> list[Box]:
    """``count`` seeded boxes on an image of ``size`` (sides within ``VIEW_SIDES`` of the image's), centres at
    least a box apart, so that their views show different ground: training data for region matching."""
    draw, (w, h), out = rng("region-views", *key), size, []
    for _ in range(50 * count):
        if len(out) == count:
            break
        bw, bh = (max(4, round(draw.uniform(*VIEW_SIDES) * side)) for side in (w, h))
        x, y = draw.randrange(0, w - bw + 1), draw.randrange(0, h - bh + 1)
        if all(abs(x - o[0]) >= bw or abs(y - o[1]) >= bh for o in out):
            out.append((x, y, x + bw, y + bh))
    return out


def write_view(path: Path, box: Box, folder: Path) -> Path:
    """The view of ``box`` (with context) of the image file ``path`` as a PNG in ``folder``, written once (a cache,
    named by the file and the box)."""
    target = folder / f"{path.stem}-{'-'.join(map(str, box))}.png"
    if not target.is_file():
        try:
            with Image.open(path) as im:
                view = im.convert("RGB").crop(with_context(box, im.size))
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"image {path} cannot be decoded ({exc})") from None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda temp: view.save(temp, format="PNG"))
        except OSError as exc:
            raise DatasetError(f"view cache {folder}: cannot write {target.name} ({exc.strerror or exc})") from None
    return target


def region_matching(folder: Path, csv_name: str, distractors: int = 9,
                    limit: int | None = None) -> list[CandidateQuery]:
    """One query per box of ``folder/csv_name``; image files are resolved against ``folder``."""
    out = []
    for name, rows in read_box_csv(folder / csv_name).items():
        path = folder / name
        picture = image(path, f"{csv_name}: image {name}")
        try:
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"{csv_name}: image {name} cannot be decoded ({exc})") from None
        boxes = {line: _clip(box, picture.size, f"{csv_name} line {line}") for line, box in rows}
        crops: dict[Box, Interleaved] = {}
        for box in boxes.values():
            if box not in crops:
                x1, y1, x2, y2 = with_context(box, picture.size)
                crops[box] = Interleaved((ImageSegment(np.ascontiguousarray(pixels[y1:y2, x1:x2])),))
        for line in subsample(sorted(boxes), limit, "regions", csv_name, name):
            box = boxes[line]
            others = [b for b in dict.fromkeys(boxes.values()) if b != box]
            chosen, positives = with_distractors(box, others, distractors, "regions", name, line)
            out.append(CandidateQuery(f"{name}#{line}", Interleaved((picture, BoxSegment(box, "pixel"))),
                                      tuple(crops[b] for b in chosen), positives))
    if not out:
        raise DatasetError(f"{csv_name}: no boxes")
    return out
