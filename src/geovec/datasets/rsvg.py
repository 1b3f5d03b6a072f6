"""DIOR-RSVG visual grounding (Zhan et al. 2023) as two retrieval tasks over boxes and their descriptions.

Published layout: ``Annotations/<n>.xml`` (VOC style: ``<filename>``, one ``<object>`` per referred box with
``<name>``, ``<bndbox>`` ``xmin/ymin/xmax/ymax`` in pixels and ``<description>``), ``JPEGImages/<filename>``, and
``{train,val,test}.txt`` listing split members as integers. A split index numbers the objects of all annotation
files, counted in file order; the official loader walks the folder unsorted, we count in numeric file order
(``00001.xml``, ``00002.xml``...), the order the files are published in.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from geovec.datasets.common import image, need_dir, need_file, rng, subsample, with_distractors
from geovec.datasets.samples import CandidateQuery, DatasetError
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, TextSegment

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class RsvgObject:
    index: int  # position in the split files' numbering
    record: str  # "Annotations/00012.xml object 2", for messages
    image: Path
    name: str
    box: Box
    description: str


def _number(path: Path) -> tuple[int, str]:
    return (int(path.stem), path.name) if path.stem.isdigit() else (1 << 62, path.name)


def _parse(xml: Path, jpegs: Path, start: int) -> list[RsvgObject]:
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise DatasetError(f"Annotations/{xml.name}: not valid XML ({exc})") from None
    picture = jpegs / (root.findtext("filename") or f"{xml.stem}.jpg").strip()
    out = []
    for k, obj in enumerate(root.findall("object")):
        record = f"Annotations/{xml.name} object {k}"
        try:
            x1, y1, x2, y2 = (int(float(obj.findtext(f"bndbox/{c}", ""))) for c in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            raise DatasetError(f"{record}: <bndbox> needs numeric xmin, ymin, xmax, ymax") from None
        out.append(RsvgObject(start + k, record, picture, (obj.findtext("name") or "").strip(), (x1, y1, x2, y2),
                              " ".join((obj.findtext("description") or "").split())))
    return out


def read_dior_rsvg(folder: Path, split: str = "test") -> tuple[list[RsvgObject], dict[Path, list[RsvgObject]]]:
    """The split's objects, and every annotated object grouped by image (other boxes are candidates too)."""
    jpegs = need_dir(folder / "JPEGImages")
    objects: list[RsvgObject] = []
    for xml in sorted(need_dir(folder / "Annotations").glob("*.xml"), key=_number):
        objects += _parse(xml, jpegs, len(objects))
    listing = need_file(folder / f"{split}.txt")
    members: dict[int, RsvgObject] = {}
    for line_no, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        if not entry.isdigit() or int(entry) >= len(objects):
            raise DatasetError(f"{listing.name} line {line_no}: {entry!r} is not an object index "
                               f"(0-{len(objects) - 1})")
        if int(entry) in members:
            raise DatasetError(f"{listing.name} line {line_no}: duplicate object index {entry}")
        members[int(entry)] = o = objects[int(entry)]
        if not o.description:
            raise DatasetError(f"{o.record} (index {entry} in {listing.name}): has no <description>")
    by_image: dict[Path, list[RsvgObject]] = {}
    for o in objects:
        by_image.setdefault(o.image, []).append(o)
    return list(members.values()), by_image


def _checked_image(o: RsvgObject, others: list[RsvgObject], cache: dict[Path, ImageSegment]) -> ImageSegment:
    """The object's image (header only), with every box on it checked to lie inside."""
    if o.image not in cache:
        seg = cache[o.image] = image(o.image, f"{o.record}: image {o.image.name}")
        w, h = seg.size
        for other in others:
            x1, y1, x2, y2 = other.box
            if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
                raise DatasetError(f"{other.record}: box {other.box} lies outside the {w}x{h} image "
                                   f"{o.image.name} (or is empty)")
    return cache[o.image]


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def jittered_boxes(boxes: list[Box], size: tuple[int, int], needed: int, *key: object) -> list[Box]:
    """``needed`` seeded decoy boxes: real boxes moved by 0.6-1.5 of their size and rescaled, clipped to the image,
    overlapping no real or earlier decoy box by IoU >= 0.3 (so none could be a right answer)."""
    draw, (w, h) = rng("jitter", *key), size
    out: list[Box] = []
    for _ in range(200 * needed):
        if len(out) == needed:
            break
        x1, y1, x2, y2 = draw.choice(boxes)
        scale = draw.uniform(0.8, 1.25)
        bw, bh = max(2.0, (x2 - x1) * scale), max(2.0, (y2 - y1) * scale)
        cx = (x1 + x2) / 2 + draw.choice((-1, 1)) * draw.uniform(0.6, 1.5) * bw
        cy = (y1 + y2) / 2 + draw.choice((-1, 1)) * draw.uniform(0.6, 1.5) * bh
        box = (max(0, int(cx - bw / 2)), max(0, int(cy - bh / 2)), min(w, int(cx + bw / 2)), min(h, int(cy + bh / 2)))
        if box[2] - box[0] >= 2 and box[3] - box[1] >= 2 and all(_iou(box, b) < 0.3 for b in boxes + out):
            out.append(box)
    return out  # fewer than asked only on images too crowded for a clear decoy


def refexp_queries(folder: Path, split: str = "test", limit: int | None = None,
                   min_candidates: int = 4) -> list[CandidateQuery]:
    """Query = image + referring expression; candidates = that image with each of its boxes (topped up with
    jittered decoys to ``min_candidates``); positive = the box the expression describes."""
    members, by_image = read_dior_rsvg(folder, split)
    cache: dict[Path, ImageSegment] = {}
    out = []
    for o in subsample(members, limit, "dior-rsvg", split, "refexp"):
        picture = _checked_image(o, by_image[o.image], cache)
        boxes = list(dict.fromkeys(other.box for other in by_image[o.image]))
        boxes += jittered_boxes(boxes, picture.size, max(0, min_candidates - len(boxes)), "refexp", o.index)
        pool = [b for b in boxes if b != o.box]
        chosen, positives = with_distractors(o.box, pool, len(pool), "refexp", o.index)
        out.append(CandidateQuery(f"obj{o.index}", Interleaved((picture, TextSegment(o.description))),
                                  tuple(Interleaved((picture, BoxSegment(b, "pixel"))) for b in chosen), positives))
    return out


def region_caption_queries(folder: Path, split: str = "test", limit: int | None = None,
                           min_candidates: int = 8) -> list[CandidateQuery]:
    """Query = image + box; candidates = descriptions of the boxes on that image plus seeded descriptions of other
    images up to ``min_candidates``; positive = the box's own description (and any identical text)."""
    members, by_image = read_dior_rsvg(folder, split)
    every = sorted({o.description for group in by_image.values() for o in group if o.description})
    cache: dict[Path, ImageSegment] = {}
    out = []
    for o in subsample(members, limit, "dior-rsvg", split, "region-caption"):
        picture = _checked_image(o, by_image[o.image], cache)
        local = list(dict.fromkeys(x.description for x in by_image[o.image] if x.description))
        wanted = max(0, min_candidates - len(local))
        draw = rng("captions", o.index).sample(every, min(len(every), wanted + len(local)))
        pool = [d for d in local if d != o.description] + [d for d in draw if d not in local][:wanted]
        chosen, positives = with_distractors(o.description, pool, len(pool), "region-caption", o.index)
        out.append(CandidateQuery(f"obj{o.index}", Interleaved((picture, BoxSegment(o.box, "pixel"))),
                                  tuple(Interleaved((TextSegment(d),)) for d in chosen), positives))
    return out
