"""The int8 first pass of exact search: the same hits as float32 brute force, near-ties and exclusions included."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # (also: the index takes its int8 first pass only where torch is loaded)

from geovec.index import Record, VectorIndex
from geovec.index.vectors import (
    FIRST_PASS_MIN_ROWS,
    Int8Copy,
    int8_top_k,
    int_mm_exact,
    onednn_int8,
    quantize,
    top_k,
)


def clustered(rows: int, seed: int = 0) -> np.ndarray:
    """Tight clusters of unit vectors: many scores within int8's rounding of each other."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, 32)).astype(np.float32)
    vectors = centres[rng.integers(0, 50, rows)] + 0.01 * rng.standard_normal((rows, 32)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def require_exact_int8(packed: bool = True) -> None:
    """Skip where the product an ``Int8Copy`` would use saturates (no VNNI): the index never uses it there."""
    if not ((packed and onednn_int8()) or int_mm_exact()):
        pytest.skip("int8 products saturate on this CPU (AVX2 without VNNI): the index searches in float32 here")


@pytest.mark.parametrize("packed", [True, False], ids=["onednn", "int_mm"])
@pytest.mark.parametrize("exclude", [False, True])
def test_int8_first_pass_finds_exactly_the_float32_top_k(exclude, packed):
    require_exact_int8(packed)
    matrix = clustered(20_000)
    queries = clustered(12, seed=1)
    excluded = np.random.default_rng(2).random(len(matrix)) < 0.4 if exclude else None
    ks = [1, 10, 100] * 4
    found = int8_top_k(queries, matrix, Int8Copy.of(matrix, chunk=7_000, pack=packed), ks, excluded)
    scores = queries @ matrix.T
    if excluded is not None:
        scores[:, excluded] = -np.inf
    for row, k in enumerate(ks):
        columns, values = top_k(scores[row:row + 1], k)
        assert sorted(found[row][0]) == sorted(columns[0])  # the very same rows, although many nearly tie
        assert found[row][1] == pytest.approx(values[0], abs=1e-6)  # float32 scores, best first


def test_excluded_rows_never_come_back_even_when_fewer_than_k_remain():
    require_exact_int8()
    matrix = clustered(1_000)
    excluded = np.ones(len(matrix), bool)
    excluded[[3, 500, 999]] = False
    (columns, values), = int8_top_k(matrix[:1], matrix, Int8Copy.of(matrix), [10], excluded)
    assert sorted(columns) == [3, 500, 999] and np.all(np.diff(values) <= 0)


def test_a_large_index_searches_exactly_after_it_changes(tmp_path):
    """Above FIRST_PASS_MIN_ROWS the index may search through an int8 copy; after adding and deleting items its
    results still equal brute force over what is live."""
    vectors = clustered(FIRST_PASS_MIN_ROWS + 500)
    with VectorIndex.create(tmp_path / "big", 32) as store:
        store.add([Record(id=f"i{n}") for n in range(len(vectors) - 500)], vectors[:-500])
        query = vectors[7] + 0.001
        query /= np.linalg.norm(query)
        store.search(query, 10, exact=True)  # builds the in-memory (and int8) copies
        store.add([Record(id=f"i{n}") for n in range(len(vectors) - 500, len(vectors))], vectors[-500:])
        store.delete([f"i{n}" for n in range(400)])
        hits = store.search(query, 25, exact=True)
    live = np.arange(400, len(vectors))
    columns, values = top_k((vectors[live] @ query)[None], 25)
    assert {hit.id for hit in hits} == {f"i{n}" for n in live[columns[0]]}  # near-ties may swap places
    assert [hit.score for hit in hits] == pytest.approx(values[0], abs=1e-6)


@pytest.mark.parametrize("packed", [True, False], ids=["onednn", "int_mm"])
def test_approximate_scores_are_within_their_bounds(packed):
    require_exact_int8(packed)
    matrix = clustered(5_000) * np.linspace(0.5, 1.5, 5_000, dtype=np.float32)[:, None]  # any norms, not only 1
    queries = np.vstack([clustered(5, seed=3), -clustered(2, seed=4) * 0.1])
    copy = Int8Copy.of(matrix, pack=packed)
    approx, bounds = copy.scores(queries)
    error = np.abs(approx.numpy() - queries @ matrix.T)
    assert np.all(error <= bounds[:, None]) and bounds.max() < 0.05
    if packed:
        assert copy.packed == onednn_int8()  # packed where oneDNN is exact here, else the int_mm form


def test_int8_rows_are_within_the_error_the_first_pass_allows_for():
    matrix = np.vstack([clustered(300), np.zeros((1, 32), np.float32), np.full((1, 32), 0.5, np.float32)])
    values, scales, errors, norms = quantize(matrix)
    assert values.dtype == np.int8 and np.abs(values).max() == 127
    assert np.allclose(np.linalg.norm(matrix - values * scales[:, None], axis=1), errors)
    assert np.allclose(np.linalg.norm(values * scales[:, None], axis=1), norms)
    assert errors.max() < 0.05 * np.linalg.norm(matrix, axis=1).max()  # 8 bits a component, scaled per row
    assert errors[-2] == 0 and errors[-1] == 0  # an all-zero row and an exactly representable one


def test_the_int_mm_probe_tells_whether_real_int8_products_are_exact():
    """On an AVX2-only CPU (scripts/test_capped.sh) torch._int_mm saturates and the probe must say so, else the
    first pass would rank with scores off by far more than its bound and miss true hits."""
    matrix = clustered(5_000) * np.linspace(0.5, 1.5, 5_000, dtype=np.float32)[:, None]
    rows, _, _, _ = quantize(matrix)
    queries, _, _, _ = quantize(np.vstack([clustered(5, seed=3), -clustered(2, seed=4)]))
    found = torch._int_mm(torch.from_numpy(queries), torch.from_numpy(rows).T).numpy()
    assert np.array_equal(found, queries.astype(np.int64) @ rows.T.astype(np.int64)) == int_mm_exact()
