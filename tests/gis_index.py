"""A small geo-referenced index for the GIS-format tests (GeoJSON results, GeoParquet export/import).

The GeoTIFF/PNG/JPEG fixtures of tests/data/geotiff ingested with the tiny CLIP (UTM and WGS84 chips with 4-corner
polygons, one image without coordinates), plus records added directly for what ingest does not make: a point
only, a footprint box across the antimeridian, an item without a location, captions, and attributes of every kind
(text and integers in some rows only, a list, a key of mixed kinds, a key named like a column).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from geovec.index import Record, VectorIndex
from geovec.ingest.archive import ingest_archive
from geovec.ingest.raster import TileOptions
from geovec.models import load_model
from geovec.models.registry import index_model_record

ARCHIVE = Path(__file__).resolve().parent / "data" / "geotiff"
HARBOUR = "container ships moored in a harbour"
ADDED = [
    Record(id="harbour-point", lat=51.95, lon=4.14, captions=[HARBOUR, "cranes on a quay"],
           extra={"kind": "manual", "count": 3, "tags": ["port"], "mixed": "a", "id": "clash"}),
    Record(id="dateline-box", lat=-16.5, lon=180.0, footprint=(179.5, -17.0, -179.5, -16.0),
           captions=["islands across the date line"], extra={"kind": "manual", "count": 7, "mixed": 2}),
    Record(id="nowhere", captions=["an airport apron"], extra={"kind": "manual", "note": "ünïcode ✓"}),
]


def build_gis_index(root: Path, checkpoint: Path) -> Path:
    """The index folder ``root/idx``, searchable by ``geovec search`` (its model record names the checkpoint)."""
    archive = Path(shutil.copytree(ARCHIVE, root / "archive"))
    clip = load_model("clip", checkpoint)
    model = index_model_record("clip", checkpoint, getattr(clip, "revision", ""))
    with VectorIndex.create(root / "idx", clip.dim, model=model) as index:
        ingest_archive(archive, index, clip, TileOptions(chip_size=32), show_progress=False)
        index.add(ADDED, clip.encode([record.captions[0] for record in ADDED]))
    return root / "idx"
