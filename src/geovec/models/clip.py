"""Placeholder replaced by the CLIP embedder module."""
