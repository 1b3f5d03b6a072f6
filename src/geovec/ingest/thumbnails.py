"""Thumbnails in an index folder: what the web page shows for an item (it never serves a source file itself).

Kept apart from ``geovec.ingest.archive`` so indexes of plain images (the quickstart, description corpora) get
thumbnails without the raster stack (rasterio).
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image as PILImage

from geovec.fileio import atomic_write
from geovec.index import Record

THUMB_SIZE = 128
THUMBS_DIR = "thumbs"


def thumbnail_jpeg(pixels: np.ndarray) -> bytes:
    """A small JPEG of the chip (made where the pixels are, so a cluster ships bytes, not pixels, to the index)."""
    image = PILImage.fromarray(pixels)
    image.thumbnail((THUMB_SIZE, THUMB_SIZE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def write_thumbnail(index_path: Path, id: str, jpeg: bytes) -> str:
    """Write a chip's JPEG atomically; returns its path relative to the index folder."""
    relative = f"{THUMBS_DIR}/{id}.jpg"
    (index_path / THUMBS_DIR).mkdir(exist_ok=True)
    atomic_write(index_path / relative, lambda temp: Path(temp).write_bytes(jpeg))
    return relative


def attach_source_thumbnails(records: Iterable[Record], index_path: Path,
                             key: Callable[[Record], str] = lambda record: record.id) -> int:
    """Give each record whose ``source`` is a readable image a thumbnail in the index folder (the web page shows
    it; it never serves the source itself) and point ``extra["thumbnail"]`` at it. Records with the same ``key``
    (descriptions of one image) share one; existing thumbnails are kept (reruns). Returns how many keys have one."""
    made: dict[str, str | None] = {}
    for record in records:
        name = key(record)
        if name not in made:
            digest = hashlib.sha1(name.encode()).hexdigest()[:8]
            stem = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:60]}-{digest}"  # ids may hold "/"
            made[name] = _source_thumbnail(index_path, stem, record.source)
        if made[name]:
            record.extra["thumbnail"] = made[name]
    return sum(1 for thumbnail in made.values() if thumbnail)


def _source_thumbnail(index_path: Path, stem: str, source: str | None) -> str | None:
    if (index_path / THUMBS_DIR / f"{stem}.jpg").is_file():
        return f"{THUMBS_DIR}/{stem}.jpg"
    if source is None:
        return None
    try:
        with PILImage.open(source) as picture:
            pixels = np.asarray(picture.convert("RGB"))
    except (OSError, PILImage.DecompressionBombError):  # UnidentifiedImageError is an OSError
        return None  # no picture to show; the item is still searchable
    return write_thumbnail(index_path, stem, thumbnail_jpeg(pixels))
