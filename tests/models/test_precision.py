"""Query embedding in bfloat16 (what `geovec serve` picks where it is measured faster): same ranking, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geovec.errors import GeovecInputError
from geovec.inputs import ImageSegment
from geovec.models import load_model
from geovec.models.base import model_identity

IMAGES = sorted((Path(__file__).parents[1] / "data" / "rsicd" / "images").glob("*.jpg"))[:6]
CAPTIONS = ["many planes are parked near the terminal of an airport", "a bridge crosses a wide river",
            "green trees surround a baseball field", "several storage tanks stand near a port",
            "a dense residential area with red roofs", "a playground with a track and a football field"]


@pytest.fixture(scope="module")
def mini():
    return load_model("geovec-mini")


def test_bfloat16_queries_rank_images_as_float32_queries_do(mini):
    images = mini.encode([ImageSegment(str(path)) for path in IMAGES])
    reference = mini.encode(CAPTIONS, instruction="Represent the caption for retrieving the image:")
    identity = model_identity(mini)
    fast_embedder = mini.with_precision("bfloat16")
    assert fast_embedder.precision == "bfloat16"
    fast = fast_embedder.encode(CAPTIONS, instruction="Represent the caption for retrieving the image:")
    fast_images = fast_embedder.encode([ImageSegment(str(path)) for path in IMAGES[:2]])
    assert model_identity(fast_embedder) == identity + "+bfloat16"  # caches never mix the two kinds of vectors
    back = mini.encode(CAPTIONS, instruction="Represent the caption for retrieving the image:")
    assert np.array_equal(back, reference)  # the float32 embedder: the very same vectors as before
    assert np.min(np.sum(fast * reference, axis=1)) > 0.9999
    assert np.min(np.sum(fast_images * images[:2], axis=1)) > 0.9999  # the vision tower stays float32
    assert (np.argsort(-(fast @ images.T), axis=1) == np.argsort(-(reference @ images.T), axis=1)).all()


def test_an_unknown_precision_is_refused_by_name(mini):
    with pytest.raises(GeovecInputError, match="precision.*float16"):
        mini.with_precision("float16")

