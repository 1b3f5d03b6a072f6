"""The HNSW path: recall against brute force, reuse of the saved graph, newer rows searched as a delta."""

import numpy as np
import pytest

from geovec.errors import GeovecIndexError, GeovecInputError
from geovec.index import Record, VectorIndex
from geovec.index.store import ANN_NAME

DIM = 64


def clustered_vectors(n, seed, clusters=50):
    """Unit vectors around a few centres, like real embeddings (random ones are HNSW's worst case)."""
    centres = np.random.default_rng(0).standard_normal((clusters, DIM))
    rng = np.random.default_rng(seed)
    vectors = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def top_ids(vectors, ids, query, k=10):
    return [ids[i] for i in np.argsort(-(vectors @ query))[:k]]


@pytest.fixture
def annotated(tmp_path):
    vectors = clustered_vectors(5000, seed=1)
    ids = [f"v{i}" for i in range(5000)]
    index = VectorIndex.create(tmp_path / "idx", DIM)
    index.add([Record(id=i) for i in ids], vectors)
    index.build_ann()
    yield index, vectors, ids
    index.close()


def test_ann_recall_at_10_against_brute_force(annotated):
    index, vectors, ids = annotated
    queries = clustered_vectors(100, seed=2)
    approximate = index.search(queries, k=10)  # the graph is used by default once built
    exact = index.search(queries, k=10, exact=True)
    recall = np.mean([len({h.id for h in got} & set(top_ids(vectors, ids, q))) / 10
                      for q, got in zip(queries, approximate)])
    assert recall >= 0.95
    assert all([h.id for h in got] == top_ids(vectors, ids, q) for q, got in zip(queries, exact))
    scores = [h.score for h in approximate[0]]
    assert scores == sorted(scores, reverse=True)


def test_saved_graph_is_reused_and_newer_rows_are_found(annotated, tmp_path):
    index, vectors, ids = annotated
    graph = tmp_path / "idx" / ANN_NAME
    saved_at = graph.stat().st_mtime_ns
    index.close()
    newer = clustered_vectors(30, seed=3)
    with VectorIndex.open(tmp_path / "idx") as index:
        assert index.has_ann
        index.add([Record(id=f"late{i}") for i in range(30)], newer)
        for i in (0, 17, 29):
            assert index.search(newer[i], k=1, exact=False)[0].id == f"late{i}"
        assert index.search(vectors[10], k=1, exact=False)[0].id == "v10"
    with VectorIndex.open(tmp_path / "idx") as index:  # and again after a restart, delta read back from disk
        assert [index.search(newer[i], k=1, exact=False)[0].id for i in range(30)] == [f"late{i}" for i in range(30)]
    assert graph.stat().st_mtime_ns == saved_at


def test_deleted_and_replaced_items_never_come_back_from_the_graph(annotated, tmp_path):
    index, vectors, ids = annotated
    index.delete(["v1", "v2"])
    index.add([Record(id="v3", captions=["moved"])], clustered_vectors(1, seed=4), upsert=True)
    moved = clustered_vectors(1, seed=4)[0]
    for i in (1, 2, 3):
        assert f"v{i}" not in [h.id for h in index.search(vectors[i], k=10, exact=False) if h.score > 0.99]
    index.close()
    with VectorIndex.open(tmp_path / "idx") as index:  # the cache now lacks the deleted rows the graph still has
        hits = index.search(vectors[:4], k=10, exact=False)
        assert not {"v1", "v2"} & {h.id for row in hits for h in row}
        by_id = dict(zip(ids, vectors))
        for query, row in zip(vectors[:4], hits):  # each hit carries its own item's score
            assert all(h.score == pytest.approx(float(by_id[h.id] @ query), abs=1e-5) for h in row if h.id != "v3")
            assert len({h.id for h in row}) == 10
        for i in (1, 2):
            assert ([h.id for h in index.search(vectors[i], k=3, exact=False)]
                    == [h.id for h in index.search(vectors[i], k=3, exact=True)])
        for query, row in zip(vectors[:4], hits):  # the new v3 may rank, scored by its new vector
            assert all(h.score == pytest.approx(float(moved @ query), abs=1e-5) for h in row if h.id == "v3")
        assert hits[0][0].id == "v0"
        assert index.search(clustered_vectors(1, seed=4)[0], k=1, exact=False)[0].record.captions == ["moved"]


def test_rebuilding_the_graph_covers_new_items(annotated, tmp_path):
    index, _, _ = annotated
    newer = clustered_vectors(10, seed=5)
    index.add([Record(id=f"n{i}") for i in range(10)], newer)
    index.build_ann(M=16, ef_construction=40, ef_search=32)
    assert index.search(newer[4], k=1, exact=False)[0].id == "n4"


def test_build_ann_checks_its_arguments_and_needs_items(tmp_path):
    with VectorIndex.create(tmp_path / "idx", DIM) as index:
        with pytest.raises(GeovecIndexError, match="is empty: add items before building"):
            index.build_ann()
        with pytest.raises(GeovecInputError, match="M: must be an integer >= 2"):
            index.build_ann(M=1)
        assert not index.has_ann
