"""Tasks on the real shared data (../shared/data, see its MANIFEST.md); skipped where the data is absent.

Loading reads image headers only, so each task loads in well under a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geovec.bench import get_task
from geovec.config import data_dir
from geovec.datasets import TextToTextSplit, check_unique_ids, regions
from geovec.inputs import ImageSegment, PointSegment

ROOT = data_dir()
# MANIFEST: tile centres 4.57-6.23 E, 50.74-52.26 N (rounded to 0.01 degree)
LON, LAT = (4.565, 6.235), (50.735, 52.265)


def needs(*paths: str):
    missing = [p for p in paths if not (ROOT / p).exists()]
    return pytest.mark.skipif(bool(missing), reason=f"shared data not here: {', '.join(missing)} under {ROOT}")


@needs("rsicd/images", "rs_caption_splits/rsicd/test_filename.txt")
def test_rsicd_scene():
    queries = get_task("rsicd-scene").load(ROOT)
    check_unique_ids(queries)
    assert len(queries) == 1027  # of the 1,093 test images, 66 are plain numbers without a class
    names = [c.segments[0].text for c in queries[0].candidates]
    assert len(names) == 30 and {"dense residential", "storage tanks", "railway station", "bare land"} <= set(names)
    airport = next(q for q in queries if q.id.startswith("airport_"))
    assert names[min(airport.positives)] == "airport"


@needs("rsicd/images", "rs_caption_splits/rsicd/test_caps.txt")
def test_rsicd_retrieval():
    split = get_task("rsicd-retrieval").load(ROOT)
    captions = (ROOT / "rs_caption_splits" / "rsicd" / "test_caps.txt").read_text(encoding="utf-8").splitlines()
    assert len(split.images) == 1093
    assert len(split.texts) == 5465 - sum(1 for c in captions if not c.strip())
    assert np.bincount(split.text_image).max() == 5


@needs("rsvqa_lr")
@pytest.mark.parametrize("task", ["rsvqa-lr-geoloc-image-to-point", "rsvqa-lr-geoloc-point-to-image"])
def test_geolocation_tasks(task):
    queries = get_task(task).load(ROOT)
    assert len(queries) == 102
    for q in queries:
        assert len(q.candidates) == 10 and len(q.positives) == 1
        for item in (q.query, *q.candidates):
            (segment,) = item.segments
            if isinstance(segment, PointSegment):
                assert LON[0] <= segment.lon <= LON[1] and LAT[0] <= segment.lat <= LAT[1]
            else:
                assert isinstance(segment, ImageSegment) and segment.size == (256, 256)


@needs("deepforest/OSBS_029.tif", "deepforest/OSBS_029.csv")
def test_osbs_tree_region():
    queries = get_task("osbs-tree-region").load(ROOT)
    rows = (ROOT / "deepforest" / "OSBS_029.csv").read_text().splitlines()[1:]
    assert len(queries) == len(rows) == 61
    for q in queries:
        picture, box = q.query.segments
        (crop,) = q.candidates[min(q.positives)].segments
        x1, y1, x2, y2 = box.bbox_xyxy
        cx1, cy1, cx2, cy2 = regions.with_context((int(x1), int(y1), int(x2), int(y2)), (400, 400))
        assert Path(picture.path).name == "OSBS_029.tif" and crop.size == (cx2 - cx1, cy2 - cy1)
        assert len(q.candidates) == 10


@needs("rs_caption_splits/rsitmd")
def test_text_to_text_oracle_leaves_the_query_caption_out():
    split = get_task("rsitmd-t2t").load(ROOT)
    assert isinstance(split, TextToTextSplit) and split.oracle and "oracle" in split.corpus
    assert len(split.image_ids) == 452 and len(split.queries) == 2260
    assert list(split.exclude) == list(range(2260))  # each query excluded from its own image's descriptions
