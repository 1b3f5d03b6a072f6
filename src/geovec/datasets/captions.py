"""Caption datasets: the AMFMN caption splits and the Karpathy-style JSON, as captioned images or retrieval splits.

* AMFMN (RSITMD / RSICD ``*_precomp``): ``{split}_caps.txt`` + ``{split}_filename.txt``. The caption file has one
  caption per line, five consecutive lines per image. The file-name file is either caption-aligned (one line per
  caption, the test splits) or image-aligned (one line per image, the train splits); both layouts are read.
* Karpathy-style JSON shipped with RSICD, UCM-Captions, Sydney-Captions and RSITMD
  (``{"images": [{"filename", "split", "sentences": [{"raw"}]}]}`` next to an image folder).

Captions are kept verbatim, typos included: published numbers are computed on them. In a ``RetrievalSplit`` empty
captions are skipped, and an image keeps its place as long as one caption is left.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from geovec.datasets.common import image, need_dir, read_json
from geovec.datasets.samples import DatasetError, RetrievalSplit
from geovec.inputs import Interleaved, TextSegment

CAPTIONS_PER_IMAGE = 5
_SCENE_PREFIX = re.compile(r"^([a-z]+)_\d+\.\w+$")


@dataclass(frozen=True)
class CaptionedImage:
    dataset: str
    split: str
    filename: str
    captions: tuple[str, ...]

    @property
    def scene(self) -> str | None:
        """Scene class carried by the file name (``airport_348.jpg`` -> ``airport``); ``None`` for plain numbers."""
        match = _SCENE_PREFIX.match(self.filename)
        return match.group(1) if match else None


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"caption split file not found: {path}")
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def read_caption_split(root: str | Path, dataset: str, split: str) -> list[CaptionedImage]:
    """Images of one split with their five captions, in file order. ``root`` holds ``{dataset}/{split}_caps.txt``."""
    folder = Path(root) / dataset
    captions = [c.strip() for c in _lines(folder / f"{split}_caps.txt")]
    filenames = [f.strip() for f in _lines(folder / f"{split}_filename.txt")]
    if len(filenames) == len(captions):  # caption-aligned: every block of five lines names one image
        for start in range(0, len(filenames), CAPTIONS_PER_IMAGE):
            if len(set(filenames[start:start + CAPTIONS_PER_IMAGE])) != 1:
                raise DatasetError(f"{folder}/{split}_filename.txt lines {start + 1}-{start + CAPTIONS_PER_IMAGE}: "
                                   f"expected {CAPTIONS_PER_IMAGE} lines naming the same image")
        filenames = filenames[::CAPTIONS_PER_IMAGE]
    if len(captions) != CAPTIONS_PER_IMAGE * len(filenames):
        raise DatasetError(f"{folder}: {split}_caps.txt has {len(captions)} captions but {split}_filename.txt lists "
                           f"{len(filenames)} images; expected {CAPTIONS_PER_IMAGE} captions per image")
    for line, filename in enumerate(filenames, start=1):
        if not filename:
            raise DatasetError(f"{folder}/{split}_filename.txt: image {line} has an empty file name")
    return [CaptionedImage(dataset, split, filename,
                           tuple(captions[i * CAPTIONS_PER_IMAGE:(i + 1) * CAPTIONS_PER_IMAGE]))
            for i, filename in enumerate(filenames)]


def _split(entries: Iterable[tuple[str, Path, list[str], str]], source: str) -> RetrievalSplit:
    """(image id, image file, captions, record name for errors) -> RetrievalSplit; images without text are dropped."""
    ids: list[str] = []
    images: list[Interleaved] = []
    texts: list[Interleaved] = []
    links: list[int] = []
    seen: dict[str, str] = {}
    for image_id, path, captions, record in entries:
        if image_id in seen:
            raise DatasetError(f"{record} is listed twice")
        seen[image_id] = record
        kept = [c.strip() for c in captions if isinstance(c, str) and c.strip()]
        if not kept:
            continue
        ids.append(image_id)
        images.append(Interleaved((image(path, record),)))
        texts += [Interleaved((TextSegment(c),)) for c in kept]
        links += [len(images) - 1] * len(kept)
    if not images:
        raise DatasetError(f"{source}: no image with a non-empty caption")
    return RetrievalSplit(tuple(ids), tuple(images), tuple(texts), tuple(links))


def read_karpathy(json_path: Path, images_dir: Path, split: str = "test") -> RetrievalSplit:
    """The ``split`` images of a Karpathy-style caption JSON; image files are looked up in ``images_dir``."""
    data = read_json(json_path)
    name = json_path.name
    records = data.get("images") if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise DatasetError(f"{name}: expected an object with an 'images' list")
    need_dir(images_dir)

    def entries():
        for position, record in enumerate(records):
            if not isinstance(record, dict) or not isinstance(record.get("filename"), str):
                raise DatasetError(f"{name}: image record {position} has no 'filename'")
            if record.get("split") != split:
                continue
            label = f"{name}: image {record['filename']!r}"
            sentences = record.get("sentences")
            if not isinstance(sentences, list) or any(not isinstance(s, dict) for s in sentences):
                raise DatasetError(f"{label}: 'sentences' must be a list of objects with 'raw'")
            yield record["filename"], images_dir / record["filename"], [s.get("raw") for s in sentences], label

    return _split(entries(), f"{name} (split {split!r})")


def read_amfmn_split(caption_root: Path, dataset: str, images_dir: Path, split: str = "test") -> RetrievalSplit:
    """An AMFMN caption split (``caption_root/dataset/{split}_caps.txt``) with its pixels in ``images_dir``."""
    records = read_caption_split(caption_root, dataset, split)
    need_dir(images_dir)
    listing = f"{dataset}/{split}_filename.txt"
    entries = ((r.filename, images_dir / r.filename, list(r.captions), f"{listing}: image {r.filename!r}")
               for r in records)
    return _split(entries, listing)
