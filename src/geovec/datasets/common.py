"""Helpers every dataset reader shares: seeded sampling, candidate lists with a hidden positive, checked files and images.

All randomness goes through ``rng(*key)``: a ``random.Random`` seeded with the string ``"{SEED}:{key...}"``. String
seeds are hashed with SHA-512 by ``random``, so the draw is the same on every platform, Python version >= 3.2 and
``PYTHONHASHSEED``; keying by task purpose and record id keeps one query's draw independent of the others (adding or
removing a query does not reshuffle the rest).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from geovec.datasets.samples import DatasetError
from geovec.errors import GeovecInputError
from geovec.inputs import ImageSegment

T = TypeVar("T")
SEED = 0  # bump only together with the revision of every task that samples
IMAGE_SUFFIXES = frozenset({".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp"})


def rng(*key: object) -> random.Random:
    return random.Random(":".join(map(str, (SEED, *key))))


def subsample(items: Sequence[T], limit: int | None, *key: object) -> list[T]:
    """At most ``limit`` items, a seeded sample kept in the original order (all of them when there are fewer)."""
    if limit is None or len(items) <= limit:
        return list(items)
    keep = sorted(rng("subsample", *key).sample(range(len(items)), limit))
    return [items[i] for i in keep]


def with_distractors(positive: T, pool: Sequence[T], count: int, *key: object,
                     same: Callable[[T, T], bool] | None = None) -> tuple[tuple[T, ...], frozenset[int]]:
    """``positive`` plus ``count`` seeded picks from ``pool`` (capped by its size), shuffled.

    Shuffling matters: metrics break ties towards the lower index, so a fixed slot for the answer would reward a
    model that scores everything alike. Candidates equal to the positive (``same``) count as positives too.
    """
    draw = rng("candidates", *key)
    chosen = [positive, *draw.sample(list(pool), min(count, len(pool)))]
    draw.shuffle(chosen)
    same = same or (lambda a, b: a == b)
    return tuple(chosen), frozenset(i for i, item in enumerate(chosen) if same(item, positive))


def where(path: Path, root: Path) -> str:
    """``path`` as a record name in messages: from the dataset folder ``root`` on (``AID/Airport/airport_1.jpg``)."""
    try:
        return path.relative_to(root.parent).as_posix()
    except ValueError:
        return str(path)


def need_file(path: Path) -> Path:
    """Missing files are named in full, so the user sees where they were looked for."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    return path


def need_dir(path: Path) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: folder not found")
    return path


def read_json(path: Path) -> Any:
    try:
        return json.loads(need_file(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name}: not valid JSON ({exc})") from None


def image(path: Path, record: str) -> ImageSegment:
    """An image segment (header checked, pixels not decoded); failures name the file and the record using it."""
    try:
        return ImageSegment(path)
    except GeovecInputError as exc:
        raise DatasetError(f"{record}: {exc.problem}") from None


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name, hidden files skipped."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))

