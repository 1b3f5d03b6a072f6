"""ChromaIndex against a real Chroma server (a subprocess on a free port, ``chroma_server`` in conftest.py): URLs,
the same results as VectorIndex with and without geographic filters, end-to-end search with minilm, and many users
at once. What every backend does is in test_store_contract.py."""

import socket
import threading
import uuid

import numpy as np
import pytest

pytest.importorskip("chromadb")

from geovec.errors import GeovecIndexError, GeovecInputError  # noqa: E402
from geovec.index import ChromaIndex, GeoFilter, Record, VectorIndex, open_index  # noqa: E402
from geovec.index.chroma import geo_where  # noqa: E402
from geovec.query import Searcher, SearchRequest, SearchWorkers  # noqa: E402

DIM = 16
EF_SEARCH = 400  # above the collection sizes used here, so HNSW visits every item and ranks exactly


def unit_vectors(n, seed, dim=DIM):
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def url(chroma_server):
    """A fresh collection's URL for each test."""
    return f"chroma://{chroma_server}/t-{uuid.uuid4().hex[:12]}"


def ranking(hits):
    return [hit.id for hit in hits], np.array([hit.score for hit in hits])


def test_a_missing_collection_is_named(chroma_server):
    with pytest.raises(GeovecIndexError, match="no collection 'nope-missing'"):
        ChromaIndex.open(f"chroma://{chroma_server}/nope-missing")


def test_unreachable_server_and_bad_urls_give_clear_errors():
    port = _free_port()
    with pytest.raises(GeovecIndexError, match=f"cannot reach the Chroma server for chroma://127.0.0.1:{port}/idx"):
        open_index(f"chroma://127.0.0.1:{port}/idx")
    for bad, message in [("chroma://127.0.0.1:8000/x", "3-512 characters"), ("chroma://:80/abc", "expected chroma"),
                         ("chroma://h:port/abc", "expected chroma")]:
        with pytest.raises(GeovecInputError, match=message):
            ChromaIndex.open(bad)


@pytest.fixture(scope="module")
def twins(chroma_server, tmp_path_factory):
    """The same 300 items in a VectorIndex and a ChromaIndex; a third of them clustered near the antimeridian."""
    rng = np.random.default_rng(7)
    lats = rng.uniform(-60, 60, 300)
    lons = np.concatenate([rng.uniform(-180, 180, 200), rng.uniform(175, 180, 50), rng.uniform(-180, -175, 50)])
    records = [Record(id=f"r{i}", lat=float(lat), lon=float(lon)) for i, (lat, lon) in enumerate(zip(lats, lons))]
    records += [Record(id=f"nowhere{i}") for i in range(10)]  # no location: never kept by a filter
    vectors = unit_vectors(len(records), seed=8)
    folder = VectorIndex.create(tmp_path_factory.mktemp("twin") / "idx", DIM)
    chroma = ChromaIndex.create(f"chroma://{chroma_server}/twin-{uuid.uuid4().hex[:8]}", DIM, ef_search=EF_SEARCH)
    for store in (folder, chroma):
        store.add(records[:150], vectors[:150])
        store.add(records[150:], vectors[150:])
    yield folder, chroma
    folder.close()
    chroma.close()


@pytest.mark.parametrize("geo", [
    None,
    GeoFilter(within=(-30.0, -40.0, 90.0, 40.0)),
    GeoFilter(within=(170.0, -50.0, -170.0, 50.0)),  # crosses the antimeridian
    GeoFilter(near=(10.0, 20.0), radius_km=4000),
    GeoFilter(near=(0.0, 179.0), radius_km=1500),  # a circle across the antimeridian
    GeoFilter(within=(175.0, -60.0, -175.0, 0.0), near=(-20.0, 179.5), radius_km=3000),
    GeoFilter(near=(55.0, 0.0), radius_km=4000),  # the cap holds the pole: the prefilter is a whole band, refilled
    GeoFilter(within=(176.5, -20.0, 179.5, 20.0)),  # small: 5-degree cells, some straddling the box edge
    GeoFilter(within=(-170.0, -80.0, 170.0, 80.0)),  # too large to list cells: filtered on what comes back
], ids=["none", "within", "within-antimeridian", "near", "near-antimeridian", "both", "near-pole", "small", "huge"])
def test_chroma_ranks_like_vector_index(twins, geo):
    folder, chroma = twins
    queries = unit_vectors(8, seed=9)
    expected = folder.search(queries, k=10, filter=geo, exact=True)
    for exact, cells in ((None, True), (True, True), (None, False)):  # cells False: a collection made before them
        chroma.geocells = cells
        got = chroma.search(queries, k=10, filter=geo, exact=exact)
        for want, have in zip(expected, got):
            want_ids, want_scores = ranking(want)
            have_ids, have_scores = ranking(have)
            assert have_ids == want_ids, (exact, cells, geo)
            np.testing.assert_allclose(have_scores, want_scores, rtol=0, atol=1e-4)
            assert geo is None or all(geo.matches(h.record.lat, h.record.lon) for h in have)
    chroma.geocells = True
    few = GeoFilter(near=(0.0, 179.0), radius_km=300)  # fewer matches than k: every one, and nothing else
    assert ranking(chroma.search(queries[0], k=10, filter=few))[0] == ranking(folder.search(queries[0], k=10,
                                                                                           filter=few))[0]


def test_filters_become_the_finest_cell_list_that_fits():
    assert geo_where(GeoFilter(within=(4.0, 51.0, 5.5, 52.2))) == {  # a city region: 0.2-degree cells, 8 x 2
        "geocell3": {"$in": [f"{row}:{col}" for row in range(255, 262) for col in range(20, 28)]}}
    antimeridian = geo_where(GeoFilter(within=(178.0, 0.0, -178.0, 1.0)))["geocell2"]["$in"]
    assert antimeridian == [f"{row}:{col}" for row in (0, 1) for col in (178, 179, 180, -180, -179, -178)]
    within_and_near = GeoFilter(within=(-30.0, -40.0, 90.0, 40.0), near=(10.0, 20.0), radius_km=50)
    assert list(geo_where(within_and_near)) == ["geocell3"]  # the circle's box is the smaller cover
    assert geo_where(GeoFilter(within=(-180.0, -90.0, 180.0, 90.0))) is None
    assert "$and" in geo_where(GeoFilter(within=(4.0, 51.0, 5.5, 52.2)), cells=False)


def test_many_users_search_while_another_adds(url):
    vectors = unit_vectors(400, seed=11)
    with ChromaIndex.create(url, DIM, ef_search=EF_SEARCH) as index:
        index.add([Record(id=f"r{i}", lat=float(i % 90), lon=float(i % 180)) for i in range(100)], vectors[:100])
        errors: list[BaseException] = []
        done = threading.Event()

        def writer():
            try:
                with ChromaIndex.open(url) as other_user:
                    for start in range(100, 400, 50):
                        other_user.add([Record(id=f"r{i}", lat=float(i % 90), lon=float(i % 180))
                                        for i in range(start, start + 50)], vectors[start:start + 50])
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        def reader(seed):
            try:
                rng = np.random.default_rng(seed)
                for count in range(10_000):
                    if done.is_set() and count >= 20:
                        break
                    i = int(rng.integers(0, 100))
                    assert index.search(vectors[i], k=5)[0].id == f"r{i}"
                    assert len(index.search(vectors[i], k=5, filter=GeoFilter(within=(0, 0, 90, 45)))) == 5
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(s,)) for s in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        assert len(index) == 400 and index.search(vectors[399], k=1)[0].id == "r399"


def test_index_items_then_search_with_minilm_end_to_end(url):
    from geovec.ingest import IndexItem, index_items
    from geovec.inputs import as_input
    from geovec.models import load_model

    places = [("harbour-nl", "many boats moored in a harbour", 52.37, 4.90),
              ("airport-fr", "airplanes parked next to an airport terminal", 49.01, 2.55),
              ("forest-nl", "a dense green forest", 52.10, 5.60),
              ("desert", "sand dunes in a desert", 23.4, 25.6)]
    embedder = load_model("minilm")
    items = [IndexItem(Record(id=i, lat=lat, lon=lon, captions=[text], extra={"thumbnail": "thumbs/x.jpg"}),
                       (as_input(text),)) for i, text, lat, lon in places]
    with ChromaIndex.create(url, embedder.dim, model={"name": "minilm", "path": None}) as store:
        assert index_items(items, embedder, store, show_progress=False).added == 4
        assert index_items(items, embedder, store, show_progress=False).skipped_existing == 4
    with Searcher(url, embedder=embedder) as searcher:
        assert searcher.search(SearchRequest(text="planes at an airfield", top_k=2)).hits[0].id == "airport-fr"
        in_nl = searcher.search(SearchRequest(text="boats in a port", within=(3.0, 50.5, 7.5, 54.0)))
        assert [h.id for h in in_nl.hits] == ["harbour-nl", "forest-nl"]
        near = searcher.search(SearchRequest(text="trees", near=(52.0, 5.5), radius_km=30, exact=True))
        assert [h.id for h in near.hits] == ["forest-nl"]
        workers = SearchWorkers(searcher, 1)  # a server's worker process opens the same collection
        try:
            split = workers.search_batch([searcher.prepare(SearchRequest(text=t, top_k=1)) for t in
                                          ("planes at an airfield", "boats in a port", "sand")])
        finally:
            workers.close()
        assert [r.hits[0].id for r in split] == ["airport-fr", "harbour-nl", "desert"]
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from geovec.web import create_app

    with TestClient(create_app(url, embedder=embedder)) as client:
        info = client.get("/api/info").json()
        assert info["items"] == 4 and info["dim"] == 384 and info["bounds"] == [2.55, 23.4, 25.6, 52.37]
        rows = client.post("/api/search", json={"text": "planes", "top_k": 1}).json()["results"]
        assert rows[0]["id"] == "airport-fr" and rows[0]["thumbnail_url"] is None  # no index folder to serve from
        assert client.get("/api/thumbnail/airport-fr").status_code == 404
