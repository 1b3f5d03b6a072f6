"""The folder index's approximate search: a FAISS HNSW graph saved as ``ann.faiss`` (``IndexIDMap`` over
``IndexHNSWFlat``, labels are rowids), searched with a selector over the rows still live and allowed.

The graph is derived: built on request over the live vectors, replaced atomically, ignored when unreadable. Rows
added after it was built (larger rowids) are searched exactly as a "delta" and merged; rows deleted since are left
out by the selector, so a graph made at an earlier generation stays right.
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

from geovec.fileio import atomic_write
from geovec.index.vectors import LiveVectors, Ranking, exact_ranking, mask_of


class AnnGraph:
    """The graph file of one index, loaded on first use."""

    def __init__(self, file: Path, dim: int) -> None:
        self.file, self.dim = file, dim
        self._index: faiss.Index | None = None
        self._loaded = False
        self._max_rowid = 0  # the largest rowid the graph holds: every live row up to it is in the graph
        self._selector: tuple[int, np.ndarray | None, int] | None = None  # generation, bitmap, allowed count

    def load(self) -> faiss.Index | None:
        """The saved graph, or None if there is none (or it is unreadable or made for other vectors)."""
        if not self._loaded and self.file.is_file():
            try:
                ann = faiss.read_index(str(self.file))
            except RuntimeError:
                ann = None  # unreadable: searches stay exact until build_ann runs again
            if (isinstance(ann, faiss.IndexIDMap) and ann.d == self.dim and ann.ntotal
                    and ann.metric_type == faiss.METRIC_INNER_PRODUCT):
                self._index, self._max_rowid = ann, int(faiss.vector_to_array(ann.id_map).max())
        self._loaded = True
        return self._index

    def build(self, state: LiveVectors, M: int, ef_construction: int, ef_search: int) -> None:
        """Build the graph over the live vectors (at least one) and save it."""
        graph = faiss.IndexHNSWFlat(self.dim, M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction, graph.hnsw.efSearch = ef_construction, ef_search
        ann = faiss.IndexIDMap(graph)
        ann.add_with_ids(state.matrix[state.live], state.rowids[state.live])
        atomic_write(self.file, lambda temp: faiss.write_index(ann, temp))
        self._index, self._loaded, self._selector = ann, True, None
        self._max_rowid = int(state.rowids[state.live][-1])

    def _allowed(self, state: LiveVectors, allowed: np.ndarray | None) -> tuple[np.ndarray | None, int]:
        """A bitmap over the rowids the graph may return (None: all it holds) and how many graph items it allows.

        Every live row up to the graph's largest rowid is in the graph (rowids only grow and never come back),
        so the graph holds only allowed rows exactly when the counts agree.
        """
        if allowed is None and self._selector and self._selector[0] == state.generation:
            return self._selector[1:]
        covered = np.searchsorted(state.rowids, self._max_rowid, side="right")
        keep = state.live[:covered] if allowed is None else mask_of(allowed[allowed < covered], covered)
        count, bitmap = int(keep.sum()), None
        if count < self._index.ntotal:
            bits = np.zeros(self._max_rowid + 1, bool)
            bits[state.rowids[:covered][keep]] = True
            bitmap = np.packbits(bits, bitorder="little")
        if allowed is None:
            self._selector = (state.generation, bitmap, count)
        return bitmap, count

    def search(self, state: LiveVectors, queries: np.ndarray, k: int, allowed: np.ndarray | None,
               ef_search: int | None) -> Ranking:
        """HNSW over the rows the graph holds, exact over newer rows; exact if the graph comes up short."""
        ann = self.load()
        assert ann is not None, "search() without a graph"
        bitmap, graph_allowed = self._allowed(state, allowed)
        if not graph_allowed:
            return exact_ranking(state, queries, k, allowed)
        # A selector that keeps a fraction f of the graph leaves about f * efSearch usable candidates: widen by 1/f.
        breadth = (ef_search or faiss.downcast_index(ann.index).hnsw.efSearch) * ann.ntotal / graph_allowed
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(k, min(math.ceil(breadth), ann.ntotal))
        if bitmap is not None:
            params.sel = faiss.IDSelectorBitmap(len(bitmap) * 8, faiss.swig_ptr(bitmap))
        _, labels = ann.search(queries, k, params=params)
        if (np.count_nonzero(labels >= 0, axis=1) < min(k, graph_allowed)).any():
            return exact_ranking(state, queries, k, allowed)
        covered = np.searchsorted(state.rowids, self._max_rowid, side="right")
        delta = covered + np.flatnonzero(state.live[covered:]) if allowed is None else allowed[allowed >= covered]
        newer = (exact_ranking(state, queries, k, delta) if len(delta)
                 else [(delta, np.empty(0, np.float32))] * len(queries))
        ranking: Ranking = []
        for query, found, (delta_positions, delta_scores) in zip(queries, labels, newer):
            positions = state.positions(found[found >= 0])
            positions = np.concatenate([positions, delta_positions])
            scores = np.concatenate([state.matrix[positions[: len(positions) - len(delta_positions)]] @ query,
                                     delta_scores])
            order = np.argsort(-scores, kind="stable")[:k]
            ranking.append((positions[order], scores[order]))
        return ranking
