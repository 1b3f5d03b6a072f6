"""RSITMD / RSICD caption splits as published with AMFMN (``*_precomp``: ``{split}_caps.txt`` + ``{split}_filename.txt``).

The caption file has one caption per line, five consecutive lines per image. The file-name file is either
caption-aligned (one line per caption, the test splits) or image-aligned (one line per image, the train splits);
both layouts are read. Captions are kept verbatim, typos included: published numbers are computed on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from geovec.errors import GeovecError

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
        raise GeovecError(f"caption split file not found: {path}")
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def read_caption_split(root: str | Path, dataset: str, split: str) -> list[CaptionedImage]:
    """Images of one split with their five captions, in file order. ``root`` holds ``{dataset}/{split}_caps.txt``."""
    folder = Path(root) / dataset
    captions = [c.strip() for c in _lines(folder / f"{split}_caps.txt")]
    filenames = [f.strip() for f in _lines(folder / f"{split}_filename.txt")]
    if len(filenames) == len(captions):  # caption-aligned: every block of five lines names one image
        for start in range(0, len(filenames), CAPTIONS_PER_IMAGE):
            if len(set(filenames[start:start + CAPTIONS_PER_IMAGE])) != 1:
                raise GeovecError(f"{folder}/{split}_filename.txt lines {start + 1}-{start + CAPTIONS_PER_IMAGE}: "
                                  f"expected {CAPTIONS_PER_IMAGE} lines naming the same image")
        filenames = filenames[::CAPTIONS_PER_IMAGE]
    if len(captions) != CAPTIONS_PER_IMAGE * len(filenames):
        raise GeovecError(f"{folder}: {split}_caps.txt has {len(captions)} captions but {split}_filename.txt lists "
                          f"{len(filenames)} images; expected {CAPTIONS_PER_IMAGE} captions per image")
    for line, filename in enumerate(filenames, start=1):
        if not filename:
            raise GeovecError(f"{folder}/{split}_filename.txt: image {line} has an empty file name")
    return [CaptionedImage(dataset, split, filename,
                           tuple(captions[i * CAPTIONS_PER_IMAGE:(i + 1) * CAPTIONS_PER_IMAGE]))
            for i, filename in enumerate(filenames)]
