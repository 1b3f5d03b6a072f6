"""Vector stores with geographic filters: a folder (SQLite + FAISS, ``geovec.index.store``) or a Chroma server
(``geovec.index.chroma``), behind one API.

Names are imported on first use (PEP 562), so validating a filter (``geovec.index.filters``) does not load FAISS.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "chroma": ("ChromaIndex",),
    "filters": ("EARTH_RADIUS_KM", "GeoFilter", "haversine_km"),
    "records": ("Hit", "Record"),
    "store": ("VectorIndex",),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'geovec.index' has no attribute {name!r}")
    return getattr(importlib.import_module(f"geovec.index.{_MODULE_OF[name]}"), name)
