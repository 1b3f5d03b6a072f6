"""Searching a description index: real MiniLM, a real folder index, the real CLI; one result per image."""

import io
import json
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from geovec.cli.main import app, run
from geovec.errors import GeovecError, GeovecInputError
from geovec.index import Hit, Record, VectorIndex
from geovec.models import load_model
from geovec.query import Searcher, SearchRequest
from geovec.t2t import Description, write_corpus
from geovec.t2t.search import DESCRIPTIONS, DescriptionSearch, group_by_image
from geovec.web import create_app

CORPUS = [
    Description("airport.jpg", "summary", "many airplanes parked at the terminal of an airport", "vlm", "rsrt-v1"),
    Description("beach.jpg", "summary", "a sandy beach with waves and a blue sea", "vlm", "rsrt-v1"),
    Description("airport.jpg", "objects", "a runway, taxiways and aircraft on an apron", "vlm", "rsrt-v1"),
    Description("forest.jpg", "summary", "a dense green forest covering hills", "vlm", "rsrt-v1"),
    Description("bridge.jpg", "summary", "a long bridge crossing a wide river", "vlm", "rsrt-v1"),
    Description("beach.jpg", "objects", "umbrellas and people on the sand near the water", "vlm", "rsrt-v1"),
    Description("forest.jpg", "objects", "tall trees with dark green canopies", "vlm", "rsrt-v1"),
    Description("airport.jpg", "detailed", "a terminal building beside parking lots and a control tower", "vlm",
                "rsrt-v1"),
    Description("bridge.jpg", "objects", "cars driving over a bridge above the water", "vlm", "rsrt-v1"),
]
QUERY = "planes parked at an airport"


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("t2t_search")
    corpus = root / "descriptions.jsonl"
    write_corpus(corpus, CORPUS)
    (root / "images").mkdir()
    for name, colour in (("airport.jpg", "grey"), ("beach.jpg", "khaki"), ("forest.jpg", "darkgreen")):
        Image.new("RGB", (200, 150), colour).save(root / "images" / name)  # bridge.jpg has no picture
    index = root / "index"
    result = cli("index", "descriptions", str(corpus), "--index", str(index), "--images-root", str(root / "images"))
    assert result.exit_code == 0, result.output
    assert f"added {len(CORPUS)} descriptions" in result.stderr and "thumbnails of 3 images" in result.stderr
    return root, corpus, index


def test_cli_search_returns_images_and_a_rerun_adds_nothing(built):
    root, corpus, index = built
    result = cli("search", "--index", str(index), "--text", QUERY, "--top-k", "3", "--json")
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)["results"]
    assert [r["id"] for r in results][0] == "airport.jpg"
    assert len({r["id"] for r in results}) == len(results) == 3
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    best = results[0]
    assert best["source"] == str(root / "images" / "airport.jpg")
    assert best["extra"]["image_id"] == "airport.jpg" and best["extra"]["matched"] == 3
    assert best["extra"]["best_description_id"].startswith("airport.jpg#")

    again = cli("index", "descriptions", str(corpus), "--index", str(index))
    assert again.exit_code == 0, again.output
    assert "added 0 descriptions, already present 9, total 9" in again.stderr
    info = json.loads(cli("index", "info", "--index", str(index)).stdout)
    assert info["items"] == len(CORPUS) and info["model"]["represents"] == DESCRIPTIONS
    table = cli("search", "--index", str(index), "--text", QUERY, "--top-k", "2")
    assert table.exit_code == 0 and "airport.jpg" in table.stdout


def test_image_score_is_the_max_over_its_descriptions(built):
    _, _, index = built
    embedder = load_model("minilm")
    with Searcher(index, embedder=embedder) as searcher:
        hits = searcher.search(SearchRequest(text=QUERY, top_k=10)).hits  # more than the 4 images
    assert [h.id for h in hits][0] == "airport.jpg"
    assert sorted(h.id for h in hits) == sorted({d.image_id for d in CORPUS})
    query = embedder.encode([QUERY])[0]
    vectors = embedder.encode([d.text for d in CORPUS])
    for hit in hits:
        mine = [i for i, d in enumerate(CORPUS) if d.image_id == hit.id]
        scores = vectors[mine] @ query / (np.linalg.norm(vectors[mine], axis=1) * np.linalg.norm(query))
        assert hit.score == pytest.approx(float(scores.max()), abs=1e-5)
        assert hit.record.captions == [CORPUS[mine[i]].text for i in np.argsort(-scores)][:3]
        assert hit.record.extra["matched"] == len(mine)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_an_image_or_place_query_on_a_description_index_is_refused(built, monkeypatch, capsys):
    _, _, index = built
    with Searcher(index) as searcher, pytest.raises(GeovecInputError, match="image: .*text descriptions"):
        searcher.search(SearchRequest(image=Image.new("RGB", (8, 8)), text="airport"))
    monkeypatch.setattr(sys, "argv", ["geovec", "search", "--index", str(index), "--point", "52,4", "-t", "x"])
    with pytest.raises(SystemExit) as exit_info:
        run(app)
    assert exit_info.value.code == 2
    assert "error: point: this index represents images by text descriptions" in capsys.readouterr().err


def test_descriptions_and_images_never_share_an_index(built, tmp_path):
    _, corpus, descriptions = built
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "scene", "input": "a harbour"}) + "\n")
    images = tmp_path / "images-index"
    assert cli("index", "build", str(items), "--index", str(images)).exit_code == 0
    refused = cli("index", "descriptions", str(corpus), "--index", str(images))
    assert isinstance(refused.exception, GeovecError) and f"index {images} holds images" in str(refused.exception)
    refused = cli("index", "build", str(items), "--index", str(descriptions))
    assert f"index {descriptions} holds image descriptions" in str(refused.exception)


@pytest.mark.parametrize("content, message", [(None, "corpus file not found"), ("\n", "the corpus is empty"),
                                              ('{"image_id": "a.jpg"}\n', "needs string fields")])
def test_a_missing_empty_or_bad_corpus_is_refused_before_any_index_is_made(tmp_path, content, message):
    corpus = tmp_path / "corpus.jsonl"
    if content is not None:
        corpus.write_text(content)
    result = cli("index", "descriptions", str(corpus), "--index", str(tmp_path / "index"))
    assert isinstance(result.exception, GeovecError) and message in str(result.exception)
    assert not (tmp_path / "index").exists()


def test_search_fetches_more_descriptions_until_enough_images_are_seen(tmp_path):
    """A Searcher kept open (the web server) while one image gains many descriptions still finds top_k images."""
    def record(image: str, n: int) -> Record:
        return Record(id=f"{image}#{n}", captions=[f"{image} {n}"], extra={"image_id": image})

    with VectorIndex.create(tmp_path / "index", 2, model={"name": "minilm", "represents": DESCRIPTIONS}) as store:
        store.add([record("a", 0), record("b", 0), record("c", 0)],
                  np.array([[1, 0], [0.8, 0.6], [0.6, 0.8]], np.float32))
        search = DescriptionSearch(store)
        assert search.per_image() == 1
        store.add([record("a", n) for n in range(1, 6)], np.tile(np.array([[1, 0]], np.float32), (5, 1)))
        hits = search.search(np.array([1, 0], np.float32), top_k=2, exact=True)
        assert [h.id for h in hits] == ["a", "b"] and hits[0].record.extra["matched"] == 6
        assert [h.id for h in search.search(np.array([1, 0], np.float32), top_k=5)] == ["a", "b", "c"]


def hit(id: str, score: float, source: str | None = None) -> Hit:
    return Hit(id, score, Record(id=id, source=source, captions=[f"text of {id}"],
                                 extra={"image_id": id.split("#")[0], "kind": "summary"}))


def test_grouping_keeps_each_image_once_with_its_best_description():
    hits = [hit("a#0", 0.9, "a.png"), hit("b#0", 0.8), hit("a#1", 0.7), hit("a#2", 0.6), hit("c#0", 0.5),
            hit("a#3", 0.4), hit("b#1", 0.3)]
    images = group_by_image(hits, top_k=10)
    assert [(h.id, h.score) for h in images] == [("a", 0.9), ("b", 0.8), ("c", 0.5)]
    a = images[0]
    assert a.record.id == "a" and a.record.source == "a.png"
    assert a.record.captions == ["text of a#0", "text of a#1", "text of a#2"]  # best first, at most 3
    assert a.record.extra == {"image_id": "a", "matched": 4, "best_description_id": "a#0"}
    assert images[1].record.extra["matched"] == 2
    assert [h.id for h in group_by_image(hits, top_k=2)] == ["a", "b"]


def test_grouping_sorts_unordered_hits_and_keeps_input_order_on_ties():
    hits = [hit("b#1", 0.5), hit("c#0", 0.7), hit("b#0", 0.7), hit("a#0", 0.7), hit("a#1", 0.9)]
    images = group_by_image(hits, top_k=3)
    assert [(h.id, h.score) for h in images] == [("a", 0.9), ("c", 0.7), ("b", 0.7)]
    assert images[2].record.extra["best_description_id"] == "b#0"
    assert group_by_image([], top_k=3) == []


def test_the_web_api_answers_a_description_index_with_images(built):
    _, _, index = built
    with TestClient(create_app(index)) as client:
        body = client.post("/api/search", json={"text": QUERY, "top_k": 10}).json()
        assert [r["id"] for r in body["results"]][0] == "airport.jpg"
        assert sorted(r["id"] for r in body["results"]) == ["airport.jpg", "beach.jpg", "bridge.jpg", "forest.jpg"]
        thumbnails = {r["id"]: r["thumbnail_url"] for r in body["results"]}
        assert thumbnails["bridge.jpg"] is None
        picture_of_airport = client.get(thumbnails["airport.jpg"])
        assert picture_of_airport.status_code == 200 and picture_of_airport.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(picture_of_airport.content)).size == (128, 96)
        picture = Image.new("RGB", (32, 32), "green")
        upload = io.BytesIO()
        picture.save(upload, format="PNG")
        refused = client.post("/api/search/image", files={"image": ("q.png", upload.getvalue(), "image/png")})
        assert refused.status_code == 400 and "text descriptions" in refused.json()["error"]
