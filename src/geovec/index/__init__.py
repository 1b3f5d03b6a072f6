"""Vector stores with geographic filters: a folder (SQLite + FAISS, ``geovec.index.store``) or a Chroma server
(``geovec.index.chroma``), behind one API.

Names are imported on first use (PEP 562), so validating a filter (``geovec.index.filters``) does not load FAISS.
"""

from __future__ import annotations

from geovec.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "chroma": ("ChromaIndex",),
    "filters": ("EARTH_RADIUS_KM", "GeoFilter", "haversine_km"),
    "records": ("Hit", "Record"),
    "store": ("VectorIndex",),
})
