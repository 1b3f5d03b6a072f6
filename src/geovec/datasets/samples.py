"""What a dataset reader returns (and a benchmark task loads): MMEB-style candidate queries or retrieval splits.

Every RSMEB task is one of these shapes:

* ``CandidateQuery`` lists (scene classification, VQA, compositional, region, geo-localization): each query has its
  own candidate list and the indices of the correct candidates; the score is Precision@1.
* ``RetrievalSplit`` (RSICD/RSITMD convention): every image has several texts (5); both directions are ranked
  against the whole split and scored by Recall@1/5/10 and their mean (mR).
* ``TextToTextSplit`` (TRSLLaVA): captions against images represented by descriptions of them, scored like a
  ``RetrievalSplit``.

All validate themselves when made, so bad data fails at load time with the task, record and problem named.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence, Union

from geovec.errors import GeovecError
from geovec.inputs import Interleaved


class DatasetError(GeovecError):
    """A dataset on disk is not what its reader expects (missing file, answer not among candidates, duplicate id)."""


@dataclass(frozen=True)
class Reference:
    """A reference row of a query: the same answers sought from another input (the box dropped, the region alone).

    ``candidates`` replaces the query's candidates one for one (``None``: ranked against the query's own), so the
    positives stay where they are and the row is scored on the same lists.
    """

    name: str
    query: Interleaved
    candidates: tuple[Interleaved, ...] | None = None


@dataclass(frozen=True)
class CandidateQuery:
    """One query, the candidates it is ranked against, which of them are correct, and optional reference rows."""

    id: str
    query: Interleaved
    candidates: tuple[Interleaved, ...]
    positives: frozenset[int]
    references: tuple[Reference, ...] = ()

    def __post_init__(self) -> None:
        if not self.candidates:
            raise DatasetError(f"query {self.id!r}: has no candidates")
        if not self.positives:
            raise DatasetError(f"query {self.id!r}: its answer is not among its candidates")
        outside = [p for p in self.positives if not 0 <= p < len(self.candidates)]
        if outside:
            raise DatasetError(f"query {self.id!r}: positive indices {outside} are outside its "
                               f"{len(self.candidates)} candidates")
        for reference in self.references:
            if reference.candidates is not None and len(reference.candidates) != len(self.candidates):
                raise DatasetError(f"query {self.id!r}: reference {reference.name!r} has "
                                   f"{len(reference.candidates)} candidates for the query's {len(self.candidates)}")


@dataclass(frozen=True)
class RetrievalSplit:
    """Images (or any item side) with several texts each; ``text_image[j]`` is the image of text ``j``."""

    image_ids: tuple[str, ...]
    images: tuple[Interleaved, ...]
    texts: tuple[Interleaved, ...]
    text_image: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.image_ids) != len(self.images):
            raise DatasetError(f"{len(self.image_ids)} image ids for {len(self.images)} images")
        duplicates = sorted(name for name, count in Counter(self.image_ids).items() if count > 1)
        if duplicates:
            raise DatasetError(f"duplicate image ids: {', '.join(duplicates[:5])}")
        if len(self.texts) != len(self.text_image):
            raise DatasetError(f"{len(self.texts)} texts but {len(self.text_image)} text-to-image links")
        if any(not 0 <= i < len(self.images) for i in self.text_image):
            raise DatasetError("a text points at an image index outside the split")
        missing = set(range(len(self.images))) - set(self.text_image)
        if missing:
            raise DatasetError(f"image {self.image_ids[min(missing)]!r} has no text")


@dataclass(frozen=True)
class TextToTextSplit:
    """Text-to-text retrieval (TRSLLaVA): images are represented only by descriptions of them.

    ``exclude[q]`` is the description that must not represent its image for query ``q`` (the query caption itself,
    when the descriptions are the human captions: an *oracle*, flagged by ``oracle``), or -1. ``images`` are the
    pictures themselves when they are on disk: only a hybrid run (``geovec.t2t.fusion``) looks at them.
    """

    image_ids: tuple[str, ...]
    queries: tuple[Interleaved, ...]
    query_image: tuple[int, ...]
    descriptions: tuple[Interleaved, ...]
    description_image: tuple[int, ...]
    exclude: tuple[int, ...]
    corpus: str
    oracle: bool
    images: tuple[Interleaved, ...] | None = None
    describers: tuple[str, ...] = ()  # who wrote the descriptions: "MODEL PROMPT_VERSION", one per distinct pair

    def __post_init__(self) -> None:
        if self.images is not None and len(self.images) != len(self.image_ids):
            raise DatasetError(f"{len(self.image_ids)} image ids for {len(self.images)} images")
        if not (len(self.queries) == len(self.query_image) == len(self.exclude)):
            raise DatasetError("queries, query_image and exclude differ in length")
        if len(self.descriptions) != len(self.description_image):
            raise DatasetError("descriptions and description_image differ in length")
        described = set(self.description_image)
        for index in range(len(self.image_ids)):
            if index not in described:
                raise DatasetError(f"image {self.image_ids[index]!r} has no description in corpus {self.corpus}")


TaskData = Union[Sequence[CandidateQuery], RetrievalSplit, TextToTextSplit]


def check_unique_ids(queries: Sequence[CandidateQuery]) -> None:
    seen: set[str] = set()
    for query in queries:
        if query.id in seen:
            raise DatasetError(f"duplicate query id {query.id!r}")
        seen.add(query.id)
