"""The bfloat16 first pass of exact search: the same hits as float32 brute force, near-ties and exclusions included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geovec.index import Record, VectorIndex
from geovec.index.vectors import BFLOAT16_MIN_ROWS, bfloat16_top_k, top_k


def clustered(rows: int, seed: int = 0) -> np.ndarray:
    """Tight clusters of unit vectors: many scores within bfloat16's rounding of each other."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, 32)).astype(np.float32)
    vectors = centres[rng.integers(0, 50, rows)] + 0.01 * rng.standard_normal((rows, 32)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("exclude", [False, True])
def test_bfloat16_first_pass_finds_exactly_the_float32_top_k(exclude):
    matrix = clustered(20_000)
    queries = clustered(12, seed=1)
    excluded = np.random.default_rng(2).random(len(matrix)) < 0.4 if exclude else None
    ks = [1, 10, 100] * 4
    found = bfloat16_top_k(queries, matrix, torch.from_numpy(matrix).to(torch.bfloat16), ks, excluded)
    scores = queries @ matrix.T
    if excluded is not None:
        scores[:, excluded] = -np.inf
    for row, k in enumerate(ks):
        columns, values = top_k(scores[row:row + 1], k)
        assert sorted(found[row][0]) == sorted(columns[0])  # the very same rows, although many nearly tie
        assert found[row][1] == pytest.approx(values[0], abs=1e-6)  # float32 scores, best first


def test_excluded_rows_never_come_back_even_when_fewer_than_k_remain():
    matrix = clustered(1_000)
    excluded = np.ones(len(matrix), bool)
    excluded[[3, 500, 999]] = False
    (columns, values), = bfloat16_top_k(matrix[:1], matrix, torch.from_numpy(matrix).to(torch.bfloat16), [10],
                                        excluded)
    assert sorted(columns) == [3, 500, 999] and np.all(np.diff(values) <= 0)


def test_a_large_index_searches_exactly_after_it_changes(tmp_path):
    """Above BFLOAT16_MIN_ROWS the index may search through a bfloat16 copy; after adding and deleting items its
    results still equal brute force over what is live."""
    vectors = clustered(BFLOAT16_MIN_ROWS + 500)
    with VectorIndex.create(tmp_path / "big", 32) as store:
        store.add([Record(id=f"i{n}") for n in range(len(vectors) - 500)], vectors[:-500])
        query = vectors[7] + 0.001
        query /= np.linalg.norm(query)
        store.search(query, 10, exact=True)  # builds the in-memory (and bfloat16) copies
        store.add([Record(id=f"i{n}") for n in range(len(vectors) - 500, len(vectors))], vectors[-500:])
        store.delete([f"i{n}" for n in range(0, 400)])
        hits = store.search(query, 25, exact=True)
    live = np.arange(400, len(vectors))
    columns, values = top_k((vectors[live] @ query)[None], 25)
    assert {hit.id for hit in hits} == {f"i{n}" for n in live[columns[0]]}  # near-ties may swap places
    assert [hit.score for hit in hits] == pytest.approx(values[0], abs=1e-6)
