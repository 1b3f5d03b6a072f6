"""Build sources, check them against the RSMEB test splits, and mix them into one shuffled, seeded JSONL.

A weight multiplies a source's size: ``round(w * n)`` examples, i.e. ``w = 1`` uses every example once, ``0.5`` a
seeded half, ``2`` every example twice, ``1.5`` once plus a seeded half. So a source's share never depends on which
other sources are mixed, and the manifest states exactly how many examples each one gave.

Output folder: ``train.jsonl`` (the mix), ``validation.jsonl`` (images held out of caption sources with
``validation_images``: one ``{"id", "task", "image", "texts"}`` record each; region and place sources add ranked
``{"task", "query", "candidates", "positives"}`` records, counted per task in the manifest), ``manifest.json``
(counts per task, weights, seed, sources with their revisions, the leak check) and ``parts/<source>.jsonl`` +
``.json``: each built source, written atomically, reused when a rebuild asks for the same thing, so a crashed or
extended build redoes only what is missing.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from geovec.datasets.common import rng
from geovec.errors import GeovecError, GeovecInputError
from geovec.fileio import write_text_atomic
from geovec.train.data.builders import Job, get_source
from geovec.train.data.leaks import check_leaks, held_out
from geovec.train.examples import write_examples

FORMAT = 1
T = TypeVar("T")


def mix(groups: Mapping[str, Sequence[T]], weights: Mapping[str, float], seed: int = 0) -> list[T]:
    """``round(weight * len(group))`` items of each group (default weight 1), shuffled with ``seed``.

    Items are ``TrainingExample``s or, as the build mixes them, their JSONL lines (no re-parsing of inputs)."""
    out: list[T] = []
    for name, examples in groups.items():
        weight = weights.get(name, 1.0)
        if weight < 0:
            raise GeovecInputError("--weights", f"weight of {name} is {weight:g}; weights must be >= 0")
        whole, rest = divmod(round(weight * len(examples)), len(examples)) if examples else (0, 0)
        out += list(examples) * whole
        out += [examples[i] for i in sorted(rng("mix", seed, name).sample(range(len(examples)), rest))]
    random.Random(f"mix:{seed}").shuffle(out)
    return out


@dataclass(frozen=True)
class _Uses:
    """What the leak check reads of an example line."""

    task: str
    source_ids: Sequence[str] = ()


def _build_source(name: str, output: Path, root: Path, paths: Mapping[str, Path], options: dict[str, Any],
                  exclude: frozenset[str], show_progress: bool) -> tuple[list[str], list[str], dict[str, Any]]:
    """One source's examples and held-out validation records as JSONL lines, from ``parts/`` when an earlier build
    asked for exactly the same."""
    source = get_source(name)
    path = Path(paths.get(name, root / source.path)).resolve()
    key = {"source": name, "revision": source.revision, "path": str(path), **options,
           "excluded_ids": len(exclude)}
    part, meta_file = output / "parts" / f"{name}.jsonl", output / "parts" / f"{name}.json"
    held_file = output / "parts" / f"{name}.validation.jsonl"
    if part.is_file() and meta_file.is_file() and held_file.is_file():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("key") == key:
            return (part.read_text(encoding="utf-8").splitlines(keepends=True),
                    held_file.read_text(encoding="utf-8").splitlines(keepends=True), meta)
    job = Job(source, root, path, exclude=exclude, show_progress=show_progress, **options)
    try:
        examples = source.build(job)
    except GeovecError as exc:
        message = str(exc)
        raise GeovecError(message if message.startswith(f"source {name}") else f"source {name}: {message}") from None
    meta = {"key": key, "dataset": source.dataset, "tasks": list(source.tasks), "revision": source.revision,
            "path": str(path), "examples": len(examples), "excluded_test_items": job.excluded,
            "validation_records": len(job.validation), "description": source.description}
    part.parent.mkdir(parents=True, exist_ok=True)
    write_examples(part, examples)
    write_text_atomic(held_file, "".join(json.dumps(record) + "\n" for record in job.validation))
    write_text_atomic(meta_file, json.dumps(meta, indent=2))
    return (part.read_text(encoding="utf-8").splitlines(keepends=True),
            held_file.read_text(encoding="utf-8").splitlines(keepends=True), meta)


def check_held_out(groups: Mapping[str, Sequence[str]], validation: Sequence[dict[str, Any]]) -> None:
    """No training example may use a validation image (or city), as query, positive or hard negative."""
    held = {item for record in validation for item in record.get("items") or [f"{record['dataset']}:{record['id']}"]}
    for name, lines in groups.items():
        for line in lines if held else ():
            used = held.intersection(json.loads(line).get("source_ids", ()))
            if used:
                raise GeovecError(f"source {name}: an example uses validation image(s) {', '.join(sorted(used)[:3])}")


def build_training_data(sources: Sequence[str], output: str | Path, root: str | Path,
                        weights: Mapping[str, float] | None = None, hard_negatives: int = 0,
                        limit: int | None = None, seed: int = 0, paths: Mapping[str, Path] | None = None,
                        show_progress: bool = True, validation_images: int = 0) -> dict[str, Any]:
    """Build ``sources`` from the data ``root`` into ``output`` (see the module docstring); returns the manifest.

    Fails with ``LeakError`` naming the items if any example uses an RSMEB test item.
    """
    started = time.perf_counter()
    names = list(dict.fromkeys(sources))
    if not names:
        raise GeovecInputError("--sources", "give at least one source")
    chosen = [get_source(name) for name in names]
    weights, paths = dict(weights or {}), dict(paths or {})
    for option, given in (("--weights", weights), ("--path", paths)):
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise GeovecInputError(option, f"names {', '.join(unknown)}, which is not among --sources "
                                           f"{','.join(names)}")
    if hard_negatives < 0 or (limit is not None and limit < 1):
        raise GeovecInputError("--hard-negatives" if hard_negatives < 0 else "--limit", "must be a positive number")
    root, output = Path(root).resolve(), Path(output)  # absolute paths in examples: readable from anywhere
    output.mkdir(parents=True, exist_ok=True)
    tests = held_out(root, {s.dataset for s in chosen})
    options = {"hard_negatives": hard_negatives, "limit": limit, "seed": seed, "validation_images": validation_images}
    groups, metas, validation = {}, {}, []
    for source in chosen:
        groups[source.name], held, metas[source.name] = _build_source(source.name, output, root, paths, options,
                                                                      tests.of(source.dataset), show_progress)
        validation += held
    for lines in groups.values():
        check_leaks((_Uses(**{k: v for k, v in json.loads(line).items() if k in ("task", "source_ids")})
                     for line in lines), tests)
    kept_out = [json.loads(line) for line in validation]
    check_held_out(groups, kept_out)
    mixed = mix(groups, weights, seed)
    write_text_atomic(output / "train.jsonl", "".join(mixed))
    write_text_atomic(output / "validation.jsonl", "".join(validation))
    owner = {id(line): name for name, lines in groups.items() for line in lines}
    taken = Counter(owner[id(line)] for line in mixed)
    counts = {name: taken.get(name, 0) for name in names}
    manifest = {
        "format": FORMAT, "seed": seed, "hard_negatives": hard_negatives, "limit": limit, "data_root": str(root),
        "examples": len(mixed), "counts": counts,
        "validation_images": sum("texts" in record for record in kept_out),  # retrieval records: one per image
        "validation_queries": dict(Counter(record["task"] for record in kept_out if "query" in record)),
        "weights": {name: weights.get(name, 1.0) for name in names},
        "sources": {name: {k: v for k, v in meta.items() if k != "key"} for name, meta in metas.items()},
        "leak_check": tests.summary(), "build_seconds": round(time.perf_counter() - started, 2),
    }
    write_text_atomic(output / "manifest.json", json.dumps(manifest, indent=2))
    return manifest
