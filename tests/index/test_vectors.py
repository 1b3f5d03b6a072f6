"""Exact search through the measured kernel after the index changes, and the int8 kernel's error bound."""

from __future__ import annotations

import numpy as np
import pytest

from geovec.index import Record, VectorIndex
from geovec.index.kernels import MEASURED_MIN_ROWS, OneDnnInt8, onednn_int8, quantize, top_k


def clustered(rows: int, seed: int = 0) -> np.ndarray:
    """Tight clusters of unit vectors: many scores within int8's rounding of each other."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, 32)).astype(np.float32)
    vectors = centres[rng.integers(0, 50, rows)] + 0.01 * rng.standard_normal((rows, 32)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_large_index_searches_exactly_after_it_changes(tmp_path):
    """Above MEASURED_MIN_ROWS the index searches through the kernel measured fastest (int8, FAISS...); after
    adding and deleting items its results still equal brute force over what is live."""
    vectors = clustered(MEASURED_MIN_ROWS + 500)
    with VectorIndex.create(tmp_path / "big", 32) as store:
        store.add([Record(id=f"i{n}") for n in range(len(vectors) - 500)], vectors[:-500])
        query = vectors[7] + 0.001
        query /= np.linalg.norm(query)
        store.search(query, 10, exact=True)  # builds the in-memory copy and the kernel's
        store.add([Record(id=f"i{n}") for n in range(len(vectors) - 500, len(vectors))], vectors[-500:])
        store.delete([f"i{n}" for n in range(0, 400)])
        hits = store.search(query, 25, exact=True)
    live = np.arange(400, len(vectors))
    columns, values = top_k((vectors[live] @ query)[None], 25)
    assert {hit.id for hit in hits} == {f"i{n}" for n in live[columns[0]]}  # near-ties may swap places
    assert [hit.score for hit in hits] == pytest.approx(values[0], abs=1e-6)


@pytest.mark.skipif(not onednn_int8(), reason="oneDNN's int8 product is not exact on this CPU: no int8 kernel")
def test_approximate_scores_are_within_their_bounds():
    matrix = clustered(5_000) * np.linspace(0.5, 1.5, 5_000, dtype=np.float32)[:, None]  # any norms, not only 1
    queries = np.vstack([clustered(5, seed=3), -clustered(2, seed=4) * 0.1])
    kernel = OneDnnInt8()
    kernel.prepare(matrix, chunk=1_700)
    approx, bounds = kernel.scores(queries)
    error = np.abs(approx.numpy() - queries @ matrix.T)
    assert np.all(error <= bounds[:, None]) and bounds.max() < 0.05


def test_int8_rows_are_within_the_error_the_first_pass_allows_for():
    matrix = np.vstack([clustered(300), np.zeros((1, 32), np.float32), np.full((1, 32), 0.5, np.float32)])
    values, scales, errors, norms = quantize(matrix)
    assert values.dtype == np.int8 and np.abs(values).max() == 127
    assert np.allclose(np.linalg.norm(matrix - values * scales[:, None], axis=1), errors)
    assert np.allclose(np.linalg.norm(values * scales[:, None], axis=1), norms)
    assert errors.max() < 0.05 * np.linalg.norm(matrix, axis=1).max()  # 8 bits a component, scaled per row
    assert errors[-2] == 0 and errors[-1] == 0  # an all-zero row and an exactly representable one
