"""The main job on the embedded default: index real remote-sensing captions offline, then answer a search.

It indexes the test splits of RSITMD (452 images) and RSICD (1,093 images, with their real pixels) from the shared
data folder with the offline ``minilm`` model: each image is represented by the normalised mean embedding of its
five human captions, and results link to the image file where the pixels are present. Re-running it resumes or
is a no-op; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from geovec.config import data_dir
from geovec.datasets import read_caption_split
from geovec.errors import GeovecError
from geovec.index import Record
from geovec.ingest import IndexItem
from geovec.inputs import as_input

QUICKSTART_DATASETS = ("rsitmd", "rsicd")
QUICKSTART_QUERY = "many airplanes parked next to the terminal of an airport"


def quickstart_items(data: Path | None = None) -> list[IndexItem]:
    """One item per test image of RSITMD and RSICD, carrying its captions, scene class and pixel path."""
    data = data or data_dir()
    splits = data / "rs_caption_splits"
    if not splits.is_dir():
        raise GeovecError(f"shared data not found at {data} (no rs_caption_splits/); set GEOVEC_DATA to the "
                          "shared data folder")
    items = []
    for dataset in QUICKSTART_DATASETS:
        for image in read_caption_split(splits, dataset, "test"):
            pixels = data / dataset / "images" / image.filename
            has_pixels = pixels.is_file()
            record = Record(
                id=f"{dataset}/{image.filename}",
                source=str(pixels) if has_pixels else f"{dataset}:{image.filename}",
                captions=list(image.captions),
                extra={"dataset": dataset, "split": "test", "scene": image.scene, "pixels": has_pixels},
            )
            items.append(IndexItem(record, tuple(as_input(caption) for caption in image.captions if caption)))
    return items
