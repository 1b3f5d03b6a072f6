"""Mosaic scenes of captioned tiles: region-level queries whose boxes are exactly known, built from caption splits.

A mosaic pastes ``CELL``-pixel tiles (RSICD images, each of another scene class) onto a grid: ``2x2``, ``3x3`` or an
uneven ``big-*`` layout (one tile over 2x2 cells of a 3x3 grid, five small ones). Each tile keeps its exact pixel
box, its human captions and a place word read off the layout ("top left", "centre", "bottom right"...), so a box,
a caption or a spatial expression ("the airport in the top left") points at exactly one tile. Everything is seeded
(``geovec.datasets.common.rng``): the same split, layouts and key give the same scenes, pixel for pixel.

The RSMEB tasks built here (``rsicd-mosaic-region-caption``, ``rsicd-mosaic-refexp``) also carry two reference rows
per query (``Reference``): the box dropped (box-blind) and the region's own pixels alone. Training scenes are the
same mosaics over the train split, written once as files (``write_scene``) so that examples can name them.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from geovec.datasets.captions import CaptionedImage, read_caption_split
from geovec.datasets.common import rng, with_distractors
from geovec.datasets.samples import CandidateQuery, DatasetError, Reference
from geovec.datasets.scenes import class_name
from geovec.fileio import atomic_write
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, TextSegment

Box = tuple[int, int, int, int]
CELL = 224  # RSICD's own image size: a tile of one cell is shown at its native resolution
Cell = tuple[int, int, int]  # column, row, span (in grid cells)


def _grid(n: int) -> tuple[int, tuple[Cell, ...]]:
    return n, tuple((col, row, 1) for row in range(n) for col in range(n))


def _big(col: int, row: int) -> tuple[int, tuple[Cell, ...]]:
    """A 3x3 grid with one tile over the 2x2 cells from (col, row) and one small tile in each of the 5 others."""
    covered = {(col + dx, row + dy) for dx in (0, 1) for dy in (0, 1)}
    return 3, ((col, row, 2), *((c, r, 1) for r in range(3) for c in range(3) if (c, r) not in covered))


LAYOUTS: dict[str, tuple[int, tuple[Cell, ...]]] = {
    "2x2": _grid(2), "3x3": _grid(3), "big-top-left": _big(0, 0), "big-top-right": _big(1, 0),
    "big-bottom-left": _big(0, 1), "big-bottom-right": _big(1, 1)}
PHRASES = {"top left": "in the top left", "top": "at the top", "top right": "in the top right",
           "left": "on the left", "centre": "in the centre", "right": "on the right",
           "bottom left": "in the bottom left", "bottom": "at the bottom", "bottom right": "in the bottom right"}


def place_word(box: Box, size: int) -> str:
    """Where a box lies in a square scene, from its centre: thirds-like bands (0.4 / 0.6) on each axis."""
    cx, cy = (box[0] + box[2]) / 2 / size, (box[1] + box[3]) / 2 / size
    row = "top" if cy < 0.4 else "bottom" if cy > 0.6 else ""
    col = "left" if cx < 0.4 else "right" if cx > 0.6 else ""
    return " ".join(w for w in (row, col) if w) or "centre"


@dataclass(frozen=True)
class MosaicTile:
    image: CaptionedImage
    box: Box  # pixels of the scene the tile fills, exactly
    place: str  # "top left", "centre"...

    @property
    def captions(self) -> tuple[str, ...]:
        return tuple(c for c in (c.strip() for c in self.image.captions) if c)

    @property
    def label(self) -> str:
        return class_name(self.image.scene or "")

    def expression(self) -> str:
        """A spatial referring expression: "the airport in the top left"."""
        return f"the {self.label} {PHRASES[self.place]}"


@dataclass(frozen=True)
class Mosaic:
    id: str
    layout: str
    size: int  # the scene is size x size pixels
    tiles: tuple[MosaicTile, ...]

    @property
    def sources(self) -> tuple[str, ...]:
        """The file names of every tile: what the scene shows, hence what the leak check must see."""
        return tuple(t.image.filename for t in self.tiles)

    def digest(self) -> str:
        """Identity of the pixels: layout, size and tiles (a cached file is named by it, so it is never stale)."""
        text = f"{self.layout}:{self.size}:" + ",".join(f"{t.image.filename}@{t.box}" for t in self.tiles)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def render(self, images_dir: Path) -> Image.Image:
        scene = Image.new("RGB", (self.size, self.size))
        for tile in self.tiles:
            path = images_dir / tile.image.filename
            try:
                with Image.open(path) as im:
                    x1, y1, x2, y2 = tile.box
                    scene.paste(im.convert("RGB").resize((x2 - x1, y2 - y1), Image.BICUBIC), (x1, y1))
            except (UnidentifiedImageError, OSError) as exc:
                raise DatasetError(f"mosaic {self.id}: tile image {path} cannot be read ({exc})") from None
        return scene


def _boxes(layout: str, cell: int) -> list[Box]:
    _, cells = LAYOUTS[layout]
    return [(c * cell, r * cell, (c + s) * cell, (r + s) * cell) for c, r, s in cells]


def _fill(queue: deque[CaptionedImage], count: int) -> list[CaptionedImage] | None:
    """``count`` images of distinct classes from the front of ``queue`` (skipped ones stay in front, in order)."""
    chosen: list[CaptionedImage] = []
    skipped: list[CaptionedImage] = []
    while queue and len(chosen) < count:
        item = queue.popleft()
        (skipped if any(c.scene == item.scene for c in chosen) else chosen).append(item)
    if len(chosen) < count:
        queue.extendleft(reversed(chosen + skipped))
        return None
    queue.extendleft(reversed(skipped))
    return chosen


def compose(pool: Sequence[CaptionedImage], layouts: Sequence[str], *key: object, cell: int = CELL,
            scenes: int | None = None) -> list[Mosaic]:
    """Seeded mosaics over ``pool``: every image at most once; within a scene, every tile of another class.

    Only images with a scene class and a non-empty caption are used. Layouts are drawn per scene; one that can no
    longer be filled from what is left is dropped, so building ends when no layout fits (or at ``scenes``).
    """
    unknown = [name for name in layouts if name not in LAYOUTS]
    if unknown or not layouts:
        raise DatasetError(f"mosaics: unknown layout(s) {unknown or layouts}; expected some of {', '.join(LAYOUTS)}")
    usable = [r for r in pool if r.scene and any(c.strip() for c in r.captions)]
    draw = rng("mosaic", *key)
    draw.shuffle(usable)
    queue, left, out = deque(usable), list(layouts), []
    while left and (scenes is None or len(out) < scenes):
        layout = draw.choice(left)
        boxes = _boxes(layout, cell)
        chosen = _fill(queue, len(boxes))
        if chosen is None:
            left.remove(layout)
            continue
        size = LAYOUTS[layout][0] * cell
        out.append(Mosaic(f"{'-'.join(map(str, key))}-{len(out):05d}", layout, size,
                          tuple(MosaicTile(image, box, place_word(box, size)) for image, box in zip(chosen, boxes))))
    if not out:
        classes = len({r.scene for r in usable})
        raise DatasetError(f"mosaics: {len(usable)} captioned images of {classes} scene classes fill no "
                           f"{' or '.join(layouts)} scene (a scene needs one class per tile)")
    return out


def write_scene(mosaic: Mosaic, images_dir: Path, folder: Path) -> Path:
    """The scene as a JPEG file in ``folder`` (a cache: written once, named by its digest, reused after)."""
    path = folder / f"{mosaic.id}-{mosaic.digest()}.jpg"
    if not path.is_file():
        scene = mosaic.render(images_dir)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda temp: scene.save(temp, format="JPEG", quality=95))
        except OSError as exc:
            raise DatasetError(f"mosaic cache {folder}: cannot write {path.name} ({exc.strerror or exc})") from None
    return path


# ------------------------------------------------------------------------------------------------ RSMEB tasks
TILES_PER_SCENE = 4
OTHER_CAPTIONS = 6  # region-caption candidates besides one caption per tile (10 in all, as in issue 23)


def test_mosaics(caption_root: Path, dataset: str, images_dir: Path, split: str, limit: int | None,
                 key: str) -> tuple[list[Mosaic], list[CaptionedImage]]:
    """2x2 scenes of ``CELL``-pixel tiles (448 px) over a test split, enough for ``limit`` queries (4 per scene)."""
    records = read_caption_split(caption_root, dataset, split)
    scenes = None if limit is None else -(-limit // TILES_PER_SCENE)
    return compose(records, ["2x2"], key, split, scenes=scenes), records


Pictures = Callable[[Mosaic], tuple[ImageSegment, list[ImageSegment] | None]]  # scene, tiles (None: no references)


def _pictures(mosaic: Mosaic, images_dir: Path) -> tuple[ImageSegment, list[ImageSegment]]:
    """The scene in memory and each tile's own pixels cut from it."""
    pixels = np.asarray(mosaic.render(images_dir))
    tiles = [ImageSegment(np.ascontiguousarray(pixels[y1:y2, x1:x2])) for x1, y1, x2, y2 in
             (t.box for t in mosaic.tiles)]
    return ImageSegment(pixels), tiles


def region_caption_queries(caption_root: Path, dataset: str, images_dir: Path, split: str = "test",
                           limit: int | None = None) -> list[CandidateQuery]:
    """Query = scene + one tile's box; candidates = one caption of each tile + ``OTHER_CAPTIONS`` of other images.

    References: ``box_blind`` (the scene alone), ``region_alone`` (the tile's pixels alone), same candidates.
    """
    key = f"{dataset}-mosaic-region-caption"
    mosaics, records = test_mosaics(caption_root, dataset, images_dir, split, limit, key)
    return region_caption_over(mosaics, records, key, lambda m: _pictures(m, images_dir))[:limit]


def region_caption_over(mosaics: Sequence[Mosaic], records: Sequence[CaptionedImage], key: str,
                        pictures: Pictures) -> list[CandidateQuery]:
    """``region_caption_queries`` over given mosaics (``records``: where the other captions come from)."""
    every = [(r.filename, c.strip()) for r in records for c in r.captions if c.strip()]
    out = []
    for mosaic in mosaics:
        scene, tiles = pictures(mosaic)
        draw = rng(key, "captions", mosaic.id)
        shown = [draw.choice(t.captions) for t in mosaic.tiles]
        for k, tile in enumerate(mosaic.tiles):
            own = set(tile.captions)
            others = [c for c in shown[:k] + shown[k + 1:] if c not in own]
            outside = [c for name, c in every if name not in mosaic.sources and c not in own and c not in others]
            pool = others + rng(key, "others", mosaic.id, k).sample(outside, min(OTHER_CAPTIONS, len(outside)))
            chosen, positives = with_distractors(shown[k], pool, len(pool), key, mosaic.id, k,
                                                 same=lambda text, _, own=own: text in own)
            candidates = tuple(Interleaved((TextSegment(c),)) for c in chosen)
            references = () if tiles is None else (Reference("box_blind", Interleaved((scene,))),
                                                   Reference("region_alone", Interleaved((tiles[k],))))
            out.append(CandidateQuery(f"{mosaic.id}#{k}", Interleaved((scene, BoxSegment(tile.box, "pixel"))),
                                      candidates, positives, references))
    return out


def refexp_queries(caption_root: Path, dataset: str, images_dir: Path, split: str = "test",
                   limit: int | None = None) -> list[CandidateQuery]:
    """Query = scene + a human caption of one tile; candidates = the scene with each tile's box (chance 25%).

    References: ``box_blind`` (the scene alone as every candidate: ties, so chance), ``region_alone`` (each tile's
    pixels alone as the candidates).
    """
    key = f"{dataset}-mosaic-refexp"
    mosaics, _ = test_mosaics(caption_root, dataset, images_dir, split, limit, key)
    return refexp_over(mosaics, key, lambda m: _pictures(m, images_dir))[:limit]


def refexp_over(mosaics: Sequence[Mosaic], key: str, pictures: Pictures) -> list[CandidateQuery]:
    """``refexp_queries`` over given mosaics."""
    out = []
    for mosaic in mosaics:
        scene, tiles = pictures(mosaic)
        regions = [Interleaved((scene, BoxSegment(t.box, "pixel"))) for t in mosaic.tiles]
        for k, tile in enumerate(mosaic.tiles):
            caption = rng(key, "caption", mosaic.id, k).choice(tile.captions)
            positives = frozenset(i for i, t in enumerate(mosaic.tiles) if caption in t.captions)
            query = Interleaved((scene, TextSegment(caption)))
            references = () if tiles is None else (
                Reference("box_blind", query, tuple(Interleaved((scene,)) for _ in regions)),
                Reference("region_alone", query, tuple(Interleaved((t,)) for t in tiles)))
            out.append(CandidateQuery(f"{mosaic.id}#{k}", query, tuple(regions), positives, references))
    return out
