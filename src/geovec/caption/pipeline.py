"""``geovec caption``: a local VLM writes RSRT-style descriptions of every image into a ``Description`` corpus.

Crash safety: every finished batch is appended to a journal (``<output>.partial/journal.jsonl``, one JSON line per
image with its descriptions and failures), flushed and fsynced; a torn last line is cut off on resume, so a kill at
any moment loses at most the batch in flight and never duplicates a record. The corpus is written once at the end,
atomically, merged by (image, kind) with what the output already held; then the journal is removed. A corpus holds
one model revision and one prompt version: a run that would mix them is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from geovec.caption.backends import CaptionModel
from geovec.caption.prompts import DEFAULT_PROMPT_VERSION, Prompt, get_prompt_set
from geovec.caption.quality import ALL_CHECKS, CHECKS, Candidate, failure_reason
from geovec.errors import GeovecError, GeovecInputError
from geovec.fileio import write_text_atomic
from geovec.inputs import ImageSegment
from geovec.progress import progress_bar
from geovec.t2t.corpus import Description, read_corpus, write_corpus

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
WHOLE_IMAGE = "*"  # the failure's variant when the image itself could not be read


@dataclass(frozen=True)
class Failure:
    image_id: str
    variant: str
    reason: str
    attempts: int


@dataclass
class CaptionReport:
    output: Path
    failure_report: Path
    images: int  # images asked for (after --limit)
    generated: int  # descriptions written by this run
    total: int  # descriptions in the output corpus
    failures: list[Failure]


def list_images(source: str | Path) -> list[tuple[str, Path]]:
    """(image id, file) pairs: a folder searched recursively (id = path relative to it) or a text file of paths.

    In a list file, blank lines and ``#`` comments are skipped, relative paths are relative to the list file, and
    the id is the path as written. Files are not opened here: an unreadable image fails alone, later.
    """
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(source).parts))
        pairs = [(p.relative_to(source).as_posix(), p) for p in files]
    elif source.is_file():
        lines = [line.strip() for line in source.read_text(encoding="utf-8").splitlines()]
        pairs = [(line, source.parent / line) for line in lines if line and not line.startswith("#")]
    else:
        raise GeovecInputError("IMAGES", f"{source} is neither a folder of images nor a text file listing them")
    if not pairs:
        raise GeovecInputError("IMAGES", f"{source} holds no {'/'.join(sorted(IMAGE_SUFFIXES))} images")
    seen: set[str] = set()
    for image_id, _ in pairs:
        if image_id in seen:
            raise GeovecInputError("IMAGES", f"{source} lists {image_id!r} twice")
        seen.add(image_id)
    return pairs


def failure_report_path(output: Path) -> Path:
    return output.with_name(output.stem + ".failures.json")


class _Journal:
    """Append-only log of finished images; survives kills (fsync per batch, a torn tail is cut off on open)."""

    def __init__(self, folder: Path, identity: dict[str, str]) -> None:
        folder.mkdir(exist_ok=True)
        run = folder / "run.json"
        held = json.loads(run.read_text(encoding="utf-8")) if run.is_file() else identity
        if held != identity:
            raise GeovecError(f"{folder} holds an unfinished run by {held.get('model')} with prompts "
                              f"{held.get('prompt_version')!r}, not {identity['model']} with "
                              f"{identity['prompt_version']!r}: finish it with that model, or delete the folder")
        write_text_atomic(run, json.dumps(identity))
        self.path = folder / "journal.jsonl"
        data = self.path.read_bytes() if self.path.is_file() else b""
        whole = data[:data.rfind(b"\n") + 1]  # a line is complete once its newline is written
        if len(whole) != len(data):
            with self.path.open("rb+") as handle:
                handle.truncate(len(whole))
        self.entries: list[dict] = [json.loads(line) for line in whole.decode("utf-8").splitlines() if line.strip()]

    def append(self, entries: list[dict]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
            handle.flush()
            os.fsync(handle.fileno())
        self.entries += entries


@dataclass
class _Unit:
    """One (image, variant) to write; ``reason`` holds why its last answer was rejected."""

    entry: dict
    image: Image.Image
    prompt: Prompt
    reason: str | None = None
    siblings: list[str] = field(default_factory=list)


class _Captioner:
    def __init__(self, model: CaptionModel, prompts: Sequence[Prompt], prompt_version: str, max_new_tokens: int,
                 retries: int, checks: Sequence[str], batch_size: int) -> None:
        self.model, self.version = model, prompt_version
        self.rank = {p.kind: i for i, p in enumerate(prompts)}
        self.max_new_tokens, self.retries, self.checks, self.batch_size = max_new_tokens, retries, checks, batch_size

    def batch(self, jobs: list[tuple[str, Path, list[Prompt], list[str]]]) -> list[dict]:
        """Journal entries for (image id, file, prompts still missing, texts it already has) of one batch."""
        entries, units = [], []
        for image_id, path, prompts, known in jobs:
            entry = {"image_id": image_id, "descriptions": [], "failures": []}
            entries.append(entry)
            try:
                pixels = ImageSegment(path).load()
            except (GeovecInputError, ValueError) as exc:
                problem = exc.problem if isinstance(exc, GeovecInputError) else str(exc)
                entry["failures"].append(asdict(Failure(image_id, WHOLE_IMAGE, f"unreadable image: {problem}", 0)))
                continue
            siblings = list(known)  # shared by the image's units, so duplicates across variants are seen
            units += [_Unit(entry, pixels, prompt, siblings=siblings) for prompt in prompts]
        units.sort(key=lambda u: self.rank[u.prompt.kind])  # one prompt per generate call: less padding
        pending, attempt = units, 0
        while pending and attempt <= self.retries:
            for start in range(0, len(pending), self.batch_size):
                self._ask(pending[start:start + self.batch_size], attempt)
            pending, attempt = [u for u in pending if u.reason], attempt + 1
        for unit in pending:
            unit.entry["failures"].append(asdict(Failure(unit.entry["image_id"], unit.prompt.kind, unit.reason or "",
                                                         attempt)))
        return entries

    def _ask(self, units: list[_Unit], attempt: int) -> None:
        """First answers are greedy; re-asks sample (seeded by the attempt), since greedy would repeat itself."""
        answers = self.model.generate([u.image for u in units], [u.prompt.text for u in units], self.max_new_tokens,
                                      sample=attempt > 0, seed=attempt)
        for unit, answer in zip(units, answers):
            unit.reason = failure_reason(Candidate(answer.text, unit.prompt.text, answer.finished,
                                                   tuple(unit.siblings)), self.checks)
            if unit.reason is None:
                unit.siblings.append(answer.text)
                unit.entry["descriptions"].append(asdict(Description(
                    unit.entry["image_id"], unit.prompt.kind, answer.text, self.model.identity, self.version)))


def caption_images(images: str | Path, model: CaptionModel, output: str | Path, *,
                   prompt_version: str = DEFAULT_PROMPT_VERSION, variants: int | None = None, batch_size: int = 4,
                   max_new_tokens: int = 128, retries: int = 2, checks: Sequence[str] = ALL_CHECKS,
                   limit: int | None = None, show_progress: bool = True) -> CaptionReport:
    """Describe every image of ``images`` with the first ``variants`` prompts of a set into the JSONL ``output``.

    Resumable: a rerun after a crash, or with a larger ``limit`` or more ``variants``, only writes what is missing;
    (image, variant) pairs that failed before are asked again. Failures go to ``<output stem>.failures.json``.
    """
    for name, value, least in (("batch_size", batch_size, 1), ("max_new_tokens", max_new_tokens, 1),
                               ("retries", retries, 0), ("limit", limit, 1)):
        if value is not None and value < least:
            raise GeovecInputError(name, f"must be at least {least}, got {value}")
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise GeovecInputError("checks", f"unknown quality checks {unknown}; known: {', '.join(CHECKS)}")
    prompts = get_prompt_set(prompt_version).first(variants)
    pairs = list_images(images)[:limit]
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    identity = {"model": model.identity, "prompt_version": prompt_version}
    existing = read_corpus(output) if output.is_file() and output.stat().st_size else []
    foreign = sorted({(d.model, d.prompt_version) for d in existing} - {(model.identity, prompt_version)})
    if foreign:
        raise GeovecError(f"{output} holds descriptions by {foreign[0][0]} with prompts {foreign[0][1]!r}; this run "
                          f"uses {model.identity} with {prompt_version!r}. A corpus mixes neither models nor prompt "
                          "versions: choose another --output")
    partial = output.with_name(output.name + ".partial")
    journal = _Journal(partial, identity)
    texts: dict[str, list[str]] = {}
    for d in existing + [Description(**d) for e in journal.entries for d in e["descriptions"]]:
        texts.setdefault(d.image_id, []).append(d.text)
    handled = {(d.image_id, d.kind) for d in existing} | {
        (e["image_id"], d["kind"]) for e in journal.entries for d in e["descriptions"]} | {
        (e["image_id"], f["variant"]) for e in journal.entries for f in e["failures"]}
    jobs = [(image_id, path, missing, texts.get(image_id, [])) for image_id, path in pairs
            if (missing := [p for p in prompts if not {(image_id, p.kind), (image_id, WHOLE_IMAGE)} & handled])]
    captioner = _Captioner(model, prompts, prompt_version, max_new_tokens, retries, checks, batch_size)
    with progress_bar(len(jobs), f"captioning with {model.name}", enabled=show_progress) as bar:
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start:start + batch_size]
            journal.append(captioner.batch(batch))
            bar.advance(len(batch))
    return _finish(output, partial, identity, existing, journal.entries, len(pairs))


def _finish(output: Path, partial: Path, identity: dict[str, str], existing: list[Description], entries: list[dict],
            images: int) -> CaptionReport:
    """Merge output + journal by (image, kind) into the corpus, write it and the failure report, drop the journal."""
    corpus = {(d.image_id, d.kind): d for d in existing}
    for entry in entries:
        for data in entry["descriptions"]:
            corpus.setdefault((data["image_id"], data["kind"]), Description(**data))
    failures = [Failure(**f) for e in entries for f in e["failures"] if (f["image_id"], f["variant"]) not in corpus]
    write_corpus(output, list(corpus.values()))
    report = failure_report_path(output)
    write_text_atomic(report, json.dumps({**identity, "output": output.name,
                                          "failures": [asdict(f) for f in failures]}, indent=1) + "\n")
    shutil.rmtree(partial)
    return CaptionReport(output, report, images, len(corpus) - len(existing), len(corpus), failures)
