"""The test-split check: no training example may use an item that an RSMEB task evaluates on.

Test items are listed per dataset namespace (the ``DATASET`` of a ``"DATASET:item"`` source id) by the dataset readers
themselves, over the whole test split (not only a task's evaluated subsample) and over every task reading the same
images: the geo-localization tiles are RSVQA-LR images, so they share its namespace. A split whose files are absent
from the data root cannot be checked; the manifest says so rather than passing it silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from geovec.datasets import captions, gazetteer, geo, regions, rsvg, rsvqa
from geovec.errors import GeovecError


class UsesItems(Protocol):
    """What the check reads of an example (a ``TrainingExample`` or a lighter record of a JSONL line)."""

    task: str
    source_ids: Sequence[str]


class LeakError(GeovecError):
    """Training data uses items of an RSMEB test split."""


@dataclass(frozen=True)
class HeldOutSplit:
    dataset: str  # namespace of source ids
    tasks: tuple[str, ...]  # RSMEB tasks evaluating these items
    path: str  # under the data root; absent -> not checked
    items: Callable[[Path], Iterable[str]]


def _amfmn(dataset: str) -> Callable[[Path], list[str]]:
    return lambda root: [r.filename for r in captions.read_caption_split(root / "rs_caption_splits", dataset, "test")]


def _vqa_images(folder: str, prefix: str, split: str) -> Callable[[Path], set[str]]:
    def items(root: Path) -> set[str]:
        queries = rsvqa.read_rsvqa(root / folder, prefix, rsvqa.hr_images_dir(root / folder) if prefix == "USGS" else
                                   root / folder / "Images_LR", split)
        return {Path(q.query.segments[0].source).stem for q in queries}  # type: ignore[union-attr,arg-type]
    return items


GAZETTEER_TASKS = tuple(f"gazetteer-{d}{s}" for s in ("", "-within-country", "-held-out-country")
                        for d in gazetteer.DIRECTIONS)
HELD_OUT_SPLITS: tuple[HeldOutSplit, ...] = (
    HeldOutSplit("RSICD", ("rsicd-scene", "rsicd-retrieval", "rsicd-t2t", "rsicd-mosaic-region-caption",
                           "rsicd-mosaic-refexp"), "rs_caption_splits/rsicd", _amfmn("rsicd")),
    HeldOutSplit("RSITMD", ("rsitmd-t2t",), "rs_caption_splits/rsitmd", _amfmn("rsitmd")),
    HeldOutSplit("RSITMD", ("rsitmd-retrieval",), "RSITMD/dataset_RSITMD.json", lambda root: captions.read_karpathy(
        root / "RSITMD" / "dataset_RSITMD.json", root / "RSITMD" / "images").image_ids),
    HeldOutSplit("RSVQA-LR", ("rsvqa-lr-vqa",), "RSVQA-LR/LR_split_test_questions.json",
              _vqa_images("RSVQA-LR", "LR", "test")),
    HeldOutSplit("RSVQA-LR", ("rsvqa-lr-geoloc-image-to-point", "rsvqa-lr-geoloc-point-to-image"), "rsvqa_lr",
              lambda root: [t.id for t in geo.read_tiles(root / "rsvqa_lr")]),  # queries and candidates: all tiles
    HeldOutSplit("RSVQA-HR", ("rsvqa-hr-vqa",), "RSVQA-HR/USGS_split_test_questions.json",
              _vqa_images("RSVQA-HR", "USGS", "test")),
    HeldOutSplit("RSVQA-HR", ("rsvqa-hr-phili-vqa",), "RSVQA-HR/USGS_split_test_phili_questions.json",
              _vqa_images("RSVQA-HR", "USGS", "test_phili")),
    HeldOutSplit("DIOR-RSVG", ("dior-rsvg-refexp", "dior-rsvg-region-caption"), "DIOR-RSVG/test.txt",
              lambda root: [f"obj{o.index}" for o in rsvg.read_dior_rsvg(root / "DIOR-RSVG", "test")[0]]),
    HeldOutSplit("NEON OSBS (DeepForest)", ("osbs-tree-region",), "deepforest/OSBS_029.csv",
              lambda root: regions.read_box_csv(root / "deepforest" / "OSBS_029.csv")),
    HeldOutSplit("GeoNames", GAZETTEER_TASKS[:4], "geonames",  # the seeded 10 %: queries and candidates
                 lambda root: [str(c.geonameid) for c in gazetteer.read_gazetteer(root / "geonames").held_out]),
    HeldOutSplit("GeoNames", GAZETTEER_TASKS[4:], "geonames",  # the held-out country, whole
                 lambda root: [str(c.geonameid) for c in
                               gazetteer.read_gazetteer(root / "geonames").held_out_country]),
)


@dataclass(frozen=True)
class HeldOut:
    """The test items of some namespaces, with the tasks behind each item and the splits that could not be read."""

    items: dict[str, dict[str, tuple[str, ...]]]  # dataset -> item -> tasks
    absent: dict[str, list[str]]  # dataset -> paths of test splits not found under the root

    def of(self, dataset: str) -> frozenset[str]:
        return frozenset(self.items.get(dataset, {}))

    def summary(self) -> dict[str, dict]:
        return {d: {"test_items": len(self.items.get(d, {})), "absent": self.absent.get(d, [])}
                for d in sorted({*self.items, *self.absent})}


def held_out(root: Path, datasets: Iterable[str]) -> HeldOut:
    """Test items of every RSMEB split over ``datasets`` found under ``root``."""
    wanted = set(datasets)
    items: dict[str, dict[str, tuple[str, ...]]] = {}
    absent: dict[str, list[str]] = {}
    for split in HELD_OUT_SPLITS:
        if split.dataset not in wanted:
            continue
        if not (root / split.path).exists():
            absent.setdefault(split.dataset, []).append(split.path)
            continue
        found = items.setdefault(split.dataset, {})
        try:
            for item in split.items(root):
                found[item] = found.get(item, ()) + split.tasks
        except GeovecError as exc:
            raise GeovecError(f"leak check: cannot read the test split of {', '.join(split.tasks)}: {exc}") from None
    return HeldOut(items, absent)


def check_leaks(examples: Iterable[UsesItems], tests: HeldOut) -> None:
    """Raise ``LeakError`` naming every leaked item (and the tasks it belongs to) if any example uses one."""
    leaked: dict[str, set[str]] = {}
    for example in examples:
        for source_id in example.source_ids:
            dataset, _, item = source_id.partition(":")
            if not item:
                raise LeakError(f"example of {example.task}: source id {source_id!r} is not 'DATASET:item'")
            if item in tests.items.get(dataset, {}):
                leaked.setdefault(source_id, set()).add(example.task)
    if leaked:
        shown = sorted(leaked)[:20]
        lines = [f"{i} (test item of {', '.join(dict.fromkeys(tests.items[i.split(':')[0]][i.partition(':')[2]]))}; "
                 f"used by {', '.join(sorted(leaked[i]))})" for i in shown]
        more = f" and {len(leaked) - len(shown)} more" if len(leaked) > len(shown) else ""
        raise LeakError(f"training data uses {len(leaked)} RSMEB test item(s): {'; '.join(lines)}{more}")
