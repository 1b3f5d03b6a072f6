"""Vector checks, the live vector matrix held in memory, and exact top-k search over it."""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from geovec.errors import GeovecInputError
from geovec.index.kernels import Choice, Ranking, choose, float_ranking, rows_by_k, top_k

__all__ = ["LiveVectors", "Ranking", "check_vectors", "exact_ranking", "mask_of", "rows_by_k", "top_k"]

NORM_TOLERANCE = 1e-3
_SCORE_BLOCK = 1 << 26  # floats per (queries x rows) score block: bounds memory of batched exact search


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
        self._changes = 0  # counts appends and compactions, so the kernel's prepared copy knows when it is stale
        self._kernel: tuple[int, Choice] | None = None

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

    def kernel(self, remeasure: bool = False) -> Choice:
        """The exact-search kernel chosen for these vectors (measured once per CPU and size, see ``kernels``),
        prepared over the current matrix; prepared again after appends and compactions."""
        if remeasure or self._kernel is None or self._kernel[0] != self._changes:
            self._kernel = None  # its copy of the vectors goes before the next one is made
            self._kernel = (self._changes, choose(self.matrix, remeasure=remeasure))
        return self._kernel[1]

    def positions(self, rowids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.rowids, rowids)


def mask_of(positions: np.ndarray, size: int) -> np.ndarray:
    keep = np.zeros(size, bool)
    keep[positions] = True
    return keep


def exact_ranking(state: LiveVectors, queries: np.ndarray, k: int | Sequence[int],
                  allowed: np.ndarray | None) -> Ranking:
    """Brute force over the live rows, or over ``allowed`` positions only; ``k`` is one or one per row.

    Over all rows (deleted or filtered ones masked) it runs the kernel measured fastest here (``state.kernel()``),
    which gives exactly numpy float32's hits; a filter that keeps under a quarter of the rows gathers them and
    multiplies in numpy.
    """
    ks = [k] * len(queries) if isinstance(k, int) else list(k)
    if allowed is not None and len(allowed) * 4 < state.size:
        gathered = state.matrix[allowed]
        return [(allowed[columns], values) for columns, values in in_blocks(
            lambda part, part_ks: float_ranking(part, gathered, part_ks, None), queries, ks, len(allowed))]
    keep = state.live if allowed is None else mask_of(allowed, state.size)
    excluded = None if keep.all() else ~keep
    kernel = state.kernel().for_queries(len(queries))
    return in_blocks(lambda part, part_ks: kernel.rank(part, part_ks, excluded), queries, ks, state.size)


def in_blocks(rank: Callable[[np.ndarray, list[int]], Ranking], queries: np.ndarray, ks: list[int],
              rows: int) -> Ranking:
    """``rank`` over blocks of queries, so a batch over many rows never holds more than ``_SCORE_BLOCK`` floats."""
    block = max(1, _SCORE_BLOCK // max(1, rows))
    return [ranked for start in range(0, len(queries), block)
            for ranked in rank(queries[start:start + block], ks[start:start + block])]
