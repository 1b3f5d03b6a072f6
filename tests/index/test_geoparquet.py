"""Indexes as GeoParquet 1.1: read by GeoPandas and pyarrow as GIS users do, rebuilt bit for bit, bad files refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gis_index import HARBOUR, build_gis_index

from geovec.errors import GeovecInputError
from geovec.index import VectorIndex
from geovec.index.geojson import record_geometry
from geovec.index.geoparquet import (
    export_geoparquet,
    import_geoparquet,
    open_geoparquet,
)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
gpd = pytest.importorskip("geopandas")
shapely_geometry = pytest.importorskip("shapely.geometry")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_clip_checkpoint):
    """The fixture index and its export."""
    root = tmp_path_factory.mktemp("geoparquet")
    index = build_gis_index(root, tiny_clip_checkpoint)
    with VectorIndex.open(index) as store:
        assert export_geoparquet(store, root / "idx.parquet", batch=5) == 19  # several row groups
    return index, root / "idx.parquet"


def contents(index: Path) -> tuple[list[str], bytes, list, dict]:
    with VectorIndex.open(index) as store:
        ids = store.ids()
        return ids, store.vectors(ids).tobytes(), [store.get(id) for id in ids], store.model


def test_an_index_round_trips_with_identical_ids_vectors_and_footprints(exported, tmp_path):
    index, parquet = exported
    assert import_geoparquet(open_geoparquet(parquet), tmp_path / "copy", batch=7) == 19
    ids, vectors, records, model = contents(index)
    copy_ids, copy_vectors, copy_records, copy_model = contents(tmp_path / "copy")
    assert copy_ids == ids and copy_vectors == vectors and copy_model == model  # vectors bit for bit
    assert copy_records == records  # footprints, centres, pixel boxes, captions, attributes
    assert [r.footprint for r in copy_records if r.id == "dateline-box"] == [(179.5, -17.0, -179.5, -16.0)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # the build folder was renamed into place
    with VectorIndex.open(index) as original, VectorIndex.open(tmp_path / "copy") as copy:
        query = original.vectors(["harbour-point"])[0]
        answers = [[(hit.id, hit.score) for hit in store.search(query, 19)] for store in (original, copy)]
        assert answers[0] == answers[1]


def test_geopandas_reads_the_footprints_in_epsg_4326_and_pyarrow_the_vectors(exported):
    index, parquet = exported
    ids, vectors, records, model = contents(index)
    frame = gpd.read_parquet(parquet)
    assert frame.crs.to_epsg() == 4326 and list(frame["id"]) == ids
    for record, geometry in zip(records, frame.geometry):
        expected = record_geometry(record)
        assert (geometry is None) == (expected is None), record.id
        if expected is not None:
            assert geometry.equals_exact(shapely_geometry.shape(expected), 0), record.id
    harbour = frame[frame["id"] == "harbour-point"].iloc[0]
    assert (harbour["lon"], harbour["lat"]) == (4.14, 51.95) and list(harbour["captions"]) == [HARBOUR,
                                                                                              "cranes on a quay"]
    assert harbour["text"] == f"{HARBOUR}\ncranes on a quay"
    # one column per attribute of one scalar kind; lists, mixed kinds and a key named like a column stay in `extra`
    assert {"kind", "count", "archive_path", "nodata_fraction", "georeferenced", "crs", "note"} <= set(frame.columns)
    assert not {"tags", "mixed", "stac", "window"} & set(frame.columns)
    assert harbour["count"] == 3 and harbour["kind"] == "manual" and json.loads(harbour["extra"])["id"] == "clash"
    assert frame[frame["id"] == "dateline-box"].geometry.iloc[0].geom_type == "MultiPolygon"

    table = pq.read_table(parquet)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 16)
    matrix = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    assert matrix.dtype == np.float32 and matrix.tobytes() == vectors
    assert table.schema.field("count").type == pa.int64() and table.column("count").null_count == 17
    geo = json.loads(table.schema.metadata[b"geo"])
    column = geo["columns"]["geometry"]
    assert geo["version"] == "1.1.0" and column["encoding"] == "WKB"
    assert column["geometry_types"] == ["MultiPolygon", "Point", "Polygon"]
    assert column["covering"]["bbox"]["xmin"] == ["bbox", "xmin"] and column["bbox"][0] == -180
    assert json.loads(table.schema.metadata[b"geovec"])["model"] == model


def rewritten(parquet: Path, target: Path, change) -> Path:
    """A copy of the export with ``change(table, geovec_metadata)`` applied: a broken file as a user might have."""
    table = pq.read_table(parquet)
    meta = json.loads(table.schema.metadata[b"geovec"])
    table = change(table, meta)
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), b"geovec": json.dumps(meta)}),
                   target)
    return target


def set_column(table, name: str, values):
    return table.set_column(table.schema.get_field_index(name), name, values)


def shortened_vector(table, meta):
    lists = table.column("embedding").to_pylist()
    lists[3] = lists[3][:-1]
    return set_column(table, "embedding", pa.array(lists, pa.list_(pa.float32())))


def doubled_vector(table, meta):
    matrix = np.stack(table.column("embedding").to_numpy(zero_copy_only=False)) * 2
    return set_column(table, "embedding", pa.array(list(matrix), pa.list_(pa.float32(), matrix.shape[1])))


def repeated_id(table, meta):
    ids = table.column("id").to_pylist()
    ids[5] = ids[2]
    return set_column(table, "id", pa.array(ids, pa.string()))


def bad_dim(table, meta):
    meta["dim"] = 8
    return table


def bad_extra(table, meta):
    extras = table.column("extra").to_pylist()
    extras[1] = "{not json"
    return set_column(table, "extra", pa.array(extras, pa.string()))


def bad_latitude(table, meta):
    lats = table.column("lat").to_pylist()
    lats[4] = 95.0
    return set_column(table, "lat", pa.array(lats, pa.float64()))


@pytest.mark.parametrize("change, message", [
    (lambda table, meta: table.drop_columns(["embedding"]), "no 'embedding' column: the file holds no vectors"),
    (bad_dim, "embedding: holds 16-d vectors, but the file's model record says dim 8"),
    (shortened_vector, "embedding[3]: has 15 values, but the file's model record says 16"),
    (doubled_vector, "embedding[0]: L2 norm is 2"),
    (repeated_id, "row 5: id: "),
    (bad_extra, "row 1: extra: not JSON"),
    (bad_latitude, "row 4: latitude 95 is outside [-90, 90]"),
    (lambda table, meta: meta.update(format=99) or table, "has format 99; this geovec reads up to 1: upgrade"),
])
def test_bad_files_are_refused_and_leave_no_index(exported, tmp_path, change, message):
    bad = rewritten(exported[1], tmp_path / "bad.parquet", change)
    with pytest.raises(GeovecInputError) as caught:
        import_geoparquet(open_geoparquet(bad), tmp_path / "new", batch=4)
    assert message in str(caught.value) and str(bad) in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet"]  # no index, no half-built folder


def test_files_that_are_no_export_and_occupied_targets_are_refused(exported, tmp_path):
    index, parquet = exported
    (tmp_path / "notes.parquet").write_text("just text", encoding="utf-8")
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "plain.parquet")
    for name, message in [("notes.parquet", "not a Parquet file"), ("plain.parquet", "no 'geovec' metadata"),
                          ("absent.parquet", "cannot read it (")]:
        with pytest.raises(GeovecInputError) as caught:
            open_geoparquet(tmp_path / name)
        assert message in str(caught.value) and name in str(caught.value)
    for target, message in [(index, "an index is already there"), (tmp_path / "notes.parquet", "not an empty folder")]:
        with pytest.raises(GeovecInputError, match=message):
            import_geoparquet(open_geoparquet(parquet), target)
    with VectorIndex.open(index) as store:
        with pytest.raises(GeovecInputError, match="does not exist: create it first"):
            export_geoparquet(store, tmp_path / "missing" / "x.parquet")
        with pytest.raises(GeovecInputError, match="is a folder"):
            export_geoparquet(store, tmp_path)
