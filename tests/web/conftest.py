"""A small real index for the web tests: tiny random CLIP vectors, footprints in two regions, JPEG thumbnails."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from geovec.index import Record, VectorIndex
from geovec.inputs import ImageSegment
from geovec.models import load_model

REGIONS = {"nl": (5.0, 52.0), "es": (2.1, 41.4)}  # (lon, lat) of each cluster's first tile
TILE_DEG = 0.05
# id, region, caption, how the thumbnail is stored ("own": thumbs/<n>.jpg, None: no thumbnail, "escape": ../ path)
ITEMS = [
    ("nl-0", "nl", "green fields and a canal", "own"),
    ("nl/tile-1", "nl", "a harbour with many boats", "own"),  # an id with a slash: looked up, never a path
    ("nl-2", "nl", "greenhouses next to a road", "own"),
    ("nl-3", "nl", "a dense town centre", None),
    ("nl-4", "nl", "dunes along a beach", "escape"),
    ("es-0", "es", "a marina next to a beach", "own"),
    ("es-1", "es", "a stadium in a city", "own"),
    ("es-2", "es", "an industrial port with cranes", "own"),
]
OUTSIDE_FILE = "outside-secret.jpg"


@dataclass(frozen=True)
class WebIndex:
    path: Path
    checkpoint: Path
    query_image: Path  # a JPEG outside the index to upload
    outside_file: Path  # a file beside the index that a record's thumbnail tries to reach

    def ids(self, region: str | None = None) -> set[str]:
        return {i for i, r, _, _ in ITEMS if region in (None, r)}

    def caption(self, item_id: str) -> str:
        return next(caption for i, _, caption, _ in ITEMS if i == item_id)

    @staticmethod
    def region_box(region: str, margin: float = 0.5) -> tuple[float, float, float, float]:
        """A (minlon, minlat, maxlon, maxlat) box holding every footprint of ``region`` and nothing else."""
        lon, lat = REGIONS[region]
        return lon - margin, lat - margin, lon + margin + len(ITEMS) * TILE_DEG, lat + margin + TILE_DEG


def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (64, 48)) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.integers(0, 255, 3) + rng.integers(-40, 40, (size[1], size[0], 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path, quality=85)
    return path


@pytest.fixture(scope="session")
def web_index(tmp_path_factory, tiny_clip_checkpoint) -> WebIndex:
    root = tmp_path_factory.mktemp("web")
    path = root / "index"
    outside = write_jpeg(root / OUTSIDE_FILE, seed=99)
    records, inputs = [], []
    for n, (item_id, region, caption, thumb) in enumerate(ITEMS):
        lon, lat = REGIONS[region]
        lon += sum(r == region for _, r, _, _ in ITEMS[:n]) * TILE_DEG  # tiles side by side, west to east
        extra = {}
        if thumb == "own":
            extra["thumbnail"] = f"thumbs/{n}.jpg"
            write_jpeg(path / extra["thumbnail"], seed=n)
        elif thumb == "escape":
            extra["thumbnail"] = f"../{OUTSIDE_FILE}"
        records.append(Record(id=item_id, source=f"scenes/{region}.tif", lat=lat + TILE_DEG / 2, lon=lon + TILE_DEG / 2,
                              footprint=(lon, lat, lon + TILE_DEG, lat + TILE_DEG), captions=[caption], extra=extra))
        inputs.append(ImageSegment(str(path / extra["thumbnail"])) if thumb == "own" else caption)
    embedder = load_model("clip", tiny_clip_checkpoint)
    with VectorIndex.create(path, embedder.dim, model={"name": "clip", "path": str(tiny_clip_checkpoint)}) as store:
        store.add(records, embedder.encode(inputs))
    return WebIndex(path, tiny_clip_checkpoint, write_jpeg(root / "query.jpg", seed=7, size=(80, 60)), outside)


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """A real uvicorn server for ``app`` on a free 127.0.0.1 port, stopped on exit; yields its base URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def serve():
    """``with serve(app) as url``: the app on a real uvicorn server (see ``serve_in_thread``)."""
    return serve_in_thread
