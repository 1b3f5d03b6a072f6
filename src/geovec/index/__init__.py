"""A durable on-disk vector store (SQLite + FAISS) with geographic filters; see ``geovec.index.store``."""

from geovec.index.filters import EARTH_RADIUS_KM, GeoFilter, haversine_km
from geovec.index.records import Hit, Record
from geovec.index.store import VectorIndex

__all__ = ["EARTH_RADIUS_KM", "GeoFilter", "Hit", "Record", "VectorIndex", "haversine_km"]
