"""VectorIndex on real SQLite + numpy: persistence, the vector cache, readers and writers, folder checks (what every
backend does is in test_store_contract.py)."""

import shutil

import numpy as np
import pytest

from geovec.errors import GeovecIndexError
from geovec.index import Record, VectorIndex
from geovec.index.store import CACHE_NAME

DIM = 16


def unit_vectors(n, seed, dim=DIM):
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def brute_force(vectors, ids, query, k):
    scores = vectors @ query
    order = np.argsort(-scores)[:k]
    return [ids[i] for i in order], scores[order]


def ranking(hits):
    return [hit.id for hit in hits], np.array([hit.score for hit in hits])


@pytest.fixture
def filled(tmp_path):
    """An index of 600 random items (ids r0..r599) and the vectors it holds."""
    vectors = unit_vectors(600, seed=1)
    index = VectorIndex.create(tmp_path / "idx", DIM, model={"name": "test-model"})
    index.add([Record(id=f"r{i}", lat=float(i % 80), lon=float(i % 170)) for i in range(300)], vectors[:300])
    index.add([Record(id=f"r{i}") for i in range(300, 600)], vectors[300:])
    yield index, vectors, [f"r{i}" for i in range(600)]
    index.close()


def test_reopen_gives_same_items_records_and_results(filled, tmp_path):
    index, _, ids = filled
    queries = unit_vectors(5, seed=4)
    before = [ranking(hits) for hits in index.search(queries, k=10)]
    records = {i: index.get(i) for i in ids}
    index.close()
    assert (tmp_path / "idx" / CACHE_NAME).is_file()
    for drop_cache in (False, True):  # from the cache, then rebuilt from SQLite alone
        if drop_cache:
            (tmp_path / "idx" / CACHE_NAME).unlink()
        with VectorIndex.open(tmp_path / "idx") as reopened:
            assert len(reopened) == 600 and reopened.ids() == ids and reopened.dim == DIM
            assert reopened.model == {"name": "test-model"}
            assert all(reopened.get(i) == records[i] for i in ids)
            after = [ranking(hits) for hits in reopened.search(queries, k=10)]
        for (ids_before, scores_before), (ids_after, scores_after) in zip(before, after):
            assert ids_after == ids_before
            np.testing.assert_array_equal(scores_after, scores_before)


def test_append_delete_and_upsert_survive_reopen(filled, tmp_path):
    index, vectors, ids = filled
    index.close()
    extra = unit_vectors(50, seed=5)
    with VectorIndex.open(tmp_path / "idx") as index:
        index.add([Record(id=f"new{i}") for i in range(50)], extra)
        assert index.delete(["r0", "r1", "new0", "not-there"]) == 3
        absent = [f"absent{i}" for i in range(600)]  # with the rest, more than one query's worth of ids
        present = [f"new{i}" for i in range(1, 50)]
        assert index.missing(["r0", "r2", "new0", *present, *absent]) == ["r0", "new0", *absent]
        assert index.delete([]) == 0
        replacement = unit_vectors(1, seed=6)
        index.add([Record(id="r2", captions=["replaced"])], replacement, upsert=True)
        assert len(index) == 600 + 50 - 3
        assert index.search(extra[3], k=1)[0].id == "new3"
        assert index.search(vectors[0], k=1)[0].id != "r0"
    all_vectors = np.vstack([vectors, extra])
    all_ids = ids + [f"new{i}" for i in range(50)]
    keep = [i for i, name in enumerate(all_ids) if name not in {"r0", "r1", "new0", "r2"}]
    live_vectors = np.vstack([all_vectors[keep], replacement])
    live_ids = [all_ids[i] for i in keep] + ["r2"]
    with VectorIndex.open(tmp_path / "idx") as index:
        assert len(index) == 647 and index.get("r0") is None and index.get("r2").captions == ["replaced"]
        assert index.search(replacement[0], k=1)[0].id == "r2"
        for query in unit_vectors(10, seed=7):
            assert ranking(index.search(query, k=10))[0] == brute_force(live_vectors, live_ids, query, 10)[0]


def test_a_stale_vector_cache_is_brought_up_to_date(filled, tmp_path):
    index, vectors, ids = filled
    index.search(vectors[0], k=1)
    index.close()
    shutil.copy(tmp_path / "idx" / CACHE_NAME, tmp_path / "old_cache.npz")
    with VectorIndex.open(tmp_path / "idx") as index:
        index.add([Record(id="late")], unit_vectors(1, seed=8))
        index.delete([f"r{i}" for i in range(100)])
    shutil.copy(tmp_path / "old_cache.npz", tmp_path / "idx" / CACHE_NAME)  # as if the last close never happened
    with VectorIndex.open(tmp_path / "idx") as index:
        assert index.search(unit_vectors(1, seed=8)[0], k=1)[0].id == "late"
        got = ranking(index.search(vectors[5], k=20))[0]
    assert got == brute_force(vectors[100:], ids[100:], vectors[5], 20)[0]


def test_deleting_most_items_keeps_results_right(filled):
    index, vectors, ids = filled
    index.search(vectors[0], k=1)  # load vectors into memory so deletions apply there too
    index.delete(ids[:500])
    assert len(index) == 100 and index.ids() == ids[500:]
    for query in unit_vectors(5, seed=9):
        assert ranking(index.search(query, k=10))[0] == brute_force(vectors[500:], ids[500:], query, 10)[0]
    index.delete(ids[500:])
    assert len(index) == 0 and index.search(vectors[0], k=5) == []


def test_readers_see_each_commit_of_a_writer(filled, tmp_path):
    writer, vectors, _ = filled
    with VectorIndex.open(tmp_path / "idx") as reader:
        assert reader.search(vectors[7], k=1)[0].id == "r7"
        fresh = unit_vectors(1, seed=10)
        writer.add([Record(id="fresh")], fresh)
        writer.delete(["r7"])
        assert reader.search(fresh[0], k=1)[0].id == "fresh"
        assert reader.search(vectors[7], k=1)[0].id != "r7" and len(reader) == 600


def test_graph_search_needs_a_graph(filled):
    index, _, _ = filled
    with pytest.raises(GeovecIndexError, match="has no ANN index: call build_ann"):
        index.search(unit_vectors(1, seed=0)[0], exact=False)


def test_create_and_open_refuse_what_is_not_an_index(tmp_path):
    with pytest.raises(GeovecIndexError, match=r"no geovec index at .*nowhere; build one with `geovec index build`"):
        VectorIndex.open(tmp_path / "nowhere")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "index.sqlite").write_text("not a database")
    with pytest.raises(GeovecIndexError, match="junk.index.sqlite is not a readable geovec index"):
        VectorIndex.open(tmp_path / "junk")
    (tmp_path / "file").write_text("x")
    with pytest.raises(GeovecIndexError, match="it is a file, not a folder"):
        VectorIndex.create(tmp_path / "file", DIM)
    with VectorIndex.create(tmp_path / "idx", DIM) as index:
        assert len(index) == 0 and index.search(unit_vectors(1, seed=0)[0]) == []
