"""Turning things to search (items, captions, later raster chips) into index entries."""

from geovec.ingest.items import IndexItem, IngestReport, index_items, read_items_jsonl

__all__ = ["IndexItem", "IngestReport", "index_items", "read_items_jsonl"]
