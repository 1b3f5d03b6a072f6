"""Scene classification posed as retrieval: query = an image, candidates = every class name of the dataset as text.

Reads the folder-per-class layouts the datasets are published in (UC Merced, AID, NWPU-RESISC45, EuroSAT, WHU-RS19,
RSSCN7, PatternNet) and RSICD, whose file names carry the scene class (``airport_348.jpg``).
"""

from __future__ import annotations

import re
from pathlib import Path

from geovec.datasets.captions import read_caption_split
from geovec.datasets.common import image, image_files, need_dir, subsample, where
from geovec.datasets.samples import CandidateQuery, DatasetError
from geovec.inputs import Interleaved, TextSegment

# Folder names written as one lowercase word, which no rule can split (keys: lowercase, separators removed).
READABLE = {
    "bareland": "bare land", "baseballdiamond": "baseball diamond", "baseballfield": "baseball field",
    "basketballcourt": "basketball court", "denseresidential": "dense residential", "golfcourse": "golf course",
    "golffield": "golf field", "groundtrackfield": "ground track field", "mediumresidential": "medium residential",
    "mobilehomepark": "mobile home park", "parkinglot": "parking lot", "railwaystation": "railway station",
    "sparseresidential": "sparse residential", "storagetank": "storage tank", "storagetanks": "storage tanks",
    "tenniscourt": "tennis court", "trainstation": "train station", "footballfield": "football field",
    "sealake": "sea or lake", "riverlake": "river or lake", "resident": "residential",
}
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def class_name(folder: str) -> str:
    """Readable class text: ``dense_residential``, ``DenseResidential``, ``denseresidential`` -> "dense residential"."""
    key = re.sub(r"[\s_\-]+", "", folder).lower()
    if key in READABLE:
        return READABLE[key]
    return " ".join(_CAMEL.sub(" ", re.sub(r"[_\-]+", " ", folder)).lower().split())


def _queries(samples: list[tuple[str, Path, int]], names: list[str], limit: int | None, key: str,
             root: Path) -> list[CandidateQuery]:
    """One query per (id, image file, class index); the candidate list (all class names) is shared."""
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DatasetError(f"{root}: several classes read as {', '.join(map(repr, duplicates))}")
    candidates = tuple(Interleaved((TextSegment(n),)) for n in names)
    return [CandidateQuery(query_id, Interleaved((image(path, where(path, root)),)), candidates, frozenset({label}))
            for query_id, path, label in subsample(samples, limit, key)]


def read_scene_folders(folder: Path, limit: int | None = None, *, letter_index: bool = False,
                       key: str = "scenes") -> list[CandidateQuery]:
    """``folder/<class>/<image>``; ``letter_index`` drops RSSCN7's ordering letter (``aGrass`` -> ``grass``).

    With ``limit``, a seeded uniform sample of the images (key ``key``) keeps the query count bounded.
    """
    classes = sorted(d for d in need_dir(folder).iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DatasetError(f"{folder}: no class folders")
    names = []
    for d in classes:
        if letter_index and not re.match(r"^[a-z][A-Z]", d.name):
            raise DatasetError(f"{where(d, folder)}: expected a class folder like 'aGrass' (index letter + class)")
        names.append(class_name(d.name[1:] if letter_index else d.name))
    samples = []
    for label, d in enumerate(classes):
        files = image_files(d)
        if not files:
            raise DatasetError(f"{where(d, folder)}: class folder holds no images")
        samples += [(f"{d.name}/{p.name}", p, label) for p in files]
    return _queries(samples, names, limit, key, folder)


def read_caption_scenes(caption_root: Path, dataset: str, images_dir: Path, split: str = "test",
                        limit: int | None = None) -> list[CandidateQuery]:
    """Scenes of an AMFMN caption split whose file names carry a class prefix (unprefixed images are left out)."""
    records = read_caption_split(caption_root, dataset, split)
    labelled = [(r.filename, r.scene) for r in records if r.scene]
    if not labelled:
        raise DatasetError(f"{caption_root / dataset}/{split}_filename.txt: no file name carries a scene class")
    classes = sorted({scene for _, scene in labelled})
    samples = [(name, images_dir / name, classes.index(scene)) for name, scene in labelled]
    return _queries(samples, [class_name(c) for c in classes], limit, f"{dataset}-{split}-scenes", images_dir)
