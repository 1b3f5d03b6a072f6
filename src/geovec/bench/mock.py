"""Tiny in-memory tasks, one per protocol and category, so a new model is checked in seconds without data.

Images are solid colours with a little seeded noise; texts name the colours. A working embedder scores well above
chance on them and a broken one (NaNs, ignored segments, swapped sides) does not; they say nothing about quality
on real imagery.
"""

from __future__ import annotations

import numpy as np

from geovec.bench.task import TaskMetadata
from geovec.datasets import CandidateQuery, RetrievalSplit, TaskData
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment

COLOURS = {"red": (210, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 210), "yellow": (235, 220, 50)}
PLACES = {"Amsterdam": (52.37, 4.90), "Nairobi": (-1.29, 36.82), "Lima": (-12.05, -77.04), "Tokyo": (35.68, 139.69)}


def _pixels(colour: str, seed: int, size: int = 32) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-12, 13, (size, size, 3))
    return np.clip(np.array(COLOURS[colour]) + noise, 0, 255).astype(np.uint8)


def _image(colour: str, seed: int = 0) -> Interleaved:
    return Interleaved((ImageSegment(_pixels(colour, seed)),))


def _text(text: str) -> Interleaved:
    return Interleaved((TextSegment(text),))


def _scene() -> TaskData:
    names = list(COLOURS)
    return [CandidateQuery(f"scene-{c}", _image(c, 1), tuple(_text(f"a {n} scene") for n in names),
                           frozenset({names.index(c)})) for c in names]


def _retrieval() -> TaskData:
    names = list(COLOURS)
    texts = [(f"a {c} image", i) for i, c in enumerate(names)] + [(f"{c} everywhere", i) for i, c in enumerate(names)]
    return RetrievalSplit(tuple(names), tuple(_image(c, 2) for c in names), tuple(_text(t) for t, _ in texts),
                          tuple(i for _, i in texts))


def _text_retrieval() -> TaskData:
    pairs = [("many planes parked at an airport", "an airport with airplanes at the terminal"),
             ("a river crossed by a bridge", "a bridge over the river"),
             ("a dense forest of green trees", "thick woodland with many trees"),
             ("a harbour full of boats", "boats moored in a port")]
    return RetrievalSplit(tuple(f"doc-{i}" for i in range(len(pairs))), tuple(_text(a) for a, _ in pairs),
                          tuple(_text(b) for _, b in pairs), tuple(range(len(pairs))))


def _compositional() -> TaskData:
    names = list(COLOURS)
    return [CandidateQuery(f"edit-{a}-{b}", Interleaved((ImageSegment(_pixels(a, 3)), TextSegment(f"make it {b}"))),
                           tuple(_image(n, 4) for n in names), frozenset({names.index(b)}))
            for a, b in zip(names, names[1:] + names[:1])]


def _vqa() -> TaskData:
    names = list(COLOURS)
    return [CandidateQuery(f"vqa-{c}", Interleaved((ImageSegment(_pixels(c, 5)), TextSegment("What colour is it?"))),
                           tuple(_text(n) for n in names), frozenset({names.index(c)})) for c in names]


def _region() -> TaskData:
    names = list(COLOURS)
    queries = []
    for left, right in zip(names, names[1:] + names[:1]):
        pixels = np.concatenate([_pixels(left, 6), _pixels(right, 7)], axis=1)  # 64 wide: two colours side by side
        query = Interleaved((ImageSegment(pixels), BoxSegment((32, 0, 64, 32), "pixel")))
        queries.append(CandidateQuery(f"region-{left}-{right}", query, tuple(_text(f"a {n} region") for n in names),
                                      frozenset({names.index(right)})))
    return queries


def _geo() -> TaskData:
    names = list(PLACES)
    points = [Interleaved((PointSegment(*PLACES[n]),)) for n in names]
    return [CandidateQuery(f"geo-{n}", Interleaved((PointSegment(PLACES[n][0] + 0.01, PLACES[n][1] - 0.01),)),
                           tuple(points), frozenset({i})) for i, n in enumerate(names)]


def _meta(name: str, category: str, query: tuple[str, ...], candidate: tuple[str, ...], protocol: str = "candidates",
          **kw) -> TaskMetadata:
    return TaskMetadata(name=name, category=category, description=f"in-memory mock {category} task",  # type: ignore
                        dataset="mock", split="test", data_path="", query_kinds=query, candidate_kinds=candidate,
                        protocol=protocol, **kw)  # type: ignore[arg-type]


MOCK_TASKS: list[tuple[TaskMetadata, TaskData]] = [
    (_meta("mock-scene", "scene-classification", ("image",), ("text",)), _scene()),
    (_meta("mock-image-text-retrieval", "cross-modal-retrieval", ("image",), ("text",), "retrieval"), _retrieval()),
    (_meta("mock-text-text-retrieval", "cross-modal-retrieval", ("text",), ("text",), "retrieval"), _text_retrieval()),
    (_meta("mock-compositional", "compositional-retrieval", ("image", "text"), ("image",)), _compositional()),
    (_meta("mock-vqa", "vqa", ("image", "text"), ("text",)), _vqa()),
    (_meta("mock-region-caption", "region", ("image", "box"), ("text",)), _region()),
    (_meta("mock-point-to-point", "geo-localization", ("point",), ("point",)), _geo()),
]
