"""Search results as RFC 7946 GeoJSON: what GeoPandas/GDAL read from a saved result, against the records."""

from __future__ import annotations

import json

import pytest
from gis_index import ADDED, HARBOUR, build_gis_index

from geovec.index import Hit, Record, VectorIndex
from geovec.index.geojson import hits_feature_collection, record_geometry
from geovec.query import Searcher, SearchRequest

gpd = pytest.importorskip("geopandas")
shapely_geometry = pytest.importorskip("shapely.geometry")


@pytest.fixture(scope="module")
def gis_index(tmp_path_factory, tiny_clip_checkpoint):
    return build_gis_index(tmp_path_factory.mktemp("gis"), tiny_clip_checkpoint)


def expected_shape(record: Record):
    """What a user expects on the map: the chip's 4 corners, else the footprint box (cut at +-180), else the point."""
    polygon = record.extra.get("footprint")
    if polygon:
        return shapely_geometry.shape(polygon)
    if record.footprint is not None:
        west, south, east, north = record.footprint
        if west > east:
            return shapely_geometry.MultiPolygon([shapely_geometry.box(west, south, 180, north),
                                                  shapely_geometry.box(-180, south, east, north)])
        return shapely_geometry.box(west, south, east, north)
    if record.lat is not None:
        return shapely_geometry.Point(record.lon, record.lat)
    return None


def test_a_saved_geojson_result_opens_in_geopandas_with_the_records_footprints(gis_index, tmp_path):
    with VectorIndex.open(gis_index) as store:
        records = {id: store.get(id) for id in store.ids()}
    with Searcher(gis_index) as searcher:
        result = searcher.search(SearchRequest(text=HARBOUR, top_k=100))
    collection = result.to_geojson()
    assert collection["query"]["text"] == HARBOUR and collection["query"]["top_k"] == 100
    saved = tmp_path / "result.geojson"
    saved.write_text(json.dumps(collection), encoding="utf-8")

    frame = gpd.read_file(saved)
    assert frame.crs.to_epsg() == 4326
    assert list(frame["id"]) == [hit.id for hit in result.hits] and len(frame) == len(records) == 19
    assert list(frame["rank"]) == list(range(1, 20)) and frame["id"][0] == "harbour-point"
    assert list(frame["score"]) == pytest.approx([hit.score for hit in result.hits])
    located = 0
    for id, geometry in zip(frame["id"], frame.geometry):
        expected = expected_shape(records[id])
        if expected is None:
            assert geometry is None, id  # a null geometry: no place, not a made-up one
            continue
        located += 1
        assert geometry.is_valid and geometry.normalize().equals_exact(expected.normalize(), 1e-9), id
        for polygon in getattr(geometry, "geoms", [geometry]):
            assert polygon.geom_type == "Point" or polygon.exterior.is_ccw, id  # RFC 7946 right-hand rule
    assert located == 16  # 14 ingested chips with coordinates + the point + the box across the antimeridian
    features = {feature["id"]: feature for feature in collection["features"]}
    assert features["dateline-box"]["bbox"] == [179.5, -17.0, -179.5, -16.0]  # west > east, as RFC 7946 5.2
    assert features["dateline-box"]["geometry"]["type"] == "MultiPolygon"
    assert features["harbour-point"]["properties"]["captions"] == ADDED[0].captions
    assert features["nowhere"]["properties"]["extra"]["note"] == "ünïcode ✓"


def test_geojson_from_the_api_needs_no_search(tmp_path):
    """Hits made elsewhere turn into a FeatureCollection too; a bad or antimeridian polygon falls back to the box."""
    crossing = {"type": "Polygon", "coordinates": [[[179, 1], [181, 1], [181, 2], [179, 2], [179, 1]]]}
    hits = [Hit("a", 0.9, Record(id="a", footprint=(179.0, 1.0, -179.0, 2.0), extra={"footprint": crossing})),
            Hit("b", 0.8, Record(id="b", footprint=(1.0, 1.0, 2.0, 2.0), extra={"footprint": "not a polygon"})),
            Hit("c", 0.7, Record(id="c", lat=10.0, lon=20.0))]
    collection = hits_feature_collection(hits)
    frame = gpd.GeoDataFrame.from_features(collection, crs="EPSG:4326")
    assert list(frame["rank"]) == [1, 2, 3] and "query" not in collection
    assert frame.geometry[0].geom_type == "MultiPolygon" and frame.geometry[0].bounds == (-180, 1, 180, 2)
    assert frame.geometry[1].equals(shapely_geometry.box(1, 1, 2, 2))
    assert record_geometry(hits[2].record) == {"type": "Point", "coordinates": [20.0, 10.0]}  # lon, lat order
