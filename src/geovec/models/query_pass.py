"""How a query is embedded (the forward pass and its number format), and the choice between passes by measurement.

Why: which pass embeds a short query fastest depends on the CPU and the libraries (bfloat16 is ~1.7x float32
where the CPU computes it natively and slower where torch emulates it; the lean BERT pass of
``geovec.models.bert_inference`` saves transformers' per-call overhead), so it is measured once here, like the
exact-search kernel (``geovec.index.kernels``, whose machine key, timing and cache helpers it shares), and cached in
``GEOVEC_HOME/query_pass.json``. Only passes whose retrieval quality was checked are candidates:
``QUALITY_FILE`` holds the RSICD text-to-image mR of each pass (``scripts/query_pass_quality.py``), and a pass
more than ``MAX_MR_LOSS`` below the model as trained (transformers, float32) is never chosen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geovec.config import home_dir
from geovec.errors import GeovecInputError
from geovec.index.kernels import (
    BATCHES,
    fastest,
    least_times,
    machine_key,
    read_cache,
    write_cache,
)

TRANSFORMERS, LEAN = "transformers", "lean"  # the model's own forward (as trained); bert_inference's
PASS_NAMES = (TRANSFORMERS, LEAN)
PASS_PRECISIONS = ("float32", "bfloat16")
CACHE_NAME = "query_pass.json"
QUALITY_FILE = Path(__file__).with_name("query_pass_quality.json")
MAX_MR_LOSS = 0.2  # RSICD t2i mR points a pass may lose against transformers/float32 and still be chosen
MEASURE_ROUNDS = 3  # timed rounds after the first (least of up to 4 runs each)
MEASURE_BUDGET_S = 1.0  # no round starts after this (a round of every pass is ~0.2 s on a quiet CPU)
TYPICAL_QUERIES = ("many planes are parked near the terminal of an airport", "a bridge crosses a wide river",
                   "green trees surround a baseball field", "several storage tanks stand near a port",
                   "a dense residential area with red roofs", "a playground with a track and a football field",
                   "some boats are docked in the harbour", "a straight road runs through farmland")


@dataclass(frozen=True)
class QueryPass:
    """One way to embed a query: the forward pass (``PASS_NAMES``) and the precision its linear layers run in."""

    name: str = TRANSFORMERS
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.name not in PASS_NAMES or self.precision not in PASS_PRECISIONS:
            raise GeovecInputError("query_pass", f"must be PASS/PRECISION with PASS one of {', '.join(PASS_NAMES)} "
                                                 f"and PRECISION {' or '.join(PASS_PRECISIONS)} (e.g. lean/bfloat16), "
                                                 f"got {self}")

    def __str__(self) -> str:
        return f"{self.name}/{self.precision}"

    @classmethod
    def parse(cls, text: str) -> QueryPass:
        """``"lean/bfloat16"`` -> ``QueryPass("lean", "bfloat16")`` (what CLI options, JSON and workers carry)."""
        name, _, precision = str(text).partition("/")
        return cls(name, precision)


AS_TRAINED = QueryPass()  # the reference every other pass is checked against


@dataclass
class PassChoice:
    """The pass chosen for an embedder here, with the timings (ms per batch size) it was chosen by."""

    chosen: QueryPass
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    measured: bool = False  # measured now, rather than read from the cache (or a single candidate: no measuring)
    key: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """JSON for /api/info, ``geovec serve`` and ``geovec kernels``."""
        return {"query_pass": str(self.chosen), "measured_now": self.measured, "timings_ms": self.timings,
                "key": self.key, "summary": self.summary()}

    def summary(self) -> str:
        """One line: the pass and, where measured, the timings behind it."""
        if not self.timings:
            return f"query pass: {self.chosen} (the only quality-checked candidate: not measured)"
        figures = ", ".join(f"{name} {'/'.join(f'{ms:.1f}' for ms in times.values())}"
                            for name, times in sorted(self.timings.items(), key=lambda item: sum(item[1].values())))
        return f"query pass: {self.chosen} (ms for {'/'.join(map(str, BATCHES))} queries: {figures})"


def checked_quality(identity: str, file: Path = QUALITY_FILE) -> dict[str, float]:
    """The RSICD t2i mR of each quality-checked pass (``"lean/bfloat16"`` -> mR) of the model ``identity``
    (``name@revision``); empty for a model never checked (or a damaged file: then nothing but the reference runs)."""
    try:
        records = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    record = records.get(identity) if isinstance(records, dict) else None
    scores = record.get("t2i_mR") if isinstance(record, dict) else None
    return {name: float(mr) for name, mr in scores.items()} if isinstance(scores, dict) else {}


def admissible(passes: Sequence[QueryPass], quality: dict[str, float]) -> list[QueryPass]:
    """The ``passes`` whose checked mR (``quality``) is within ``MAX_MR_LOSS`` of the model as trained, which is
    always admissible."""
    reference = quality.get(str(AS_TRAINED))
    return [p for p in passes if p == AS_TRAINED or (reference is not None and str(p) in quality
                                                     and quality[str(p)] >= reference - MAX_MR_LOSS)]


def pass_key(identity: str) -> dict[str, Any]:
    """What the choice depends on: the machine (``geovec.index.kernels.machine_key``) and the model."""
    return {**machine_key(), "model": identity}


Measure = Callable[[QueryPass, int], float]  # (pass, queries in the batch) -> ms of one embedding of the batch


def timer(embed: Callable[[QueryPass, Sequence[str]], object]) -> Measure:
    """A ``Measure`` that times ``embed(pass, texts)`` on ``TYPICAL_QUERIES`` (as many as the batch holds)."""
    def measure(query_pass: QueryPass, batch: int) -> float:
        texts = [TYPICAL_QUERIES[n % len(TYPICAL_QUERIES)] + (f" {n}" if n >= len(TYPICAL_QUERIES) else "")
                 for n in range(batch)]
        started = time.perf_counter()
        embed(query_pass, texts)
        return (time.perf_counter() - started) * 1000

    return measure


def measure_passes(candidates: Sequence[QueryPass], measure: Measure) -> dict[str, dict[str, float]]:
    """The least ms of each candidate (by its name) per batch size (``BATCHES``) over a few rounds (within
    ``MEASURE_BUDGET_S``), after one untimed embedding of each: the first pays one-time costs (the instruction's states, cast weights, torch's first
    calls) that would count against whichever candidate runs first."""
    for query_pass in candidates:
        measure(query_pass, 1)
    runs = {str(p): {batch: (lambda p=p, batch=batch: measure(p, batch)) for batch in BATCHES} for p in candidates}
    # a few candidates of ~10-100 ms: all timed each round, within the budget
    return least_times(runs, MEASURE_ROUNDS, prune=False, budget_s=MEASURE_BUDGET_S)


def choose_pass(candidates: Sequence[QueryPass], identity: str, measure: Measure, *, cache_file: Path | None = None,
                remeasure: bool = False) -> PassChoice:
    """The fastest of ``candidates`` for the model ``identity`` here: from the cache, or measured now (1 and 8
    queries, the least of a few rounds) and cached. A single candidate is taken as it is."""
    if not candidates:
        raise ValueError("choose_pass: no candidate passes")
    if len(candidates) == 1:
        return PassChoice(candidates[0])
    key = pass_key(identity)
    name = json.dumps({**key, "candidates": sorted(map(str, candidates))}, sort_keys=True)
    cache_file = cache_file or home_dir() / CACHE_NAME
    entries = read_cache(cache_file)
    entry = None if remeasure else entries.get(name)
    by_name = {str(p): p for p in candidates}
    if isinstance(entry, dict) and entry.get("query_pass") in by_name and isinstance(entry.get("timings_ms"), dict):
        return PassChoice(by_name[entry["query_pass"]], entry["timings_ms"], False, key)
    timings = measure_passes(candidates, measure)
    chosen = fastest(timings)
    entries[name] = {"query_pass": chosen, "timings_ms": timings}
    write_cache(cache_file, entries, "query pass")
    return PassChoice(by_name[chosen], timings, True, key)
