"""Vector stores with geographic filters: a folder (SQLite + FAISS, ``geovec.index.store``) or a Chroma server
(``geovec.index.chroma``), behind one API."""

from geovec.index.chroma import ChromaIndex
from geovec.index.filters import EARTH_RADIUS_KM, GeoFilter, haversine_km
from geovec.index.records import Hit, Record
from geovec.index.store import VectorIndex

__all__ = ["ChromaIndex", "EARTH_RADIUS_KM", "GeoFilter", "Hit", "Record", "VectorIndex", "haversine_km"]
