"""The shared search implementation (Python API = CLI = web) on a real index embedded with minilm."""

import pytest

from geovec.errors import GeovecInputError
from geovec.index import Record, VectorIndex
from geovec.ingest import IndexItem, index_items
from geovec.inputs import as_input
from geovec.models import load_model
from geovec.query import Searcher, SearchRequest

PLACES = [  # (id, caption, lat, lon)
    ("harbour-nl", "many boats moored in a harbour", 52.37, 4.90),
    ("harbour-es", "boats in a marina next to a beach", 41.38, 2.18),
    ("forest-nl", "a dense green forest", 52.10, 5.60),
]


@pytest.fixture(scope="module")
def index_path(tmp_path_factory):
    embedder = load_model("minilm")
    path = tmp_path_factory.mktemp("query") / "index"
    items = [IndexItem(Record(id=i, lat=lat, lon=lon, captions=[text]), (as_input(text),))
             for i, text, lat, lon in PLACES]
    with VectorIndex.create(path, embedder.dim, model={"name": "minilm", "path": None}) as store:
        index_items(items, embedder, store)
    return path


def test_text_query_ranks_by_meaning_and_area_filter_keeps_only_inside(index_path):
    with Searcher(index_path) as searcher:
        everywhere = searcher.search(SearchRequest(text="boats in a port", top_k=3))
        assert {h.id for h in everywhere.hits[:2]} == {"harbour-nl", "harbour-es"}
        in_nl = searcher.search(SearchRequest(text="boats in a port", within=(3.0, 50.5, 7.5, 54.0)))
        assert [h.id for h in in_nl.hits] == ["harbour-nl", "forest-nl"]
        near_bcn = searcher.search(SearchRequest(text="boats", near=(41.4, 2.2), radius_km=50))
        assert [h.id for h in near_bcn.hits] == ["harbour-es"]
        assert everywhere.to_dict()["results"][0]["score"] >= everywhere.to_dict()["results"][1]["score"]


@pytest.mark.parametrize("request_kwargs, message", [
    ({}, "empty query"),
    ({"text": "  "}, "empty query text"),
    ({"box": (0, 0, 1, 1), "text": "x"}, "needs an image"),
    ({"text": "x", "top_k": 0}, "between 1 and"),
    ({"text": "x", "near": (52.0, 4.0)}, "go together"),
    ({"text": "x", "within": (10, 0, 20, 95)}, "latitude"),
])
def test_bad_requests_are_refused_with_the_field_named(index_path, request_kwargs, message):
    with Searcher(index_path) as searcher, pytest.raises(GeovecInputError, match=message):
        searcher.search(SearchRequest(**request_kwargs))


def test_an_index_embeds_items_and_queries_with_the_instructions_it_records(tmp_path):
    """Instruction-tuned encoders are used as trained: the index says how items and queries are instructed."""
    embedder = load_model("minilm")
    model = {"name": "minilm", "path": None, "query_instruction": "Find the scene:", "item_instruction": "A scene:"}
    caption = "many boats moored in a harbour"
    with VectorIndex.create(tmp_path / "index", embedder.dim, model=model) as store:
        index_items([IndexItem(Record(id="harbour"), (as_input(caption),))], embedder, store, show_progress=False)
    item = embedder.encode(caption, instruction="A scene:")
    with Searcher(tmp_path / "index", embedder=embedder) as searcher:
        (hit,) = searcher.search(SearchRequest(text=caption)).hits
        assert hit.score == pytest.approx(float(item @ embedder.encode(caption, instruction="Find the scene:")),
                                          abs=1e-5)
        (explicit,) = searcher.search(SearchRequest(text=caption, instruction="A scene:")).hits
        assert explicit.score == pytest.approx(1.0, abs=1e-5)  # an explicit instruction wins
