"""Vector stores with geographic filters: a folder (SQLite + FAISS, ``geovec.index.store``) or a Chroma server
(``geovec.index.chroma``), both a ``VectorStore`` (``geovec.index.base``), opened by location with ``open_index``.

Names are imported on first use (PEP 562), so validating a filter (``geovec.index.filters``) does not load FAISS.
"""

from __future__ import annotations

from geovec.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "base": ("Capabilities", "VectorStore"),
    "chroma": ("ChromaIndex", "is_chroma_url"),
    "filters": ("EARTH_RADIUS_KM", "GeoFilter", "haversine_km"),
    "locations": ("create_index", "open_index"),
    "records": ("Hit", "Record"),
    "store": ("VectorIndex",),
})
