"""Searching images represented by descriptions: one index item per description, one result per image.

A description index (``geovec index descriptions``) records ``"represents": "descriptions"`` in its model record,
so every reader knows its hits are descriptions that must be grouped by image. An image scores the maximum over
its descriptions (the benchmark's ``max`` aggregation): in a ranked list of descriptions the first one of an image
is its best, so the top images are exactly the first distinct images, and enough descriptions are fetched to see
``top_k`` of them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from geovec.errors import GeovecError, GeovecInputError
from geovec.index import GeoFilter, Hit, Record
from geovec.ingest import IndexItem
from geovec.ingest.thumbnails import attach_source_thumbnails
from geovec.inputs import as_input
from geovec.t2t.corpus import Description

if TYPE_CHECKING:
    from geovec.index import VectorStore
    from geovec.search_request import SearchRequest

REPRESENTS = "represents"
DESCRIPTIONS = "descriptions"  # the value of ``model[REPRESENTS]`` in a description index
MAX_CAPTIONS = 3  # matched descriptions shown per image


def is_description_index(model: dict | None) -> bool:
    return (model or {}).get(REPRESENTS) == DESCRIPTIONS


def description_id(image_id: str, n: int) -> str:
    """Stable while the corpus keeps its order, so re-indexing the same corpus adds nothing."""
    return f"{image_id}#{n}"


def image_of(hit: Hit) -> str:
    """The image a description hit belongs to (its id without the ``#n`` suffix if ``extra`` lacks it)."""
    return hit.record.extra.get("image_id") or hit.id.rsplit("#", 1)[0]


def description_items(corpus: Sequence[Description], images_root: str | Path | None = None) -> list[IndexItem]:
    """One index item per description; ``images_root / image_id`` becomes the source so front ends show the image."""
    position: Counter[str] = Counter()
    items = []
    for d in corpus:
        n, position[d.image_id] = position[d.image_id], position[d.image_id] + 1
        source = None if images_root is None else str(Path(images_root) / d.image_id)
        extra = {"image_id": d.image_id, "kind": d.kind, "model": d.model, "prompt_version": d.prompt_version}
        record = Record(id=description_id(d.image_id, n), source=source, captions=[d.text], extra=extra)
        items.append(IndexItem(record, (as_input(d.text),)))
    return items


def attach_thumbnails(items: Sequence[IndexItem], index_path: Path) -> int:
    """Give each image with a readable ``source`` a thumbnail in the index folder (the web page shows it) and point
    its descriptions' records at it; returns how many images got one. Existing thumbnails are kept (reruns)."""
    return attach_source_thumbnails([item.record for item in items], index_path,
                                    key=lambda record: record.extra["image_id"])


def check_represents(model: dict | None, location: object, descriptions: bool) -> None:
    """Refuse to mix descriptions and other items in one index: their hits could not be read the same way."""
    if is_description_index(model) == descriptions:
        return
    if descriptions:
        raise GeovecError(f"index {location} holds images, not descriptions: put the description corpus in "
                          "its own index")
    raise GeovecError(f"index {location} holds image descriptions (built by `geovec index descriptions`): "
                      "add only description corpora to it")


def check_text_query(request: SearchRequest) -> None:
    """Only text can be compared with descriptions; an image, box or place query has nothing to match."""
    for name in ("image", "box", "point"):
        if getattr(request, name) is not None:
            raise GeovecInputError(name, "this index represents images by text descriptions: search it with "
                                         "a text query only")


def group_by_image(hits: Sequence[Hit], top_k: int) -> list[Hit]:
    """The ``top_k`` best images among description hits, scored by their best description (ties keep input order).

    ``captions`` are the image's matched descriptions, best first (at most ``MAX_CAPTIONS``); ``extra["matched"]``
    counts all of its descriptions among ``hits``.
    """
    groups: dict[str, list[Hit]] = {}
    for hit in sorted(hits, key=lambda h: -h.score):  # stable: equal scores keep their order
        groups.setdefault(image_of(hit), []).append(hit)
    images = []
    for image_id, matched in list(groups.items())[:top_k]:
        best = matched[0]
        extra = {"image_id": image_id, "matched": len(matched), "best_description_id": best.id}
        if best.record.extra.get("thumbnail"):
            extra["thumbnail"] = best.record.extra["thumbnail"]
        captions = [caption for hit in matched[:MAX_CAPTIONS] for caption in hit.record.captions[:1]]
        images.append(Hit(image_id, best.score, replace(best.record, id=image_id, captions=captions, extra=extra)))
    return images


class DescriptionSearch:
    """Image search over an open description index; remembers how many descriptions an image has at most."""

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self._per_image: int | None = None

    def per_image(self) -> int:
        """The most descriptions any image has, counted once (a later addition only costs an extra fetch)."""
        if self._per_image is None:
            counts = Counter(id.rsplit("#", 1)[0] for id in self.store.ids())
            self._per_image = max(counts.values(), default=1)
        return self._per_image

    def search(self, vector: np.ndarray, top_k: int, filter: GeoFilter | None = None,
               exact: bool | None = None) -> list[Hit]:
        """Fetch ``top_k`` x (descriptions per image) descriptions, doubling until ``top_k`` images or all are seen."""
        fetch, total = top_k * self.per_image(), None
        while True:
            hits = self.store.search(vector, k=fetch, filter=filter, exact=exact)
            images = group_by_image(hits, top_k)
            if len(images) >= top_k or len(hits) < fetch:
                return images
            total = len(self.store) if total is None else total
            if fetch >= total:
                return images
            fetch *= 2
