"""The embedded default text model (real all-MiniLM-L6-v2 weights from the pip package) and the registry."""

import numpy as np
import pytest

from geovec.errors import GeovecError, UnsupportedInputError
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment
from geovec.models import Embedder, list_models, load_model


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm")


def test_minilm_embeds_text_as_normalised_float32(minilm):
    vectors = minilm.encode(["many planes parked at the airport", "a dense residential area"], batch_size=1)
    assert isinstance(minilm, Embedder)
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_minilm_ranks_paraphrases_above_unrelated_scenes(minilm):
    query, paraphrase, other = minilm.encode([
        "many airplanes are parked near the terminal building",
        "several planes stand beside an airport terminal",
        "green farmland with a few scattered trees"])
    assert query @ paraphrase > query @ other + 0.2


def test_same_vector_whatever_the_batch(minilm):
    texts = ["a bridge over a river", "a baseball field", "a storage tank farm", "a bridge over a river"]
    together = minilm.encode(texts, batch_size=3)
    alone = np.stack([minilm.encode(text) for text in texts])
    assert np.allclose(together, alone, atol=1e-5)
    assert np.array_equal(together[0], together[3])


def test_points_and_boxes_reach_minilm_as_canonical_text(minilm):
    item = Interleaved((TextSegment("harbour"), PointSegment(52.37, 4.9)))
    same_text = minilm.encode("harbour <loc>52.3700, 4.9000</loc>")
    assert np.allclose(minilm.encode(item), same_text, atol=1e-6)
    boxed = minilm.encode(Interleaved((BoxSegment((0.1, 0.2, 0.3, 0.4), "normalized"), TextSegment("tree"))))
    assert np.allclose(boxed, minilm.encode("<box>(100,200),(300,400)</box> tree"), atol=1e-6)


def test_images_are_refused_not_dropped(minilm):
    item = Interleaved((ImageSegment(np.zeros((8, 8, 3), np.uint8)), TextSegment("a port")))
    with pytest.raises(UnsupportedInputError, match=r"inputs\[1\]: model 'minilm' cannot embed image segments"):
        minilm.encode(["fine", item])


def test_registry_describes_models_and_rejects_unknown_names():
    specs = {spec.name: spec for spec in list_models()}
    assert specs["minilm"].dim == 384 and "image" not in specs["minilm"].modalities
    assert {"image", "box", "text", "point"} <= specs["clip"].modalities and specs["clip"].needs_path
    with pytest.raises(GeovecError, match="unknown model 'qwen-9000'; known models: .*minilm"):
        load_model("qwen-9000")
    with pytest.raises(GeovecError, match="does not exist"):
        load_model("sentence-transformers", path="/no/such/folder")
