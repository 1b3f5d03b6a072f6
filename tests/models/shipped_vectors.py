"""Reference vectors of the shipped geovec-mini, recorded with the code before the point tower existed.

``test_point_tower.py`` checks that the shipped weights (no point tower) still give these vectors. This module uses
only names the older code has, so it records with any checkout:
``PYTHONPATH=<checkout>/src python tests/models/shipped_vectors.py`` (recorded at commit 887d280; its
revision re-recorded when revisions became content hashes, the vectors kept).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from geovec.config import data_dir
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment, as_input

RECORDED = Path(__file__).with_name("shipped_mini_vectors.npz")
IMAGE = data_dir() / "rsicd" / "images" / "airport_1.jpg"


def shipped_inputs() -> list[Interleaved]:
    """Text, image, image + box, and points (with and without an instruction)."""
    image = ImageSegment(IMAGE)
    return [as_input("many planes are parked next to a long building in an airport ."),
            Interleaved((image, TextSegment("planes")), instruction="Represent the image"),
            Interleaved((image, BoxSegment((0.1, 0.1, 0.5, 0.6), "normalized"))),
            Interleaved((PointSegment(51.9, 4.48), TextSegment("harbour")), instruction="Find the place"),
            Interleaved((PointSegment(-33.8688, 151.2093),))]


def shipped_vectors(model: Any = None) -> tuple[str, np.ndarray]:
    """(the shipped checkpoint's revision, its vectors of ``shipped_inputs()``) as a user gets them (``model``:
    the registry's geovec-mini, loaded now if not given)."""
    from geovec.models import load_model

    model = model or load_model("geovec-mini")
    return model.revision, model.encode(shipped_inputs())


if __name__ == "__main__":
    revision, vectors = shipped_vectors()
    np.savez(RECORDED, revision=revision, vectors=vectors)
    print(f"recorded {vectors.shape} of revision {revision} in {RECORDED}")
