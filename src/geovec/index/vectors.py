"""Vector checks, the live vector matrix held in memory, and exact top-k search over it."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geovec.errors import GeovecInputError

NORM_TOLERANCE = 1e-3
FIRST_PASS_MIN_ROWS = 8192  # below this a float32 pass is fast enough and an int8 copy is not worth its memory
FIRST_PASS_MAX_DIM = 65_536  # 127 * 127 * dim must fit the int32 sums of the int8 product
_FLOAT_SLACK = 1e-5  # float32 rounding of the first pass's int32 -> score conversion, far above its real size
_SCORE_BLOCK = 1 << 26  # floats per (queries x rows) score block: bounds memory of batched exact search

Ranking = list[tuple[np.ndarray, np.ndarray]]  # per query: positions in LiveVectors and their scores, best first


def check_vectors(vectors, rows: int, dim: int, name: str = "vectors", first_row: int = 0) -> np.ndarray:
    """A contiguous float32 (rows, dim) matrix of finite unit vectors; errors name ``name[first_row + row]``."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.shape != (rows, dim):
        raise GeovecInputError(name, f"expected shape ({rows}, {dim}): one {dim}-d vector per record, "
                                     f"got {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if len(bad):
        raise GeovecInputError(f"{name}[{first_row + bad[0]}]", "contains NaN or infinite values")
    norms = np.linalg.norm(array, axis=1)
    bad = np.flatnonzero(np.abs(norms - 1) > NORM_TOLERANCE)
    if len(bad):
        raise GeovecInputError(f"{name}[{first_row + bad[0]}]", f"L2 norm is {norms[bad[0]]:.4g}; vectors must be "
                                                               f"L2-normalised (norm 1 ± {NORM_TOLERANCE}) for "
                                                               "cosine search")
    return np.ascontiguousarray(array)


def _grown(array: np.ndarray, capacity: int) -> np.ndarray:
    bigger = np.empty((capacity, *array.shape[1:]), dtype=array.dtype)
    bigger[: len(array)] = array
    return bigger


class LiveVectors:
    """The vectors in memory, in rowid order, grown in place; deletions are masked until half the rows are dead."""

    def __init__(self, dim: int, rowids: np.ndarray | None = None, matrix: np.ndarray | None = None,
                 generation: int = 0) -> None:
        self._rowids = np.empty(0, np.int64) if rowids is None else rowids
        self._matrix = np.empty((0, dim), np.float32) if matrix is None else matrix
        self._live = np.ones(len(self._rowids), bool)
        self.size, self.dead, self.generation = len(self._rowids), 0, generation
        self._changes = 0  # counts appends and compactions, so the int8 copy knows when it is stale
        self._int8: tuple[int, Int8Copy] | None = None

    rowids = property(lambda self: self._rowids[: self.size])
    matrix = property(lambda self: self._matrix[: self.size])
    live = property(lambda self: self._live[: self.size])
    max_rowid = property(lambda self: int(self._rowids[self.size - 1]) if self.size else 0)

    def append(self, rowids: np.ndarray, vectors: np.ndarray) -> None:
        end = self.size + len(rowids)
        if end > len(self._rowids):
            capacity = max(end, len(self._rowids) * 3 // 2 + 1024)
            self._rowids, self._matrix, self._live = (_grown(a, capacity)
                                                      for a in (self._rowids, self._matrix, self._live))
        self._rowids[self.size:end], self._matrix[self.size:end], self._live[self.size:end] = rowids, vectors, True
        self.size, self._changes = end, self._changes + 1

    def kill(self, rowids: Iterable[int]) -> None:
        rowids = np.fromiter(rowids, np.int64)
        if not self.size or not len(rowids):
            return
        positions = np.searchsorted(self.rowids, rowids)
        positions = positions[(positions < self.size) & (self.rowids[np.minimum(positions, self.size - 1)] == rowids)]
        self.dead += int(self.live[positions].sum())
        self.live[positions] = False
        if self.dead > self.size // 2:
            keep = self.live
            self._rowids, self._matrix = self.rowids[keep], self.matrix[keep]
            self._live, self.size, self.dead = np.ones(len(self._rowids), bool), len(self._rowids), 0
            self._changes += 1

    def int8_copy(self) -> Int8Copy | None:
        """The int8 copy of the matrix for the first pass of ``int8_top_k``, or None where that does not pay: fewer
        than ``FIRST_PASS_MIN_ROWS`` rows, torch not loaded yet (a process that searches vectors it did not embed
        should not pay ~1 s to import it), or no exact int8 product on this CPU (``int8_first_pass_exact``). Costs a quarter of the float32 matrix's memory; rebuilt after changes."""
        if self.size < FIRST_PASS_MIN_ROWS or self.matrix.shape[1] > FIRST_PASS_MAX_DIM or "torch" not in sys.modules:
            return None
        if not int8_first_pass_exact():
            return None
        if self._int8 is None or self._int8[0] != self._changes:
            self._int8 = (self._changes, Int8Copy.of(self.matrix))
        return self._int8[1]

    def positions(self, rowids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.rowids, rowids)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of each row's k largest scores, best first."""
    if k < scores.shape[1]:
        columns = np.argpartition(scores, -k, axis=1)[:, -k:]
    else:
        columns = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    values = np.take_along_axis(scores, columns, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(columns, order, axis=1), np.take_along_axis(values, order, axis=1)


def quantize(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each row scaled to int8 (its largest component to +-127): values, the scale back to floats, and each row's
    rounding error ||row - values * scale|| and norm ||values * scale||."""
    peak = np.abs(matrix).max(axis=1)
    scales = np.where(peak > 0, peak / 127, 1).astype(np.float32)
    values = np.rint(matrix / scales[:, None]).astype(np.int8)
    restored = values * scales[:, None]
    return values, scales, np.linalg.norm(matrix - restored, axis=1), np.linalg.norm(restored, axis=1)


def _extreme_int8_operands() -> tuple[Any, Any]:
    """Queries and rows at int8's extremes (+-127, alternating signs): where 16-bit partial sums would saturate."""
    import torch

    weights = torch.full((16, 64), 127, dtype=torch.int8)
    weights[::2] = -127
    queries = torch.full((32, 64), 127, dtype=torch.int8)
    queries[1::2] = -127
    queries[2] = 1
    return queries, weights


@functools.cache
def int_mm_exact() -> bool:
    """Whether ``torch._int_mm`` (the unpacked first pass) is exact at the extremes here, for one and for many
    queries: without VNNI (an AVX2-only CPU) it sums u8 x s8 pairs in saturating 16-bit lanes, off by thousands."""
    import torch

    queries, weights = _extreme_int8_operands()
    try:
        return all(torch.equal(torch._int_mm(queries[:rows], weights.T).double(),
                               queries[:rows].double() @ weights.double().T) for rows in (1, 3, 32))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


@functools.cache
def onednn_int8() -> bool:
    """Whether oneDNN's packed int8 product (~2x ``torch._int_mm`` for a few queries) runs here and is exact at the
    extremes: a CPU without VNNI may saturate 16-bit partial sums, which would break the first pass's error bound."""
    import torch

    signed, weights = _extreme_int8_operands()
    queries = (signed[:3].short() + 128).to(torch.uint8)  # its input is unsigned: 255, 1 and 129
    try:
        found = torch.ops.onednn.qlinear_pointwise(
            queries, 1.0, 128, torch.ops.onednn.qlinear_prepack(weights, [4, 64]), torch.ones(16),
            torch.zeros(1, dtype=torch.long), None, 1.0, 0, torch.float32, "none", [], "")
        return bool(torch.equal(found.double(), (queries.int() - 128).double() @ weights.double().T))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def int8_first_pass_exact() -> bool:
    """Whether some int8 product is exact here, so the first pass keeps its error bound (else: float32 only)."""
    return onednn_int8() or int_mm_exact()


@dataclass(frozen=True)
class Int8Copy:
    """The matrix with every row scaled to int8, and the worst-case rounding its first pass must allow for."""

    values: Any  # torch int8 (rows, dim), or oneDNN's packed form of it where ``onednn_int8``
    scales: Any  # torch float32 (rows,): row r ~= values[r] * scales[r]
    row_error: float  # the largest ||row - values * scale|| over rows
    row_norm: float  # the largest ||values * scale|| over rows
    packed: bool

    @classmethod
    def of(cls, matrix: np.ndarray, chunk: int = 65_536, pack: bool = True) -> Int8Copy:
        """Quantised ``chunk`` rows at a time, so building it never holds a second float copy of the matrix;
        packed for oneDNN where ``pack`` and it runs exactly here."""
        import torch

        values = np.empty(matrix.shape, np.int8)
        scales = np.empty(len(matrix), np.float32)
        row_error = row_norm = 0.0
        for start in range(0, len(matrix), chunk):
            part = slice(start, start + chunk)
            values[part], scales[part], errors, norms = quantize(matrix[part])
            row_error, row_norm = max(row_error, float(errors.max())), max(row_norm, float(norms.max()))
        tensor = torch.from_numpy(values)
        packed = pack and onednn_int8()
        if packed:  # laid out for a few queries at once, what a server's batches hold
            tensor = torch.ops.onednn.qlinear_prepack(tensor, [4, matrix.shape[1]])
        return cls(tensor, torch.from_numpy(scales), row_error, row_norm, packed)

    def scores(self, queries: np.ndarray) -> tuple[Any, np.ndarray]:
        """Approximate scores of every row (torch float32, queries x rows) and each query's bound on their error.

        Writing a row as ``m = m8 + e`` and a query as ``q = q8 + f`` (int8 parts times their scales),
        ``q.m - q8.m8 = q.e + f.m8``, so each score is off by at most ``|q| |e| + |f| |m8|`` (Cauchy-Schwarz).
        """
        import torch

        peak = float(np.abs(queries).max()) if queries.size else 0.0
        scale = peak / 127 if peak > 0 else 1.0  # one scale for the batch: oneDNN takes one for its input
        ints = np.rint(queries / scale).astype(np.int8)
        errors = np.linalg.norm(queries - ints * np.float32(scale), axis=1)
        bounds = np.linalg.norm(queries, axis=1) * self.row_error + errors * self.row_norm + _FLOAT_SLACK
        if self.packed:
            shifted = torch.from_numpy((ints.astype(np.int16) + 128).astype(np.uint8))  # its input is unsigned
            approx = torch.ops.onednn.qlinear_pointwise(shifted, scale, 128, self.values, self.scales,
                                                        torch.zeros(1, dtype=torch.long), None, 1.0, 0,
                                                        torch.float32, "none", [], "")
        else:
            approx = torch._int_mm(torch.from_numpy(ints), self.values.T).float()
            approx *= self.scales * scale
        return approx, bounds


def int8_top_k(queries: np.ndarray, matrix: np.ndarray, copy: Int8Copy, ks: Sequence[int],
               excluded: np.ndarray | None) -> Ranking:
    """Each query's exact top-k rows of ``matrix`` (columns and float32 scores, best first), found in two passes.

    Why: the first pass scores every row against ``copy`` (int8: a quarter of the bytes, a native int8 product) ~4x
    faster than float32 for a few queries. A row whose true score reaches the true k-th best lies within twice the
    approximate scores' error bound of the approximate k-th best, so rescoring those few candidates in float32
    gives exactly the hits of a float32 pass. ``excluded`` (a boolean mask) rows are never returned.
    """
    import torch

    approx, bounds = copy.scores(queries)
    if excluded is not None:
        approx[:, torch.from_numpy(excluded)] = -np.inf
    kth = torch.topk(approx, min(max(ks), approx.shape[1]), dim=1).values.numpy()
    reach = np.minimum(ks, approx.shape[1]) - 1
    # the lowest score a hit can have, never below the lowest float: an excluded (-inf) row is no candidate
    floors = np.maximum(kth[np.arange(len(ks)), reach] - 2 * bounds, np.finfo(np.float32).min)
    rows, columns = torch.nonzero(approx >= torch.from_numpy(floors.astype(np.float32))[:, None], as_tuple=True)
    starts = np.searchsorted(rows.numpy(), np.arange(len(ks) + 1))
    columns = columns.numpy()
    ranking = []
    for row, k in enumerate(ks):
        candidates = columns[starts[row]:starts[row + 1]]
        found, scores = top_k((matrix[candidates] @ queries[row])[None], k)
        ranking.append((candidates[found[0]], scores[0]))
    return ranking


def mask_of(positions: np.ndarray, size: int) -> np.ndarray:
    keep = np.zeros(size, bool)
    keep[positions] = True
    return keep


def rows_by_k(ks: Sequence[int]) -> list[tuple[int, list[int]]]:
    """Row numbers grouped by their k, so each group's top-k is selected at once."""
    groups: dict[int, list[int]] = {}
    for row, k in enumerate(ks):
        groups.setdefault(int(k), []).append(row)
    return list(groups.items())


def exact_ranking(state: LiveVectors, queries: np.ndarray, k: int | Sequence[int],
                  allowed: np.ndarray | None) -> Ranking:
    """Brute force over the live rows, or over ``allowed`` positions only; ``k`` is one or one per row.

    Exact search is numpy matmul + argpartition: on two cores it is over twice as fast as ``faiss.IndexFlatIP`` for
    single queries over 1M x 384 (memory bound, ~55 ms); where torch is loaded, an int8 first pass (same hits).
    """
    ks = [k] * len(queries) if isinstance(k, int) else list(k)
    gather = allowed is not None and len(allowed) * 4 < state.size
    matrix = state.matrix[allowed] if gather else state.matrix
    excluded = None
    if not gather:
        keep = state.live if allowed is None else mask_of(allowed, state.size)
        excluded = None if keep.all() else ~keep
    ranking: Ranking = []
    shadow = None if gather else state.int8_copy()
    block = max(1, _SCORE_BLOCK // max(1, len(matrix)))
    for start in range(0, len(queries), block):
        if shadow is not None:
            ranking += int8_top_k(queries[start:start + block], matrix, shadow, ks[start:start + block], excluded)
            continue
        scores = queries[start:start + block] @ matrix.T
        if excluded is not None:
            scores[:, excluded] = -np.inf
        ranked: Ranking = [None] * len(scores)  # type: ignore[list-item]
        for block_k, rows in rows_by_k(ks[start:start + block]):
            columns, values = top_k(scores if len(rows) == len(scores) else scores[rows], block_k)
            for row, cols, vals in zip(rows, columns, values):
                found = vals > -np.inf
                ranked[row] = (allowed[cols[found]] if gather else cols[found], vals[found])  # type: ignore[index]
        ranking += ranked
    return ranking
