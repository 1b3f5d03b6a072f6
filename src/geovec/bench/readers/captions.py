"""Image-text retrieval splits (RetrievalSplit): every image with its captions, both directions ranked.

Two published layouts: the Karpathy-style JSON shipped with RSICD, UCM-Captions, Sydney-Captions and RSITMD
(``{"images": [{"filename", "split", "sentences": [{"raw"}]}]}`` next to an image folder), and the AMFMN caption
split (``{split}_caps.txt`` + ``{split}_filename.txt``, read by ``geovec.datasets.captions``). Captions are kept
verbatim (published numbers are computed on them); empty ones are skipped, and an image keeps its place as long
as one caption is left.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from geovec.bench.data import BenchDataError, RetrievalSplit
from geovec.bench.readers.common import amfmn_records, image, need_dir, read_json
from geovec.inputs import Interleaved, TextSegment


def _split(entries: Iterable[tuple[str, Path, list[str], str]], source: str) -> RetrievalSplit:
    """(image id, image file, captions, record name for errors) -> RetrievalSplit; images without text are dropped."""
    ids: list[str] = []
    images: list[Interleaved] = []
    texts: list[Interleaved] = []
    links: list[int] = []
    seen: dict[str, str] = {}
    for image_id, path, captions, record in entries:
        if image_id in seen:
            raise BenchDataError(f"{record} is listed twice")
        seen[image_id] = record
        kept = [c.strip() for c in captions if isinstance(c, str) and c.strip()]
        if not kept:
            continue
        ids.append(image_id)
        images.append(Interleaved((image(path, record),)))
        texts += [Interleaved((TextSegment(c),)) for c in kept]
        links += [len(images) - 1] * len(kept)
    if not images:
        raise BenchDataError(f"{source}: no image with a non-empty caption")
    return RetrievalSplit(tuple(ids), tuple(images), tuple(texts), tuple(links))


def read_karpathy(json_path: Path, images_dir: Path, split: str = "test") -> RetrievalSplit:
    """The ``split`` images of a Karpathy-style caption JSON; image files are looked up in ``images_dir``."""
    data = read_json(json_path)
    name = json_path.name
    records = data.get("images") if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise BenchDataError(f"{name}: expected an object with an 'images' list")
    need_dir(images_dir)

    def entries():
        for position, record in enumerate(records):
            if not isinstance(record, dict) or not isinstance(record.get("filename"), str):
                raise BenchDataError(f"{name}: image record {position} has no 'filename'")
            if record.get("split") != split:
                continue
            label = f"{name}: image {record['filename']!r}"
            sentences = record.get("sentences")
            if not isinstance(sentences, list) or any(not isinstance(s, dict) for s in sentences):
                raise BenchDataError(f"{label}: 'sentences' must be a list of objects with 'raw'")
            yield record["filename"], images_dir / record["filename"], [s.get("raw") for s in sentences], label

    return _split(entries(), f"{name} (split {split!r})")


def read_amfmn_split(caption_root: Path, dataset: str, images_dir: Path, split: str = "test") -> RetrievalSplit:
    """An AMFMN caption split (``caption_root/dataset/{split}_caps.txt``) with its pixels in ``images_dir``."""
    records = amfmn_records(caption_root, dataset, split)
    need_dir(images_dir)
    listing = f"{dataset}/{split}_filename.txt"
    entries = ((r.filename, images_dir / r.filename, list(r.captions), f"{listing}: image {r.filename!r}")
               for r in records)
    return _split(entries, listing)
