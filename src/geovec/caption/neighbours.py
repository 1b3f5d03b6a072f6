"""Describing images by their nearest captioned neighbours: a description corpus from pixels, with no VLM.

Each target image is embedded with an image model; its ``k`` most similar images in a captioned reference set (e.g.
RSICD train) are found, and their captions become its descriptions (nearest-neighbour captioning, Devlin et al.
2015). The target's own captions are never read, so this is an image-based corpus: the text-to-text rows it gives
are results (of a retrieval captioner, not of a VLM), not the oracle. A target that is itself in the reference is
skipped: describing it by its own captions would be the oracle again. An unreadable target is reported with the
reason and the others are described.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from geovec.errors import GeovecInputError
from geovec.inputs import ImageSegment, Interleaved
from geovec.models.base import Embedder
from geovec.models.cache import EmbeddingCache
from geovec.t2t.corpus import Description

NEIGHBOURS_VERSION = "neighbours-v1"
CHUNK = 1024  # targets scored against the whole reference at a time


@dataclass
class NeighbourReport:
    targets: int  # images described
    skipped_in_reference: int  # targets left out because the reference already holds them
    descriptions: int
    failed: dict[str, str] = field(default_factory=dict)  # unreadable target image id -> reason


def neighbour_corpus(targets: Sequence[tuple[str, Path]], reference: Sequence[Description], reference_images: Path,
                     embedder: Embedder, *, k: int = 3, instruction: str | None = None, reference_name: str = "",
                     cache: EmbeddingCache | None = None, batch_size: int = 32,
                     show_progress: bool = True) -> tuple[list[Description], NeighbourReport]:
    """Descriptions of every target (``(image id, file)``) by the captions of its ``k`` nearest reference images,
    nearest first, identical texts kept once. ``instruction`` is how the model embeds images (its item instruction).
    """
    if k < 1:
        raise GeovecInputError("k", f"must be at least 1, got {k}")
    captions: dict[str, list[str]] = {}
    for description in reference:
        captions.setdefault(description.image_id, []).append(description.text)
    if not captions:
        raise GeovecInputError("reference", "the reference corpus is empty")
    reference_ids = list(captions)
    reference_files = [Path(reference_images) / image_id for image_id in reference_ids]
    absent = [image_id for image_id, path in zip(reference_ids, reference_files) if not path.is_file()]
    if absent:
        raise GeovecInputError("reference-images", f"{len(absent)} reference images are not in {reference_images}, "
                                                   f"e.g. {absent[0]!r}")
    kept = [(image_id, path) for image_id, path in targets if image_id not in captions]
    if not kept:
        raise GeovecInputError("IMAGES", "every target image is in the reference corpus: nothing to describe")
    failed = {image_id: reason for image_id, path in kept if (reason := _unreadable(path))}
    skipped = len(targets) - len(kept)
    kept = [(image_id, path) for image_id, path in kept if image_id not in failed]
    if not kept:
        first = next(iter(failed))
        raise GeovecInputError("IMAGES", f"none of the {len(failed)} images can be read, e.g. {first}: {failed[first]}")

    def embed(files: Sequence[Path]) -> np.ndarray:
        items = [Interleaved((ImageSegment(str(path)),), instruction) for path in files]
        if cache is not None:
            return cache.encode(embedder, items, batch_size=batch_size, show_progress=show_progress)
        return embedder.encode(items, batch_size=batch_size, show_progress=show_progress)

    reference_vectors = embed(reference_files)
    target_vectors = embed([path for _, path in kept])
    version = f"{NEIGHBOURS_VERSION}:k={k}" + (f":reference={reference_name}" if reference_name else "")
    model = f"neighbours:{embedder.name}"
    corpus: list[Description] = []
    nearest = min(k, len(reference_ids))
    for start in range(0, len(kept), CHUNK):
        similarity = target_vectors[start:start + CHUNK] @ reference_vectors.T
        top = np.argpartition(-similarity, nearest - 1, axis=1)[:, :nearest]
        for row, (image_id, _) in enumerate(kept[start:start + CHUNK]):
            ranked = top[row][np.argsort(-similarity[row, top[row]], kind="stable")]
            seen: set[str] = set()
            for rank, neighbour in enumerate(ranked, start=1):
                for text in captions[reference_ids[neighbour]]:
                    if text not in seen:
                        seen.add(text)
                        corpus.append(Description(image_id, f"neighbour-{rank}", text, model, version))
    return corpus, NeighbourReport(len(kept), skipped, len(corpus), failed)


def _unreadable(path: Path) -> str | None:
    """Why an image cannot be read (its header and structure checked, not decoded), or ``None``."""
    try:
        with Image.open(path) as picture:
            picture.verify()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"cannot read image: {exc}"
    return None
