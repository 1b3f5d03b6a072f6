"""Vector checks, the live vector matrix held in memory, and exact top-k search over it."""

from __future__ import annotations

import sys
from typing import Any, Iterable, Sequence

import numpy as np

from geovec.errors import GeovecInputError
from geovec.precision import native_bfloat16

NORM_TOLERANCE = 1e-3
# A bfloat16 score of two unit vectors is off by at most 2^-7 (each input rounded to 8 significant bits) plus 2^-8
# (the bfloat16 result rounded), scaled by the norms NORM_TOLERANCE allows.
BFLOAT16_SCORE_ERROR = (2 ** -7 + 2 ** -8) * (1 + NORM_TOLERANCE) ** 2
BFLOAT16_MIN_ROWS = 8192  # below this a float32 pass is fast enough and a bfloat16 copy is not worth its memory
_SCORE_BLOCK = 1 << 26  # floats per (queries x rows) score block: bounds memory of batched exact search

Ranking = list[tuple[np.ndarray, np.ndarray]]  # per query: positions in LiveVectors and their scores, best first


def check_vectors(vectors, rows: int, dim: int) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.shape != (rows, dim):
        raise GeovecInputError("vectors", f"expected shape ({rows}, {dim}): one {dim}-d vector per record, "
                                          f"got {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if len(bad):
        raise GeovecInputError(f"vectors[{bad[0]}]", "contains NaN or infinite values")
    norms = np.linalg.norm(array, axis=1)
    bad = np.flatnonzero(np.abs(norms - 1) > NORM_TOLERANCE)
    if len(bad):
        raise GeovecInputError(f"vectors[{bad[0]}]", f"L2 norm is {norms[bad[0]]:.4g}; vectors must be "
                                                     f"L2-normalised (norm 1 ± {NORM_TOLERANCE}) for cosine search")
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
        self._changes = 0  # counts appends and compactions, so the bfloat16 copy knows when it is stale
        self._bfloat16: tuple[int, Any] | None = None

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

    def bfloat16_matrix(self) -> Any:
        """A bfloat16 torch copy of the matrix for the first pass of ``bfloat16_top_k``, or None where that does not
        pay: fewer than ``BFLOAT16_MIN_ROWS`` rows, no native bfloat16 on this CPU, or torch not loaded yet (a
        process that searches vectors it did not embed should not pay ~1 s to import it). Costs half the float32
        matrix's memory; rebuilt after the vectors change."""
        if self.size < BFLOAT16_MIN_ROWS or "torch" not in sys.modules or not native_bfloat16("cpu"):
            return None
        if self._bfloat16 is None or self._bfloat16[0] != self._changes:
            import torch

            self._bfloat16 = (self._changes, torch.from_numpy(self.matrix).to(torch.bfloat16))
        return self._bfloat16[1]

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


def bfloat16_top_k(queries: np.ndarray, matrix: np.ndarray, shadow: Any, ks: Sequence[int],
                   excluded: np.ndarray | None) -> Ranking:
    """Each query's exact top-k rows of ``matrix`` (columns and float32 scores, best first), found in two passes.

    Why: the first pass scores every row against ``shadow`` (the matrix in bfloat16: half the bytes, native
    multiply) ~3x faster than float32. A row whose true score reaches the true k-th best has a bfloat16 score within
    2 x ``BFLOAT16_SCORE_ERROR`` of the bfloat16 k-th best, so rescoring those few candidates in float32 gives
    exactly the hits of a float32 pass. ``excluded`` (a boolean mask) rows are never returned.
    """
    import torch

    approx = (torch.from_numpy(np.ascontiguousarray(queries)).to(torch.bfloat16) @ shadow.T).float()
    if excluded is not None:
        approx[:, torch.from_numpy(excluded)] = -np.inf
    kth = torch.topk(approx, min(max(ks), approx.shape[1]), dim=1).values
    ranking = []
    for row, k in enumerate(ks):
        scores = approx[row]
        floor = float(kth[row, min(k, approx.shape[1]) - 1]) - 2 * BFLOAT16_SCORE_ERROR
        candidates = torch.nonzero((scores >= floor) & (scores > -np.inf)).flatten().numpy()
        columns, values = top_k((matrix[candidates] @ queries[row])[None], k)
        ranking.append((candidates[columns[0]], values[0]))
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
    single queries over 1M x 384 (memory bound, ~55 ms); with native bfloat16, a bfloat16 first pass (same hits).
    """
    ks = [k] * len(queries) if isinstance(k, int) else list(k)
    gather = allowed is not None and len(allowed) * 4 < state.size
    matrix = state.matrix[allowed] if gather else state.matrix
    excluded = None
    if not gather:
        keep = state.live if allowed is None else mask_of(allowed, state.size)
        excluded = None if keep.all() else ~keep
    ranking: Ranking = []
    shadow = None if gather else state.bfloat16_matrix()
    block = max(1, _SCORE_BLOCK // max(1, len(matrix)))
    for start in range(0, len(queries), block):
        if shadow is not None:
            ranking += bfloat16_top_k(queries[start:start + block], matrix, shadow, ks[start:start + block], excluded)
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
