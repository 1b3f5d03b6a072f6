"""How well an ingested scene's chips answer land-cover texts, against labelled points/polygons (GeoPackage).

    python scripts/landcover_eval.py INDEX LABELS.gpkg [MORE.gpkg ...]

For each label (a point, or a polygon's envelope centre) the chip(s) holding it are found by their source window;
a chip counts as right when, among the texts of ``CLASS_TEXTS``, the best-scoring one (searched as a user would,
through ``Searcher``) belongs to the label's class. Chance is one over the number of classes. Also prints the
top chips of the issue's queries with their no-data fraction. GeoPackages are read with sqlite3 (no GDAL vector
driver needed): the standard binary header (magic ``GP``, flags, srs id, envelope) then little/big-endian WKB.
"""

from __future__ import annotations

import sqlite3
import struct
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from geovec.index import VectorIndex
from geovec.ingest.raster import RasterFile, TileOptions
from geovec.query import Searcher
from geovec.search_request import SearchRequest

CLASS_TEXTS = {"water": ["water", "a lake", "a large river"], "crop": ["crop fields", "farmland"],
               "tree": ["a forest", "trees"], "developed": ["a city", "buildings and roads"]}
ISSUE_QUERIES = ("a large river", "a lake with a dam", "a forest")
_ENVELOPE_DOUBLES = {0: 0, 1: 4, 2: 6, 3: 6, 4: 8}


def gpkg_labels(path: Path) -> list[tuple[str, float, float]]:
    """(name, x, y) per feature: the point, or the centre of a polygon's envelope (in the layer's CRS)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        table, column = db.execute("SELECT table_name, column_name FROM gpkg_geometry_columns").fetchone()
        rows = db.execute(f'SELECT "{column}", name FROM "{table}"').fetchall()
    return [(name, *_centre(blob)) for blob, name in rows]


def _centre(blob: bytes) -> tuple[float, float]:
    flags = blob[3]
    order = "<" if flags & 1 else ">"
    doubles = _ENVELOPE_DOUBLES[(flags >> 1) & 7]
    if doubles:
        minx, maxx, miny, maxy = struct.unpack(f"{order}4d", blob[8:40])
        return (minx + maxx) / 2, (miny + maxy) / 2
    wkb = blob[8:]
    endian = "<" if wkb[0] == 1 else ">"
    return struct.unpack(f"{endian}2d", wkb[5:21])


def main(index_path: str, *gpkgs: str) -> None:
    with VectorIndex.open(index_path) as index:
        records = [index.get(id) for id in index.ids()]
    source = records[0].source
    with rasterio.open(source) as ds:
        inverse = ~ds.transform
    with Searcher(index_path) as searcher:
        scores = {text: _scores(searcher, text, len(records)) for texts in CLASS_TEXTS.values() for text in texts}
        with RasterFile(source, TileOptions()) as raster:  # today's no-data detection, also for old indexes
            for query in ISSUE_QUERIES:
                hits = searcher.search(SearchRequest(text=query, top_k=3)).hits
                collar = [round(raster.read(Window(*h.record.extra["window"]))[1], 2) for h in hits]
                print(f"{query!r}: no-data (collar) fraction of the top 3 chips {collar}")
    right = total = 0
    for gpkg in gpkgs:
        for name, x, y in gpkg_labels(Path(gpkg)):
            col, row = inverse * (x, y)
            for record in records:
                c0, r0, c1, r1 = record.bbox
                if c0 <= col < c1 and r0 <= row < r1:
                    best = max(scores, key=lambda text: scores[text].get(record.id, -np.inf))
                    guess = next(cls for cls, texts in CLASS_TEXTS.items() if best in texts)
                    right, total = right + (guess == name), total + 1
                    print(f"{Path(gpkg).stem[-8:]} {name:10s} chip {record.id}: best text {best!r} -> {guess}")
    print(f"{right}/{total} label chips matched their class ({right / max(total, 1):.0%}); "
          f"chance {1 / len(CLASS_TEXTS):.0%}; chips {len(records)}")


def _scores(searcher: Searcher, text: str, k: int) -> dict[str, float]:
    return {hit.id: hit.score for hit in searcher.search(SearchRequest(text=text, top_k=k)).hits}


if __name__ == "__main__":
    main(*sys.argv[1:])
