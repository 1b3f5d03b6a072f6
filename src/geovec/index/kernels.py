"""Exact-search kernels, and the choice between them by measurement on this machine.

Why: the fastest product depends on the CPU and the libraries (an int8 pass is ~2x float32 with AVX-512 VNNI and
~9x slower on AVX2 alone), so the candidates are timed once at the index's size and the choice is cached in
``GEOVEC_HOME/kernels.json`` per CPU model, instruction-set flags, library versions, ISA caps and size. Every
kernel returns exactly the hits of a float32 brute force: approximate ones rescore their candidates in float32
within an error bound (a row whose true score reaches the true k-th best lies within twice the bound of the
approximate k-th best).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from geovec.config import home_dir
from geovec.errors import GeovecError
from geovec.fileio import atomic_write
from geovec.threads import current_threads, usable_cores

MEASURED_MIN_ROWS = 8192  # below this numpy float32 is fast enough: no measuring, no extra copies
INT8_MAX_DIM = 65_536  # 127 * 127 * dim must fit the int32 sums of the int8 product
BATCHES = (1, 8)  # query batch sizes timed: a single user, and a server's batch
CACHE_NAME = "kernels.json"
RELEVANT_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni",
                  "amx_tile", "amx_int8", "amx_bf16", "neon", "asimd")
ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
_INT8_SLACK = 1e-5  # float32 rounding of the int8 pass's int32 -> score conversion, far above its real size
_FLOAT_EPS = float(np.finfo(np.float32).eps)

Ranking = list[tuple[np.ndarray, np.ndarray]]  # per query: row positions and their scores, best first


# --- top-k helpers shared by every kernel --------------------------------------------------------------------------

def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of each row's k largest scores, best first."""
    if k < scores.shape[1]:
        columns = np.argpartition(scores, -k, axis=1)[:, -k:]
    else:
        columns = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    values = np.take_along_axis(scores, columns, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(columns, order, axis=1), np.take_along_axis(values, order, axis=1)


def rows_by_k(ks: Sequence[int]) -> list[tuple[int, list[int]]]:
    """Row numbers grouped by their k, so each group's top-k is selected at once."""
    groups: dict[int, list[int]] = {}
    for row, k in enumerate(ks):
        groups.setdefault(int(k), []).append(row)
    return list(groups.items())


def float_ranking(queries: np.ndarray, matrix: np.ndarray, ks: Sequence[int], excluded: np.ndarray | None) -> Ranking:
    """The reference: numpy float32 scores of every row, top-k per query; ``excluded`` rows never come back."""
    scores = queries @ matrix.T
    if excluded is not None:
        scores[:, excluded] = -np.inf
    ranked: Ranking = [None] * len(scores)  # type: ignore[list-item]
    for k, rows in rows_by_k(ks):
        columns, values = top_k(scores if len(rows) == len(scores) else scores[rows], k)
        for row, cols, vals in zip(rows, columns, values):
            found = vals > -np.inf
            ranked[row] = (cols[found], vals[found])
    return ranked


def rescored(candidates: np.ndarray, query: np.ndarray, matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The float32 top-k among ``candidates`` (row positions): the exact second pass of approximate kernels."""
    found, scores = top_k((matrix[candidates] @ query)[None], k)
    return candidates[found[0]], scores[0]


def float_error(queries: np.ndarray, row_norm: float) -> np.ndarray:
    """How far two float32 dot products of the same vectors, summed in different orders, can differ (2 n u |q||m|)."""
    return queries.shape[1] * _FLOAT_EPS * np.linalg.norm(queries, axis=1) * row_norm


def floors_of(kth: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The lowest approximate score a hit can have, never below the lowest float (an excluded -inf row is none)."""
    return np.maximum(kth - 2 * bounds, np.finfo(np.float32).min).astype(np.float32)


def tensor_ranking(approx: Any, bounds: np.ndarray, queries: np.ndarray, matrix: np.ndarray, ks: Sequence[int],
                   excluded: np.ndarray | None) -> Ranking:
    """Exact hits from approximate torch scores (queries x rows) off by at most ``bounds`` per query."""
    import torch

    if excluded is not None:
        approx[:, torch.from_numpy(excluded)] = -np.inf
    kth = torch.topk(approx, min(max(ks), approx.shape[1]), dim=1).values.numpy()
    reach = np.minimum(ks, approx.shape[1]) - 1
    floors = floors_of(kth[np.arange(len(ks)), reach], bounds)
    rows, columns = torch.nonzero(approx >= torch.from_numpy(floors)[:, None], as_tuple=True)
    starts = np.searchsorted(rows.numpy(), np.arange(len(ks) + 1))
    columns = columns.numpy()
    return [rescored(columns[starts[row]:starts[row + 1]], queries[row], matrix, k) for row, k in enumerate(ks)]


# --- the kernels ---------------------------------------------------------------------------------------------------

class Kernel(Protocol):
    """One way to search a matrix exactly: ``prepare`` once per snapshot of the vectors, then ``rank`` batches."""

    name: str

    def prepare(self, matrix: np.ndarray) -> None: ...

    def rank(self, queries: np.ndarray, ks: Sequence[int], excluded: np.ndarray | None) -> Ranking: ...


class NumpyFloat32:
    """numpy's BLAS over the matrix itself: no copy, the reference every other kernel must match."""

    name = "numpy-float32"

    def prepare(self, matrix: np.ndarray) -> None:
        self.matrix = matrix

    def rank(self, queries: np.ndarray, ks: Sequence[int], excluded: np.ndarray | None) -> Ranking:
        return float_ranking(queries, self.matrix, ks, excluded)


class TorchFloat32:
    """torch's float32 product over the same memory (no copy), rescored by numpy within float rounding."""

    name = "torch-float32"

    def prepare(self, matrix: np.ndarray) -> None:
        import torch

        self.matrix, self.tensor = matrix, torch.from_numpy(matrix)
        self.row_norm = float(np.linalg.norm(matrix, axis=1).max()) if len(matrix) else 0.0

    def rank(self, queries: np.ndarray, ks: Sequence[int], excluded: np.ndarray | None) -> Ranking:
        import torch

        approx = torch.from_numpy(queries) @ self.tensor.T
        return tensor_ranking(approx, float_error(queries, self.row_norm), queries, self.matrix, ks, excluded)


def quantize(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each row scaled to int8 (its largest component to +-127): values, the scale back to floats, and each row's
    rounding error ||row - values * scale|| and norm ||values * scale||."""
    peak = np.abs(matrix).max(axis=1)
    scales = np.where(peak > 0, peak / 127, 1).astype(np.float32)
    values = np.rint(matrix / scales[:, None]).astype(np.int8)
    restored = values * scales[:, None]
    return values, scales, np.linalg.norm(matrix - restored, axis=1), np.linalg.norm(restored, axis=1)


def _qlinear(inputs: Any, scale: float, weights: Any, scales: Any) -> Any:
    """oneDNN's int8 linear (u8 input with zero point 128, s8 per-row weights): float32 outputs."""
    import torch

    return torch.ops.onednn.qlinear_pointwise(inputs, scale, 128, weights, scales, torch.zeros(1, dtype=torch.long),
                                              None, 1.0, 0, torch.float32, "none", [], "")


@functools.cache
def onednn_int8() -> bool:
    """Whether oneDNN's packed int8 product runs here and is exact at the extremes: a CPU without VNNI may saturate
    16-bit partial sums, which would break the int8 pass's error bound."""
    try:
        import torch

        weights = torch.full((16, 64), 127, dtype=torch.int8)
        weights[::2] = -127
        queries = torch.full((3, 64), 255, dtype=torch.uint8)
        queries[1] = 1
        found = _qlinear(queries, 1.0, torch.ops.onednn.qlinear_prepack(weights, [4, 64]), torch.ones(16))
        return bool(torch.equal(found.double(), (queries.int() - 128).double() @ weights.double().T))
    except (ImportError, AttributeError, RuntimeError, NotImplementedError):
        return False


class OneDnnInt8:
    """Every row scaled to int8 and packed for oneDNN (a quarter of the bytes; VNNI's int8 product), rescored in
    float32. Writing a row as ``m = m8 + e`` and a query as ``q = q8 + f``, ``q.m - q8.m8 = q.e + f.m8``, so each
    approximate score is off by at most ``|q| |e| + |f| |m8|`` (Cauchy-Schwarz)."""

    name = "onednn-int8"

    def prepare(self, matrix: np.ndarray, chunk: int = 65_536) -> None:
        """Quantised ``chunk`` rows at a time, so building it never holds a second float copy of the matrix."""
        import torch

        values = np.empty(matrix.shape, np.int8)
        scales = np.empty(len(matrix), np.float32)
        self.row_error = self.row_norm = 0.0
        for start in range(0, len(matrix), chunk):
            part = slice(start, start + chunk)
            values[part], scales[part], errors, norms = quantize(matrix[part])
            self.row_error = max(self.row_error, float(errors.max()))
            self.row_norm = max(self.row_norm, float(norms.max()))
        self.matrix, self.scales = matrix, torch.from_numpy(scales)
        self.packed = torch.ops.onednn.qlinear_prepack(torch.from_numpy(values), [4, matrix.shape[1]])

    def scores(self, queries: np.ndarray) -> tuple[Any, np.ndarray]:
        """Approximate scores of every row (torch float32, queries x rows) and each query's bound on their error."""
        import torch

        peak = float(np.abs(queries).max()) if queries.size else 0.0
        scale = peak / 127 if peak > 0 else 1.0  # one scale for the batch: oneDNN takes one for its input
        ints = np.rint(queries / scale).astype(np.int8)
        errors = np.linalg.norm(queries - ints * np.float32(scale), axis=1)
        bounds = np.linalg.norm(queries, axis=1) * self.row_error + errors * self.row_norm + _INT8_SLACK
        shifted = torch.from_numpy((ints.astype(np.int16) + 128).astype(np.uint8))  # its input is unsigned
        return _qlinear(shifted, scale, self.packed, self.scales), bounds

    def rank(self, queries: np.ndarray, ks: Sequence[int], excluded: np.ndarray | None) -> Ranking:
        approx, bounds = self.scores(queries)
        return tensor_ranking(approx, bounds, queries, self.matrix, ks, excluded)


class FaissKernel:
    """A FAISS index's top-k (flat float32, or 8-bit scalar quantised) widened until it holds every row within
    twice the error bound of its k-th best, then rescored in float32 by numpy."""

    def __init__(self, name: str, quantized: bool) -> None:
        self.name, self.quantized = name, quantized

    def prepare(self, matrix: np.ndarray, chunk: int = 65_536) -> None:
        import faiss

        dim = matrix.shape[1]
        self.matrix, self.row_error = matrix, 0.0
        if not self.quantized:
            self.index = faiss.IndexFlatIP(dim)
            self.index.add(matrix)
            self.row_norm = float(np.sqrt(np.einsum("ij,ij->i", matrix, matrix).max())) if len(matrix) else 0.0
            return
        self.index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        self.index.train(matrix)
        self.index.add(matrix)
        self.row_norm = 0.0
        for start in range(0, len(matrix), chunk):
            part = matrix[start:start + chunk]
            restored = self.index.sa_decode(self.index.sa_encode(part))
            self.row_error = max(self.row_error, float(np.linalg.norm(part - restored, axis=1).max()))
            self.row_norm = max(self.row_norm, float(np.linalg.norm(restored, axis=1).max()))

    def rank(self, queries: np.ndarray, ks: Sequence[int], excluded: np.ndarray | None) -> Ranking:
        """All queries searched at once; only those whose last result still reaches their floor, again wider."""
        import faiss

        bounds = np.linalg.norm(queries, axis=1) * self.row_error + float_error(queries, self.row_norm)
        keep = None if excluded is None else np.packbits(~excluded, bitorder="little")  # alive while searching
        params = None if keep is None else faiss.SearchParameters(
            sel=faiss.IDSelectorBitmap(len(keep), faiss.swig_ptr(keep)))
        ranking: Ranking = [None] * len(queries)  # type: ignore[list-item]
        pending, want = np.arange(len(queries)), min(2 * max(ks, default=1) + 16, self.index.ntotal)
        while len(pending):
            scores, labels = self.index.search(queries[pending], want, params=params)
            unfinished = []
            for row, row_scores, row_labels in zip(pending, scores, labels):
                found = row_labels >= 0
                row_scores, row_labels = row_scores[found], row_labels[found]
                k = int(ks[row])
                floor = floors_of(row_scores[min(k, len(row_scores)) - 1:][:1], bounds[row:row + 1])
                if len(row_labels) and len(row_labels) == want < self.index.ntotal and row_scores[-1] >= floor[0]:
                    unfinished.append(row)  # rows past the last one fetched may still reach the floor
                elif len(row_labels):
                    ranking[row] = rescored(row_labels[row_scores >= floor[0]], queries[row], self.matrix, k)
                else:
                    ranking[row] = (np.empty(0, np.int64), np.empty(0, np.float32))
            pending, want = np.array(unfinished, np.int64), min(2 * want, self.index.ntotal)
        return ranking


def candidates(dim: int) -> dict[str, Callable[[], Kernel]]:
    """Makers of the kernels that can run here: torch ones only where torch imports, oneDNN's only where exact."""
    kernels: dict[str, Callable[[], Kernel]] = {NumpyFloat32.name: NumpyFloat32}
    if _importable("faiss"):
        kernels["faiss-flat"] = functools.partial(FaissKernel, "faiss-flat", quantized=False)
        kernels["faiss-sq8"] = functools.partial(FaissKernel, "faiss-sq8", quantized=True)
    if _importable("torch"):
        kernels[TorchFloat32.name] = TorchFloat32
        if dim <= INT8_MAX_DIM and onednn_int8():
            kernels[OneDnnInt8.name] = OneDnnInt8
    return kernels


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except ImportError:
        return False


# --- measuring and choosing ----------------------------------------------------------------------------------------

@functools.cache
def cpu_description() -> dict[str, Any]:
    """The CPU model and the instruction-set flags that decide which kernel wins (from /proc/cpuinfo, read once: the
    kernel is chosen again after every change to the vectors)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                name, _, value = line.partition(":")
                if name.strip() == "model name" and value.strip():
                    model = value.strip()
                elif name.strip() in ("flags", "Features"):
                    flags |= set(value.split())
    except OSError:
        pass  # not Linux: the model from platform, no flags
    return {"model": model, "flags": [flag for flag in RELEVANT_FLAGS if flag in flags]}


def cpu_line() -> str:
    """The CPU, its relevant flags, the ISA caps in force and the threads, in one line: what every benchmark prints
    beside its figures."""
    cpu = cpu_description()
    caps = ", ".join(f"{name}={os.environ.get(name, '-')}" for name in ISA_CAPS)
    return f"CPU: {cpu['model']}; flags: {' '.join(cpu['flags']) or 'none of interest'}; caps: {caps}; threads: " \
           f"{threads()}"


def _version(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return None


def threads() -> int:
    """The threads a product may use here: torch's setting (what serve or the user chose), else the usable cores."""
    return current_threads() if _importable("torch") else usable_cores()


def machine_key() -> dict[str, Any]:
    """What any measurement here depends on: CPU, libraries, ISA caps and threads (also the query pass's key)."""
    return {"cpu": cpu_description(), "numpy": np.__version__, "torch": _version("torch"), "faiss": _version("faiss"),
            "env": {name: os.environ.get(name) for name in ISA_CAPS}, "threads": threads()}


def cache_key(rows: int, dim: int) -> dict[str, Any]:
    """What the measurement depends on: the machine (``machine_key``) and the index's size (power of two)."""
    return {**machine_key(), "rows": 1 << max(rows, 1).bit_length() - 1, "dim": dim}


def time_once(kernel: Kernel, queries: np.ndarray) -> float:
    """Milliseconds of one ``kernel.rank`` of ``queries`` (top-10)."""
    started = time.perf_counter()
    kernel.rank(queries, [10] * len(queries), None)
    return (time.perf_counter() - started) * 1000


Measure = Callable[[Kernel, np.ndarray], float]  # (kernel, queries) -> ms of one run


def measured_queries(matrix: np.ndarray, count: int) -> np.ndarray:
    """Queries like real ones: as close to a row as a text query is to its best image (cosine ~0.45; at 0.7 the
    8-bit pass rescored too few rows and looked faster than float32 where real queries find it slower); seeded, so
    every measurement asks the same."""
    rng = np.random.default_rng(0)
    queries = matrix[rng.integers(0, len(matrix), count)] + 0.1 * rng.standard_normal((count, matrix.shape[1]))
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


@dataclass
class Choice:
    """The prepared kernels used for a snapshot, one per query-batch size measured, with the timings (ms per batch
    size) they were chosen by. Why per size: one query reads the whole matrix for little arithmetic and a batch
    shares that read, so the fastest kernel for a lone user is often not the fastest for a server's batch."""

    kernels: dict[int, Kernel]
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    measured: bool = False  # measured now, rather than read from the cache or small enough not to measure
    key: dict[str, Any] = field(default_factory=dict)

    def for_queries(self, count: int) -> Kernel:
        """The kernel for a batch of ``count`` queries: that of the largest measured batch size not above it."""
        return self.kernels[max([size for size in self.kernels if size <= count] or [min(self.kernels)])]

    @property
    def kernel(self) -> Kernel:
        """The kernel for a server's batch (the largest size measured)."""
        return self.kernels[max(self.kernels)]

    def names(self) -> dict[str, str]:
        return {str(size): kernel.name for size, kernel in sorted(self.kernels.items())}

    def describe(self) -> dict[str, Any]:
        """JSON for /api/info, ``geovec serve`` and ``geovec kernels``."""
        return {"kernel": self.kernel.name, "kernels": self.names(), "measured_now": self.measured,
                "timings_ms": self.timings, "key": self.key}

    def summary(self) -> str:
        """One line: the kernel per batch size and, where measured, the timings behind it."""
        if not self.timings:
            return f"exact search: {self.kernel.name} (index under {MEASURED_MIN_ROWS:,} rows: not measured)"
        chosen = ", ".join(f"{kernel.name} for {size}" for size, kernel in sorted(self.kernels.items()))
        figures = ", ".join(f"{name} {'/'.join(f'{ms:.1f}' for ms in times.values())}"
                            for name, times in sorted(self.timings.items(), key=lambda item: sum(item[1].values())))
        return f"exact search: {chosen} (ms for {'/'.join(map(str, BATCHES))} queries: {figures})"


def measure_all(matrix: np.ndarray, makers: dict[str, Callable[[], Kernel]], measure: Measure,
                rounds: int = 5) -> tuple[dict[str, dict[str, float]], dict[int, Kernel]]:
    """The least ms of each kernel per batch size over ``matrix`` (see ``least_times``), and the fastest kernel per
    size, prepared; every candidate's copy is held until the choice is made."""
    kernels = {name: make() for name, make in makers.items()}
    for kernel in kernels.values():
        kernel.prepare(matrix)
    queries = {batch: measured_queries(matrix, batch) for batch in BATCHES}
    runs = {name: {batch: functools.partial(measure, kernel, queries[batch]) for batch in BATCHES}
            for name, kernel in kernels.items()}
    timings = least_times(runs, rounds)
    return timings, {batch: kernels[fastest(timings, batch)] for batch in BATCHES}


def least_times(runs: dict[str, dict[int, Callable[[], float]]], rounds: int = 5, prune: bool = True,
                budget_s: float | None = None) -> dict[str, dict[str, float]]:
    """The least ms of each candidate per batch size, from ``runs`` (candidate -> batch size -> one timed run).

    Timed round-robin (one run of each per round), so a neighbour's load falls on every candidate alike. With
    ``prune`` the first round warms up, and a candidate over 3x the best there in every batch size is not timed
    again (its warm-up is its figure), which keeps 100k rows near a second or two; without it (candidates already
    warm, runs short) every candidate runs every round, so one spike of a neighbour's load decides nothing.
    ``budget_s``: no round starts after that many seconds (at least one runs after the first).
    """
    started = time.perf_counter()
    times = {name: {batch: [run()] for batch, run in by_batch.items()} for name, by_batch in runs.items()}
    batches = {batch for by_batch in runs.values() for batch in by_batch}
    best = {batch: min(t[batch][0] for t in times.values() if batch in t) for batch in batches}
    contenders = [name for name, t in times.items() if not prune or any(t[b][0] <= 3 * best[b] for b in t)]
    for number in range(rounds):
        if number and budget_s is not None and time.perf_counter() - started > budget_s:
            break
        for name in contenders:
            for batch, run in runs[name].items():
                times[name][batch].append(run())
    # the least time of the rounds: a neighbour's load only ever adds time, so the minimum is the candidate's own
    return {name: {str(batch): round(min((runs_of[1:] if prune else runs_of) or runs_of), 3)
                   for batch, runs_of in sorted(t.items())} for name, t in times.items()}


def fastest(timings: dict[str, dict[str, float]], batch: int | None = None) -> str:
    """The candidate with the least time for ``batch`` queries, or without ``batch`` the least total over the batch
    sizes (each weighs the same); ties go by name, so the choice is reproducible."""
    def cost(name: str) -> float:
        return timings[name][str(batch)] if batch is not None else sum(timings[name].values())
    return min(timings, key=lambda name: (cost(name), name))


def choose(matrix: np.ndarray, *, measure: Measure = time_once, cache_file: Path | None = None,
           remeasure: bool = False) -> Choice:
    """The fastest exact kernel for ``matrix`` here, prepared: from the cache, or measured now and cached."""
    if len(matrix) < MEASURED_MIN_ROWS:
        small = NumpyFloat32()
        small.prepare(matrix)
        return Choice({batch: small for batch in BATCHES})
    key = cache_key(*matrix.shape)
    name = json.dumps(key, sort_keys=True)
    cache_file = cache_file or home_dir() / CACHE_NAME
    makers = candidates(matrix.shape[1])
    entries = read_cache(cache_file)
    entry = None if remeasure else entries.get(name)
    cached = cached_kernels(entry, makers)
    if cached is not None:
        return Choice(prepared(cached, makers, matrix), entry["timings_ms"], False, key)  # type: ignore[index]
    timings, kernels = measure_all(matrix, makers, measure)
    choice = Choice(kernels, timings, True, key)
    entries[name] = {"kernels": choice.names(), "timings_ms": timings}
    write_cache(cache_file, entries)
    return choice


def cached_kernels(entry: Any, makers: dict[str, Callable[[], Kernel]]) -> dict[int, str] | None:
    """The kernel names per batch size of a cache entry, or None when it is not one this version can use."""
    if not isinstance(entry, dict) or not isinstance(entry.get("timings_ms"), dict) or \
            not isinstance(entry.get("kernels"), dict):
        return None
    names = {str(batch): entry["kernels"].get(str(batch)) for batch in BATCHES}
    if not all(name in makers for name in names.values()):
        return None
    return {batch: names[str(batch)] for batch in BATCHES}


def prepared(names: dict[int, str], makers: dict[str, Callable[[], Kernel]], matrix: np.ndarray) -> dict[int, Kernel]:
    """One prepared kernel per distinct name (a kernel chosen for both sizes is made once)."""
    made: dict[str, Kernel] = {}
    for name in dict.fromkeys(names.values()):
        made[name] = makers[name]()
        made[name].prepare(matrix)
    return {batch: made[name] for batch, name in names.items()}


def read_cache(file: Path) -> dict[str, Any]:
    """The cached choices; a missing or damaged file is an empty cache (it is derived: measuring rebuilds it)."""
    try:
        entries = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def write_cache(file: Path, entries: dict[str, Any], what: str = "exact-search kernel") -> None:
    """Save the measured choices (``what`` was measured, for the warning when the file cannot be written)."""

    def write(temp: str) -> None:
        with open(temp, "w", encoding="utf-8") as out:
            json.dump(entries, out, indent=1, sort_keys=True)

    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(file, write)
    except (OSError, GeovecError) as exc:  # the cache only saves measuring again: the search goes on without it
        why = getattr(exc, "strerror", None) or exc
        print(f"geovec: {file}: cannot save the {what} measurement ({why}); it will be measured again "
              "next time: make GEOVEC_HOME writable or point it elsewhere", file=sys.stderr)
