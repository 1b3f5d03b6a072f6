"""A folder index as one GeoParquet 1.1 file and back: what QGIS, GeoPandas and DuckDB open, and a way to move an
index (ids, vectors and footprints identical) between machines or versions.

One row per item, in insertion order:

* ``id``, ``source``, ``lon`` / ``lat`` (the WGS84 centre), ``footprint`` (geovec's WGS84 box, ``minlon >
  maxlon`` across the antimeridian), ``pixel_box`` (the box within the source image), ``captions`` (a list),
  ``text`` (the captions as one string) and ``extra`` (the record's attributes as JSON, exactly as stored);
* ``geometry``: WKB in EPSG:4326 (lon/lat), the geometry of ``geovec.index.geojson.record_geometry`` (the chip
  polygon, else the footprint box, else the centre point, else null), with the ``bbox`` covering column;
* every attribute whose values are all scalars of one kind (text, integer, number, true/false) as a column of its
  own, so a GIS tool can filter and style by it (nested or mixed ones stay only in ``extra``; a key named like a
  column above stays only in ``extra``);
* ``embedding``: the stored float32 vector as a fixed-size list.

The file metadata holds the ``geo`` key of GeoParquet and a ``geovec`` key with the index's model record and vector
size, which import needs to rebuild a searchable index. Export writes a temporary file and renames it into place;
import builds the new index in a temporary folder and renames it into place, so neither leaves half a result.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geovec.errors import GeovecError, GeovecInputError
from geovec.fileio import atomic_write
from geovec.index.chroma import is_chroma_url
from geovec.index.geojson import captions_text, record_geometry
from geovec.index.records import Record, record_row
from geovec.index.store import DB_NAME, VectorIndex
from geovec.index.vectors import check_vectors
from geovec.progress import progress_bar

GEOPARQUET_VERSION = "1.1.0"
FILE_FORMAT = 1  # of the ``geovec`` metadata key; import reads up to this
GEOVEC_KEY = "geovec"
EMBEDDING = "embedding"
BATCH_ROWS = 4096  # rows per Parquet row group, and per index transaction on import
CORE_COLUMNS = ("id", "source", "geometry", "bbox", "lon", "lat", "footprint", "pixel_box", "captions", "text",
                "extra", EMBEDDING)
_INT64 = (-(2 ** 63), 2 ** 63 - 1)
CORNERS = ("xmin", "ymin", "xmax", "ymax")  # of the ``bbox`` covering column


def _libraries():
    """pyarrow, pyarrow.parquet and shapely, or an error saying which extra installs them."""
    try:
        import pyarrow
        import pyarrow.compute  # for pyarrow.compute.list_value_length
        import pyarrow.parquet
        import shapely
    except ImportError as exc:
        raise GeovecError(f"GeoParquet needs pyarrow and shapely: pip install 'geovec[gis]' ({exc})") from None
    return pyarrow, pyarrow.parquet, shapely


# --- export -------------------------------------------------------------------------------------------------------

@dataclass
class _Plan:
    """What the first pass over the records learns: the schema's attribute columns and the geometry summary."""

    kinds: dict[str, set[type] | None] = field(default_factory=dict)  # None: not flattenable
    geometry_types: set[str] = field(default_factory=set)  # GeoJSON's names, which GeoParquet uses too
    bounds: list[float] = field(default_factory=lambda: [math.inf, math.inf, -math.inf, -math.inf])
    rows: int = 0

    def add(self, record: Record) -> None:
        for key, value in record.extra.items():
            kinds = self.kinds.setdefault(key, set())
            if kinds is None or value is None:
                continue
            if type(value) not in (bool, int, float, str) or (type(value) is int and not
                                                               _INT64[0] <= value <= _INT64[1]):
                self.kinds[key] = None
            else:
                kinds.add(type(value))

    def attributes(self, pa) -> dict[str, Any]:
        """Attribute columns and their Arrow types, in the order the keys first appear."""
        types = {frozenset({bool}): pa.bool_(), frozenset({int}): pa.int64(), frozenset({float}): pa.float64(),
                 frozenset({int, float}): pa.float64(), frozenset({str}): pa.string()}
        return {key: types[frozenset(kinds)] for key, kinds in self.kinds.items()
                if kinds and key not in CORE_COLUMNS and frozenset(kinds) in types}


def _plan(batches: Iterable[tuple[list[Record], Any]], shapely) -> _Plan:
    plan = _Plan()
    for records, _ in batches:
        for record in records:
            plan.add(record)
        geometries = [record_geometry(record) for record in records]
        plan.geometry_types.update(geometry["type"] for geometry in geometries if geometry is not None)
        shapes = _shapes(geometries, shapely)
        located = shapes[~shapely.is_missing(shapes)]
        if len(located):
            bounds = shapely.bounds(located)
            low, high = bounds.min(axis=0), bounds.max(axis=0)
            plan.bounds = [min(plan.bounds[0], low[0]), min(plan.bounds[1], low[1]),
                           max(plan.bounds[2], high[2]), max(plan.bounds[3], high[3])]
        plan.rows += len(records)
    return plan


def _shapes(geometries: list[dict | None], shapely) -> np.ndarray:
    """Shapely geometries of GeoJSON ones (None stays None), parsed in one vectorised call (~2x faster than one
    ``shapely.geometry.shape`` each)."""
    texts = np.empty(len(geometries), dtype=object)
    texts[:] = [None if geometry is None else json.dumps(geometry) for geometry in geometries]
    return shapely.from_geojson(texts)


def _geo_metadata(plan: _Plan) -> dict[str, Any]:
    """The GeoParquet ``geo`` key: WKB in EPSG:4326 (PROJJSON), counterclockwise rings, the bbox covering."""
    from pyproj import CRS

    column: dict[str, Any] = {
        "encoding": "WKB", "geometry_types": sorted(plan.geometry_types), "crs": CRS.from_epsg(4326).to_json_dict(),
        "edges": "planar", "orientation": "counterclockwise",
        "covering": {"bbox": {corner: ["bbox", corner] for corner in CORNERS}}}
    if plan.geometry_types:
        column["bbox"] = [float(v) for v in plan.bounds]
    return {"version": GEOPARQUET_VERSION, "primary_column": "geometry", "columns": {"geometry": column}}


def _schema(pa, dim: int, attributes: dict[str, Any], metadata: dict[str, Any]):
    box = pa.list_(pa.float64(), 4)
    corners = pa.struct([(corner, pa.float64()) for corner in CORNERS])
    fields = [pa.field("id", pa.string(), nullable=False), ("source", pa.string()), ("geometry", pa.binary()),
              ("bbox", corners), ("lon", pa.float64()), ("lat", pa.float64()), ("footprint", box),
              ("pixel_box", box), ("captions", pa.list_(pa.string())), ("text", pa.string()), ("extra", pa.string()),
              *attributes.items(), pa.field(EMBEDDING, pa.list_(pa.float32(), dim), nullable=False)]
    return pa.schema(fields, metadata={key: json.dumps(value) for key, value in metadata.items()})


def _listed(box: tuple | None) -> list[float] | None:
    return None if box is None else [float(v) for v in box]


def _table(pa, shapely, schema, records: list[Record], matrix: np.ndarray):
    shapes = _shapes([record_geometry(record) for record in records], shapely)
    wkb = shapely.to_wkb(shapes)  # None stays None: a null geometry
    bounds = [None if math.isnan(box[0]) else dict(zip(CORNERS, box)) for box in shapely.bounds(shapes).tolist()]
    columns: dict[str, Any] = {
        "id": [r.id for r in records], "source": [r.source for r in records], "geometry": list(wkb),
        "bbox": bounds, "lon": [r.lon for r in records], "lat": [r.lat for r in records],
        "footprint": [_listed(r.footprint) for r in records], "pixel_box": [_listed(r.bbox) for r in records],
        "captions": [list(r.captions) for r in records], "text": [captions_text(r.captions) for r in records],
        "extra": [json.dumps(r.extra, ensure_ascii=False) for r in records]}
    for name in schema.names[len(CORE_COLUMNS) - 1:-1]:
        columns[name] = [r.extra.get(name) for r in records]
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), matrix.shape[1])
    arrays = [pa.array(columns[name], schema.field(name).type) for name in schema.names[:-1]] + [embedding]
    return pa.Table.from_arrays(arrays, schema=schema)


def export_geoparquet(store: VectorIndex, target: str | Path, batch: int = BATCH_ROWS,
                      show_progress: bool = False) -> int:
    """Write every item of a folder index to ``target`` (GeoParquet 1.1, atomically); returns the row count."""
    pa, pq, shapely = _libraries()
    target = Path(target)
    if not target.parent.is_dir():
        raise GeovecInputError(str(target), f"folder {target.parent} does not exist: create it first")
    if target.is_dir():
        raise GeovecInputError(str(target), "is a folder: give a file name such as index.parquet")
    with store.snapshot():
        plan = _plan(store.scan(batch, vectors=False), shapely)
        metadata = {"geo": _geo_metadata(plan),
                    GEOVEC_KEY: {"format": FILE_FORMAT, "dim": store.dim, "model": store.model, "rows": plan.rows}}
        schema = _schema(pa, store.dim, plan.attributes(pa), metadata)

        def write(temp: str) -> None:
            with pq.ParquetWriter(temp, schema) as writer, progress_bar(plan.rows, f"exporting {store.path}",
                                                                         enabled=show_progress) as bar:
                for records, matrix in store.scan(batch):
                    writer.write_table(_table(pa, shapely, schema, records, matrix))
                    bar.advance(len(records))

        try:
            atomic_write(target, write)
        except OSError as exc:
            raise GeovecInputError(str(target), f"cannot write it ({exc.strerror or exc})") from None
    return plan.rows


# --- import -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GeoParquetIndex:
    """An opened export: its model record, vector size and rows (read a row group at a time by ``batches``)."""

    path: Path
    dim: int
    model: dict
    rows: int
    file: Any  # pyarrow.parquet.ParquetFile

    def batches(self, batch: int = BATCH_ROWS) -> Iterator[tuple[list[Record], np.ndarray]]:
        """Checked records and their float32 vectors; every error names the file and the row."""
        pa, _, _ = _libraries()
        wanted = [name for name in CORE_COLUMNS if name in self.file.schema_arrow.names]
        seen: set[str] = set()
        start = 0
        try:
            for table in self.file.iter_batches(batch_size=batch, columns=wanted):
                rows = {name: table.column(name).to_pylist() for name in wanted if name != EMBEDDING}
                records = [self._record(rows, n, start + n, seen) for n in range(table.num_rows)]
                matrix = self._vectors(pa, table.column(EMBEDDING), start)
                yield records, matrix
                start += table.num_rows
        except pa.ArrowException as exc:
            raise GeovecInputError(str(self.path), f"unreadable after row {start} ({exc})") from None

    def _record(self, rows: dict[str, list], n: int, row: int, seen: set[str]) -> Record:
        where = f"{self.path}: row {row}"
        id = rows["id"][n]
        if id in seen:
            raise GeovecInputError(f"{where}: id", f"{id!r} appears twice; ids must be unique")
        seen.add(id)
        value = {name: column[n] for name, column in rows.items()}
        try:
            extra = json.loads(value["extra"]) if value.get("extra") is not None else {}
        except ValueError as exc:
            raise GeovecInputError(f"{where}: extra", f"not JSON ({exc})") from None
        record = Record(id=id, source=value.get("source"), lat=value.get("lat"), lon=value.get("lon"),
                        bbox=None if value.get("pixel_box") is None else tuple(value["pixel_box"]),
                        footprint=None if value.get("footprint") is None else tuple(value["footprint"]),
                        captions=list(value.get("captions") or []), extra=extra)
        record_row(record, where)  # refused here, where the row is known
        return record

    def _vectors(self, pa, column, start: int) -> np.ndarray:
        if column.null_count:
            first = column.is_null().to_pylist().index(True)
            raise GeovecInputError(f"{self.path}: {EMBEDDING}[{start + first}]", "missing (null)")
        lengths = np.asarray(pa.compute.list_value_length(column))
        wrong = np.flatnonzero(lengths != self.dim)
        if len(wrong):
            raise GeovecInputError(f"{self.path}: {EMBEDDING}[{start + wrong[0]}]",
                                   f"has {lengths[wrong[0]]} values, but the file's model record says {self.dim}")
        values = column.flatten()  # respects the slice offset, unlike .values
        if values.null_count:
            raise GeovecInputError(f"{self.path}: {EMBEDDING}", "holds null numbers; every value must be a number")
        matrix = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, self.dim)
        return check_vectors(matrix, len(matrix), self.dim, f"{self.path}: {EMBEDDING}", start)


def open_geoparquet(source: str | Path) -> GeoParquetIndex:
    """Open an export for import: a Parquet file with geovec's metadata, an ``id`` and an ``embedding`` column."""
    pa, pq, _ = _libraries()
    source = Path(source)
    try:
        file = pq.ParquetFile(source)
    except OSError as exc:
        if isinstance(exc, pa.ArrowException):  # ArrowInvalid is an OSError too: the file is there, not Parquet
            raise GeovecInputError(str(source), f"not a Parquet file ({exc})") from None
        raise GeovecInputError(str(source), f"cannot read it ({exc.strerror or exc})") from None
    except pa.ArrowException as exc:
        raise GeovecInputError(str(source), f"not a Parquet file ({exc})") from None
    schema = file.schema_arrow
    info = _geovec_metadata(source, schema.metadata or {})
    dim, model = info.get("dim"), info.get("model")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1 or not isinstance(model, dict):
        raise GeovecInputError(str(source), f"its {GEOVEC_KEY!r} metadata lacks a positive 'dim' and a 'model' "
                                            "record; export the index again with `geovec index export`")
    _check_columns(pa, source, schema, dim)
    return GeoParquetIndex(source, dim, model, file.metadata.num_rows, file)


def _geovec_metadata(source: Path, metadata: dict[bytes, bytes]) -> dict[str, Any]:
    raw = metadata.get(GEOVEC_KEY.encode())
    if raw is None:
        raise GeovecInputError(str(source), f"no {GEOVEC_KEY!r} metadata (the model record the vectors were made "
                                            "with): import reads files written by `geovec index export`")
    try:
        info = json.loads(raw)
    except ValueError as exc:
        raise GeovecInputError(str(source), f"its {GEOVEC_KEY!r} metadata is not JSON ({exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get("format"), int) or info["format"] > FILE_FORMAT:
        found = info.get("format") if isinstance(info, dict) else info
        raise GeovecInputError(str(source), f"its {GEOVEC_KEY!r} metadata has format {found!r}; this geovec reads "
                                            f"up to {FILE_FORMAT}: upgrade geovec")
    return info


def _check_columns(pa, source: Path, schema, dim: int) -> None:
    if "id" not in schema.names or not pa.types.is_string(schema.field("id").type):
        raise GeovecInputError(str(source), "needs a text 'id' column (one id per item)")
    if EMBEDDING not in schema.names:
        raise GeovecInputError(str(source), f"no {EMBEDDING!r} column: the file holds no vectors to index "
                                            "(export it with `geovec index export`, which writes them)")
    kind = schema.field(EMBEDDING).type
    listed = pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)
    if not listed or not pa.types.is_floating(kind.value_type):
        raise GeovecInputError(f"{source}: {EMBEDDING}", f"must be a list of floats per row, not {kind}")
    if pa.types.is_fixed_size_list(kind) and kind.list_size != dim:
        raise GeovecInputError(f"{source}: {EMBEDDING}", f"holds {kind.list_size}-d vectors, but the file's model "
                                                         f"record says dim {dim}")


def import_geoparquet(source: GeoParquetIndex, target: str | Path, *, ann: bool = False, batch: int = BATCH_ROWS,
                      show_progress: bool = False) -> int:
    """Build a new folder index at ``target`` from an opened export (whole, or not at all); returns its size."""
    target = Path(target)
    check_new_index_folder(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.parent / f".{target.name}.import-{uuid.uuid4().hex[:8]}"
    try:
        with VectorIndex.create(building, source.dim, model=source.model) as store, \
                progress_bar(source.rows, f"importing {source.path}", enabled=show_progress) as bar:
            for records, matrix in source.batches(batch):
                store.add(records, matrix)
                bar.advance(len(records))
            if ann and len(store):
                store.build_ann()
            count = len(store)
        os.replace(building, target)
    except OSError as exc:
        raise GeovecInputError(str(target), f"cannot write the index there ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return count


def check_new_index_folder(target: str | Path) -> None:
    """Import makes a new folder index: an existing index or a folder holding anything is refused, never mixed
    into; so is a Chroma URL (which a path would silently turn into a local folder named ``chroma:``)."""
    if is_chroma_url(str(target)):
        raise GeovecInputError(str(target), "import builds a folder index, not a Chroma collection: give a folder")
    target = Path(target)
    if (target / DB_NAME).exists():
        raise GeovecInputError(str(target), "an index is already there; import builds a new one: give a new folder")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise GeovecInputError(str(target), "already exists and is not an empty folder; give a new folder")
