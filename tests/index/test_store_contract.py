"""The ``VectorStore`` contract, run on both backends: a folder index and a collection on a real Chroma server.

Whatever a caller may rely on without knowing the backend is tested here once; what only one backend does (the
folder's vector cache, graph and crash safety; Chroma's URLs, cells and concurrency) stays in its own test file.
"""

import json
import uuid

import numpy as np
import pytest

from geovec.errors import GeovecIndexError, GeovecInputError
from geovec.index import ChromaIndex, GeoFilter, Record, VectorIndex, VectorStore, create_index, open_index

DIM = 16
EF_SEARCH = 400  # Chroma's graph breadth, above the collection sizes used here: its HNSW ranks exactly


def unit_vectors(n, seed, dim=DIM):
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def ranking(hits):
    return [hit.id for hit in hits], np.array([hit.score for hit in hits])


@pytest.fixture(params=["folder", "chroma"])
def location(request, tmp_path):
    """Where a fresh index of the backend goes: a folder path, or a new collection's ``chroma://`` URL."""
    if request.param == "folder":
        return str(tmp_path / "idx")
    return f"chroma://{request.getfixturevalue('chroma_server')}/t-{uuid.uuid4().hex[:12]}"


def create(location, dim=DIM, **kwargs) -> VectorStore:
    if location.startswith("chroma://"):
        return ChromaIndex.create(location, dim, ef_search=EF_SEARCH, **kwargs)
    return VectorIndex.create(location, dim, **kwargs)


@pytest.fixture
def filled(location):
    """An index of 80 items (ids r0..r79; the first 40 located) and the vectors it holds."""
    vectors = unit_vectors(80, seed=1)
    with create(location, model={"name": "test-model"}) as index:
        index.add([Record(id=f"r{i}", lat=float(i), lon=float(-2 * i)) for i in range(40)], vectors[:40])
        index.add([Record(id=f"r{i}") for i in range(40, 80)], vectors[40:])
        yield index, vectors, [f"r{i}" for i in range(80)]


def brute_force(vectors, ids, query, k):
    order = np.argsort(-(vectors @ query))[:k]
    return [ids[i] for i in order]


def test_open_and_create_by_location_give_the_backend_with_its_capabilities(location):
    with create_index(location, DIM, model={"name": "minilm", "path": None}) as index:
        assert isinstance(index, VectorStore) and index.dim == DIM and len(index) == 0
    with open_index(location) as index:
        assert index.model == {"name": "minilm", "path": None}
        assert index.info() == {"path": location, "items": 0, "dim": DIM, "model": {"name": "minilm", "path": None}}
        if location.startswith("chroma://"):
            assert isinstance(index, ChromaIndex) and index.folder is None and index.path == location
            assert index.has_ann and not index.capabilities.build_ann and not index.capabilities.folder
        else:
            assert isinstance(index, VectorIndex) and str(index.folder) == location
            assert not index.has_ann and index.capabilities.build_ann and index.capabilities.folder


def test_records_round_trip_and_serialise_to_json(location):
    record = Record(id="scene/1", source="/data/a.png", bbox=(1, 2, 30, 40), lat=52.37, lon=4.9,
                    footprint=(4.8, 52.3, 5.0, 52.4), captions=["a harbour", "ships"], extra={"scene": "port", "n": 3})
    vectors = unit_vectors(2, seed=3)
    with create(location) as index:
        index.add([record, Record(id="bare")], vectors)
        assert index.get("scene/1") == record and index.get("bare") == Record(id="bare") and len(index) == 2
        assert index.get("missing") is None and index.contains("bare") and not index.contains("missing")
        assert sorted(index.ids()) == ["bare", "scene/1"] and index.bounds() == (4.8, 52.3, 5.0, 52.4)
        hit = index.search(vectors[0], k=1)[0]
    data = json.loads(json.dumps(hit.to_dict()))
    assert data["id"] == "scene/1" and data["source"] == "/data/a.png" and data["bbox"] == [1, 2, 30, 40]
    assert data["footprint"] == [4.8, 52.3, 5.0, 52.4] and data["captions"] == ["a harbour", "ships"]
    assert abs(data["score"] - 1) < 1e-5 and data["extra"] == {"scene": "port", "n": 3}
    assert Record(id="x").to_dict() == {"id": "x", "source": None, "bbox": None, "lat": None, "lon": None,
                                        "footprint": None, "captions": [], "extra": {}}


def test_search_matches_brute_force_exactly_and_by_default(filled):
    index, vectors, ids = filled
    queries = unit_vectors(6, seed=2)
    for exact in (True, None):
        batched = index.search(queries, k=10, exact=exact)
        assert len(batched) == 6
        for query, hits in zip(queries, batched):
            assert ranking(hits)[0] == brute_force(vectors, ids, query, 10)
            np.testing.assert_allclose(ranking(hits)[1], np.sort(vectors @ query)[::-1][:10], rtol=0, atol=1e-4)
    assert [h.id for h in index.search(queries[0], k=3)] == [h.id for h in index.search(queries, k=10)[0][:3]]
    assert len(index.search(queries[0], k=1000)) == 80
    within = GeoFilter(within=(-60.0, 10.0, 0.0, 30.0))  # r10..r30
    located = [i for i in range(40) if 10 <= i <= 30]
    hits = index.search(queries[0], k=5, filter=within, exact=True)
    assert [h.id for h in hits] == brute_force(vectors[located], [ids[i] for i in located], queries[0], 5)


def test_missing_upsert_delete_and_len(filled):
    index, vectors, _ = filled
    absent = [f"absent{i}" for i in range(600)]  # more than one lookup's worth of ids
    assert index.missing(["x", "r1", "y", "r7", *absent]) == ["x", "y", *absent]
    replacement = unit_vectors(1, seed=6)
    index.add([Record(id="r2", captions=["replaced"])], replacement, upsert=True)
    index.upsert([Record(id="new")], unit_vectors(1, seed=7))
    assert index.get("r2").captions == ["replaced"] and index.search(replacement[0], k=1)[0].id == "r2"
    assert index.delete(["r3", "r4", "r3", "not-there"]) == 2 and index.delete([]) == 0
    assert len(index) == 79 and not index.contains("r3") and index.contains("new")
    assert "r3" not in [hit.id for hit in index.search(vectors[3], k=5)]


@pytest.mark.parametrize("build_graph", [False, True])
def test_search_many_gives_each_row_what_search_gives_it_alone(filled, build_graph):
    """A server batches concurrent users' queries; each keeps its own k, area filter and exact mode."""
    index, _, _ = filled
    if build_graph:
        if not index.capabilities.build_ann:
            pytest.skip("the server's graph is always there: the case without build_ann covers it")
        index.build_ann(M=8, ef_construction=40)
    queries = unit_vectors(6, seed=3)
    ks = [10, 3, 10, 80, 1, 5]
    within = GeoFilter(within=(-60.0, 0.0, 0.0, 30.0))
    filters = [None, within, None, None, GeoFilter(near=(10.0, -20.0), radius_km=900), within]
    modes = [None, None, True, None, None, True]
    batched = index.search_many(queries, ks, filters, modes)
    for query, k, geo, mode, hits in zip(queries, ks, filters, modes, batched):
        alone = index.search(query, k=k, filter=geo, exact=mode)
        assert [h.id for h in hits] == [h.id for h in alone]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in alone], rtol=0, atol=1e-6)
    assert len(batched[3]) == 80 and all(within.matches(h.record.lat, h.record.lon) for h in batched[1])
    with pytest.raises(GeovecInputError, match="one k, filter and exact mode per query row"):
        index.search_many(queries, ks[:2], filters)


def test_ef_search_is_taken_per_search_only_where_the_backend_can(filled):
    index, vectors, _ = filled
    if index.capabilities.ef_search_per_search:
        assert index.search(vectors[5], k=1, ef_search=16)[0].id == "r5"
        assert index.search_many(vectors[:2], [1, 1], [None, None], ef_search=16)[1][0].id == "r1"
    else:
        with pytest.raises(GeovecInputError, match="ef_search: .* fixes its search breadth when it is created"):
            index.search(vectors[5], k=1, ef_search=16)
    with pytest.raises(GeovecInputError, match="ef_search: must be a positive integer"):
        index.search(vectors[5], k=1, ef_search=0)


def test_writes_are_checked_and_nothing_is_written_on_error(filled):
    index, vectors, _ = filled
    with pytest.raises(GeovecIndexError, match="duplicate id 'a' in the batch"):
        index.add([Record(id="a"), Record(id="a")], unit_vectors(2, seed=11))
    with pytest.raises(GeovecIndexError, match="id 'r3' is already in index .* pass upsert=True"):
        index.add([Record(id="b"), Record(id="r3")], unit_vectors(2, seed=11))
    with pytest.raises(GeovecInputError, match=r"records\[1\]: latitude 100 is outside \[-90, 90\]"):
        index.add([Record(id="c"), Record(id="d", lat=100.0, lon=0.0)], unit_vectors(2, seed=11))
    assert len(index) == 80 and not index.contains("b") and not index.contains("c")
    assert index.search(vectors[3], k=1)[0].id == "r3"


@pytest.mark.parametrize("vectors, problem", [
    (unit_vectors(2, seed=0, dim=DIM + 1), r"vectors: expected shape \(2, 16\): one 16-d vector per record, got \(2, 17\)"),
    (unit_vectors(3, seed=0), r"expected shape \(2, 16\)"),
    (np.vstack([unit_vectors(1, seed=0), np.full((1, DIM), np.nan)]), r"vectors\[1\]: contains NaN or infinite"),
    (unit_vectors(2, seed=0) * 2, r"vectors\[0\]: L2 norm is 2; vectors must be L2-normalised"),
])
def test_bad_vectors_are_rejected_with_the_problem_named(location, vectors, problem):
    with create(location) as index:
        with pytest.raises(GeovecInputError, match=problem):
            index.add([Record(id="a"), Record(id="b")], vectors)
        assert len(index) == 0


@pytest.mark.parametrize("record, problem", [
    (Record(id=" "), r"records\[0\].id: missing or empty"),
    (Record(id="a", lat=10.0), r"records\[0\].lat: give both lat and lon"),
    (Record(id="a", lat=10.0, lon=190.0), r"longitude 190 is outside \[-180, 180\]"),
    (Record(id="a", bbox=(5, 5, 1, 1)), r"records\[0\].bbox: expected x1, y1, x2, y2 with x1 <= x2"),
    (Record(id="a", footprint=(0, 10, 1, 5)), r"footprint: minimum latitude 10 is greater than maximum latitude 5"),
    (Record(id="a", captions="one string"), r"captions: must be a list of strings"),
    (Record(id="a", extra={"when": object()}), r"extra: not JSON-serialisable"),
])
def test_bad_records_are_rejected_with_the_field_named(location, record, problem):
    with create(location) as index:
        with pytest.raises(GeovecInputError, match=problem):
            index.add([record], unit_vectors(1, seed=0))


def test_bad_queries_are_rejected(filled):
    index, _, _ = filled
    with pytest.raises(GeovecInputError, match=r"query: expected a 16-d vector or a \(q, 16\) matrix, got shape \(8,\)"):
        index.search(np.ones(8, np.float32))
    with pytest.raises(GeovecInputError, match="query: contains NaN"):
        index.search(np.full(DIM, np.inf, np.float32))
    with pytest.raises(GeovecInputError, match="k: must be a positive integer"):
        index.search(unit_vectors(1, seed=0)[0], k=0)
    with pytest.raises(GeovecInputError, match="filter: expected a GeoFilter, got tuple"):
        index.search(unit_vectors(1, seed=0)[0], filter=(0, 0, 1, 1))


def test_reopen_create_twice_and_closed(location):
    vectors = unit_vectors(20, seed=3)
    with create(location, model={"name": "minilm", "path": None}) as index:
        index.add([Record(id=f"r{i}", lat=float(i), lon=float(-i)) for i in range(20)], vectors)
        before = ranking(index.search(vectors[5], k=5))
    with open_index(location) as reopened:
        assert reopened.dim == DIM and reopened.model == {"name": "minilm", "path": None} and len(reopened) == 20
        after = ranking(reopened.search(vectors[5], k=5))
        assert after[0] == before[0] and np.allclose(after[1], before[1], atol=1e-6)
        assert reopened.bounds() == (-19.0, 0.0, 0.0, 19.0)
    with pytest.raises(GeovecIndexError, match="an index already exists at"):
        create(location)
    with pytest.raises(GeovecIndexError, match="holds 16-d vectors, not 8-d"):
        create(location, 8, exist_ok=True)
    with pytest.raises(GeovecInputError, match="dim: must be a positive integer"):
        create(location, 0)
    with pytest.raises(GeovecInputError, match="model: not JSON-serialisable"):
        create(location, model={"when": object()})
    index = create(location, exist_ok=True)
    assert len(index) == 20
    index.close()
    index.close()  # closing twice is harmless
    with pytest.raises(GeovecIndexError, match="is closed"):
        len(index)
    with pytest.raises(GeovecIndexError, match="is closed"):
        index.search(vectors[0])
