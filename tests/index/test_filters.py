"""Geographic filters: the exact tests, the SQL prefilter, and filtered search in exact and ANN modes."""

import math
import sqlite3

import numpy as np
import pytest

from geovec.errors import GeovecInputError
from geovec.index import GeoFilter, Record, VectorIndex, haversine_km

AMSTERDAM, ROTTERDAM = (52.3676, 4.9041), (51.9244, 4.4777)
PARIS, LONDON = (48.8566, 2.3522), (51.5074, -0.1278)


def reference_km(a, b):
    """Haversine written out independently of the module, R = 6371.0088 km."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def test_haversine_matches_known_distances():
    assert haversine_km(*AMSTERDAM, *ROTTERDAM) == pytest.approx(57.2, abs=0.2)
    assert haversine_km(*PARIS, *LONDON) == pytest.approx(343.6, abs=0.5)
    assert haversine_km(0, 179.9, 0, -179.9) == pytest.approx(22.24, abs=0.01)


def test_near_keeps_points_within_the_radius():
    assert GeoFilter(near=AMSTERDAM, radius_km=58).matches(*ROTTERDAM)
    assert not GeoFilter(near=AMSTERDAM, radius_km=57).matches(*ROTTERDAM)
    assert GeoFilter(near=(0, 179.9), radius_km=25).matches(0, -179.9)  # across the antimeridian
    assert GeoFilter(near=(89.9, 0), radius_km=25).matches(89.9, 180)  # over the pole
    assert not GeoFilter(near=AMSTERDAM, radius_km=1000).matches(None, None)


def test_within_is_inclusive_and_may_cross_the_antimeridian():
    netherlands = GeoFilter(within=(3.3, 50.7, 7.2, 53.6))
    assert netherlands.matches(*AMSTERDAM) and not netherlands.matches(*PARIS)
    assert netherlands.matches(50.7, 3.3) and not netherlands.matches(None, None)
    pacific = GeoFilter(within=(170, -20, -170, 20))
    assert pacific.matches(0, 175) and pacific.matches(0, -175) and pacific.matches(20, 180)
    assert not pacific.matches(0, 0) and not pacific.matches(0, 160) and not pacific.matches(25, 175)
    both = GeoFilter(within=(3.3, 50.7, 7.2, 53.6), near=ROTTERDAM, radius_km=60)
    assert both.matches(*AMSTERDAM) and not both.matches(51.2194, 4.4025 - 3)


@pytest.mark.parametrize("kwargs, problem", [
    ({}, "filter: give `within`"),
    ({"near": (95, 4), "radius_km": 5}, r"filter.near: latitude 95 is outside \[-90, 90\]"),
    ({"near": (52, 181), "radius_km": 5}, r"filter.near: longitude 181 is outside \[-180, 180\]"),
    ({"near": (52, 4)}, "filter.radius_km: `near` and `radius_km` go together"),
    ({"radius_km": 5}, "`near` and `radius_km` go together"),
    ({"near": (52, 4), "radius_km": -1}, "filter.radius_km: radius must be > 0 km, got -1"),
    ({"near": (52, 4), "radius_km": 0}, "radius must be > 0 km"),
    ({"near": (52,), "radius_km": 1}, "filter.near: expected 2 numbers, got 1"),
    ({"within": (0, -91, 1, 1)}, r"filter.within: latitude -91 is outside \[-90, 90\]"),
    ({"within": (-200, 0, 1, 1)}, r"filter.within: longitude -200 is outside"),
    ({"within": (0, 5, 1, 1)}, "minimum latitude 5 is greater than maximum latitude 1"),
    ({"within": (0, "a", 1, 1)}, "filter.within: expected 4 numbers"),
    ({"within": (0, float("nan"), 1, 1)}, "numbers must be finite"),
])
def test_bad_filters_are_rejected_with_the_problem_named(kwargs, problem):
    with pytest.raises(GeovecInputError, match=problem):
        GeoFilter(**kwargs)


def random_filters(rng, count):
    for _ in range(count):
        lat, lon = rng.uniform(-89, 89), rng.uniform(-180, 180)
        yield GeoFilter(near=(lat, lon), radius_km=float(rng.choice([50, 500, 3000, 12000])))
        minlon, maxlon = rng.uniform(-180, 180, 2)  # either order: minlon > maxlon crosses the antimeridian
        minlat, maxlat = np.sort(rng.uniform(-90, 90, 2))
        yield GeoFilter(within=(minlon, minlat, maxlon, maxlat))


def test_sql_prefilter_never_drops_a_matching_point():
    rng = np.random.default_rng(0)
    lats = np.concatenate([rng.uniform(-90, 90, 3000), np.full(20, 89.99), rng.uniform(-5, 5, 500)])
    lons = np.concatenate([rng.uniform(-180, 180, 3000), rng.uniform(-180, 180, 20), rng.choice([-179.99, 179.99], 500)])
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE items (lat REAL, lon REAL)")
    db.executemany("INSERT INTO items VALUES (?, ?)", zip(lats.tolist(), lons.tolist()))
    checked = 0
    for geo in random_filters(rng, 40):
        clause, params = geo.sql()
        prefiltered = {row[0] - 1 for row in db.execute(f"SELECT rowid FROM items WHERE {clause}", params)}
        if geo.near is not None:
            truth = {i for i in range(len(lats)) if reference_km(geo.near, (lats[i], lons[i])) <= geo.radius_km}
        else:
            truth = set(np.flatnonzero(geo.mask(lats, lons)))
        assert truth <= prefiltered
        assert set(np.flatnonzero(geo.mask(lats, lons))) == truth
        checked += len(truth)
    assert checked > 1000


@pytest.fixture
def placed(tmp_path):
    """2,000 items scattered over Europe and around the antimeridian, a tenth with no coordinates."""
    rng = np.random.default_rng(1)
    n, dim = 2000, 16
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    lats = np.where(np.arange(n) % 2, rng.uniform(35, 70, n), rng.uniform(-30, 30, n))
    lons = np.where(np.arange(n) % 2, rng.uniform(-10, 30, n), rng.uniform(150, 210, n))
    lons = np.where(lons > 180, lons - 360, lons)
    located = np.arange(n) % 10 != 0
    records = [Record(id=f"p{i}", lat=float(lats[i]), lon=float(lons[i])) if located[i] else Record(id=f"p{i}")
               for i in range(n)]
    index = VectorIndex.create(tmp_path / "idx", dim)
    index.add(records, vectors)
    yield index, vectors, records
    index.close()


FILTERS = [
    GeoFilter(near=AMSTERDAM, radius_km=300),
    GeoFilter(near=(0.0, 180.0), radius_km=2000),
    GeoFilter(within=(170, -20, -170, 20)),
    GeoFilter(within=(-10, 35, 30, 70)),  # most of the European half
    GeoFilter(within=(-10, 35, 30, 70), near=PARIS, radius_km=800),
]


def expected_ranking(vectors, records, geo, query, k):
    keep = [i for i, r in enumerate(records)
            if r.lat is not None and (geo.within is None or geo.matches(r.lat, r.lon))
            and (geo.near is None or reference_km(geo.near, (r.lat, r.lon)) <= geo.radius_km)]
    scores = vectors[keep] @ query
    return [records[keep[i]].id for i in np.argsort(-scores)[:k]]


@pytest.mark.parametrize("geo", FILTERS)
def test_filtered_search_equals_filtered_brute_force_in_exact_and_ann_modes(placed, geo):
    index, vectors, records = placed
    queries = np.random.default_rng(2).standard_normal((8, vectors.shape[1])).astype(np.float32)
    expected = [expected_ranking(vectors, records, geo, q, 10) for q in queries]
    assert all(len(ids) == 10 for ids in expected)
    exact = index.search(queries, k=10, filter=geo, exact=True)
    index.build_ann(ef_search=256)
    automatic = index.search(queries, k=10, filter=geo)  # few candidates: exact over just those
    approximate = index.search(queries, k=10, filter=geo, exact=False)  # the graph with a selector
    for mode in (exact, automatic, approximate):
        assert [[h.id for h in hits] for hits in mode] == expected
    assert all(geo.matches(h.record.lat, h.record.lon) for hits in approximate for h in hits)


def test_filter_with_no_match_and_filter_excluding_deleted_items(placed):
    index, vectors, records = placed
    assert index.search(vectors[0], k=5, filter=GeoFilter(within=(-60, -60, -50, -50))) == []
    geo = GeoFilter(near=AMSTERDAM, radius_km=300)
    first = index.search(vectors[1], k=3, filter=geo)
    index.build_ann()
    index.delete([first[0].id])
    for exact in (True, False):
        hits = index.search(vectors[1], k=3, filter=geo, exact=exact)
        assert [h.id for h in hits][:2] == [h.id for h in first[1:]]
