"""Query embedding in bfloat16 (what `geovec serve` picks where the CPU has it natively): same ranking, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geovec.errors import GeovecInputError
from geovec.inputs import ImageSegment
from geovec.models import load_model
from geovec.models.base import model_identity
from geovec.precision import native_bfloat16

IMAGES = sorted((Path(__file__).parents[1] / "data" / "rsicd" / "images").glob("*.jpg"))[:6]
CAPTIONS = ["many planes are parked near the terminal of an airport", "a bridge crosses a wide river",
            "green trees surround a baseball field", "several storage tanks stand near a port",
            "a dense residential area with red roofs", "a playground with a track and a football field"]


@pytest.fixture(scope="module")
def mini():
    return load_model("geovec-mini")


def test_bfloat16_queries_rank_images_as_float32_queries_do(mini):
    mini.use_precision("float32")
    images = mini.encode([ImageSegment(str(path)) for path in IMAGES])
    reference = mini.encode(CAPTIONS, instruction="Represent the caption for retrieving the image:")
    identity = model_identity(mini)
    try:
        assert mini.use_precision("bfloat16") == "bfloat16"
        fast = mini.encode(CAPTIONS, instruction="Represent the caption for retrieving the image:")
        fast_images = mini.encode([ImageSegment(str(path)) for path in IMAGES[:2]])
        assert model_identity(mini) == identity + "+bfloat16"  # caches never mix the two kinds of vectors
    finally:
        mini.use_precision("float32")
    back = mini.encode(CAPTIONS, instruction="Represent the caption for retrieving the image:")
    assert np.array_equal(back, reference)  # float32 again: the very same vectors as before
    assert np.min(np.sum(fast * reference, axis=1)) > 0.9999
    assert np.min(np.sum(fast_images * images[:2], axis=1)) > 0.9999  # the vision tower stays float32
    assert (np.argsort(-(fast @ images.T), axis=1) == np.argsort(-(reference @ images.T), axis=1)).all()


def test_auto_picks_bfloat16_only_where_the_hardware_has_it(mini):
    try:
        assert mini.use_precision("auto") == ("bfloat16" if native_bfloat16("cpu") else "float32")
    finally:
        mini.use_precision("float32")


def test_an_unknown_precision_is_refused_by_name(mini):
    with pytest.raises(GeovecInputError, match="precision.*float16"):
        mini.use_precision("float16")


@pytest.mark.parametrize(("switch", "expected"), [("0", "float32"), ("1", "bfloat16")])
def test_cpu_bf16_switch_decides_auto_whatever_the_cpu_has(mini, monkeypatch, switch, expected):
    """GEOVEC_CPU_BF16=0 makes an AVX-512-BF16 machine pick as an AVX2-only one does (scripts/test_capped.sh)."""
    monkeypatch.setenv("GEOVEC_CPU_BF16", switch)
    native_bfloat16.cache_clear()
    try:
        assert mini.use_precision("auto") == expected
    finally:
        mini.use_precision("float32")
        monkeypatch.undo()
        native_bfloat16.cache_clear()


def test_an_unreadable_cpu_bf16_switch_is_refused_by_name(mini, monkeypatch):
    monkeypatch.setenv("GEOVEC_CPU_BF16", "no")
    native_bfloat16.cache_clear()
    try:
        with pytest.raises(GeovecInputError, match="GEOVEC_CPU_BF16: is 'no'; set 0"):
            mini.use_precision("auto")
    finally:
        monkeypatch.undo()
        native_bfloat16.cache_clear()
