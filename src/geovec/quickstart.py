"""The main job on the embedded default: index real remote-sensing images offline, then answer a text search.

It embeds the pixels of the 1,093 RSICD test images from the shared data folder with ``geovec-mini``, the encoder
that ships inside the package (trained on the RSICD *train* split only, so these images were never seen), and
keeps each image's five human captions on its record for display. Re-running it resumes or is a no-op; nothing
is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from geovec.config import data_dir
from geovec.datasets import read_caption_split
from geovec.errors import GeovecError
from geovec.index import Record
from geovec.ingest import IndexItem
from geovec.inputs import ImageSegment

QUICKSTART_MODEL = "geovec-mini"
QUICKSTART_QUERY = "many airplanes parked next to the terminal of an airport"


def quickstart_items(data: Path | None = None) -> list[IndexItem]:
    """One item per RSICD test image: its pixels to embed, its captions, scene class and file on the record."""
    data = data or data_dir()
    splits, images = data / "rs_caption_splits", data / "rsicd" / "images"
    if not splits.is_dir() or not images.is_dir():
        raise GeovecError(f"shared data not found at {data} (needs rs_caption_splits/ and rsicd/images/); set "
                          "GEOVEC_DATA to the shared data folder")
    items = []
    for image in read_caption_split(splits, "rsicd", "test"):
        pixels = images / image.filename
        record = Record(id=f"rsicd/{image.filename}", source=str(pixels), captions=list(image.captions),
                        extra={"dataset": "rsicd", "split": "test", "scene": image.scene})
        items.append(IndexItem(record, (ImageSegment(pixels),)))
    return items
