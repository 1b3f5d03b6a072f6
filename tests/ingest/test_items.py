"""``index_items`` and ``encode`` (the Python API under `geovec index build` and `embed`) with texts longer than the
model reads: refused naming the item, or, with ``truncate``, cut and counted. Real MiniLM, real index."""

import numpy as np
import pytest

from geovec.errors import GeovecInputError
from geovec.index import Record, VectorIndex
from geovec.ingest import IndexItem, index_items
from geovec.inputs import as_input
from geovec.models import load_model

WINDOW_TEXT = " ".join(["river"] * 254)  # exactly MiniLM's 256 tokens with [CLS] and [SEP]
LONGER_TEXT = WINDOW_TEXT + " harbour" * 300  # the same first 256 tokens, then 300 words the model never reads


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm")


def test_encode_refuses_a_text_the_model_would_cut_and_truncate_cuts_it(minilm):
    with pytest.raises(GeovecInputError, match=r"^inputs\[1\]: the text takes 556 tokens; model 'minilm' reads at "
                                               "most 256, so the rest would be ignored"):
        minilm.encode(["a port", LONGER_TEXT])
    cut, whole = minilm.encode([LONGER_TEXT, WINDOW_TEXT], truncate=True)
    assert np.allclose(cut, whole, atol=1e-6)  # what a silent cut made of it: the 300 words changed nothing
    assert minilm.encode(WINDOW_TEXT).shape == (384,)  # a text that just fits is embedded as before


def test_index_items_refuses_before_writing_and_truncate_reports_the_cut(minilm, tmp_path):
    items = [IndexItem(Record(id="port"), (as_input("a port"),)),
             IndexItem(Record(id="essay"), (as_input(LONGER_TEXT),), origin="corpus.jsonl:2")]
    with VectorIndex.create(tmp_path / "idx", minilm.dim, model={"name": "minilm"}) as store:
        with pytest.raises(GeovecInputError, match=r"^corpus.jsonl:2: item 'essay': input: the text takes 556 "
                                                   "tokens"):
            index_items(items, minilm, store, show_progress=False)
        assert len(store) == 0
        report = index_items(items, minilm, store, show_progress=False, truncate=True)
        assert (report.added, report.truncated, len(store)) == (2, 1, 2)
