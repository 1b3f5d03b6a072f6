"""``POST /api/search`` as a documented FastAPI route: its OpenAPI schema, the CLI's ``instruction`` and ``exact``
on both search endpoints, and the image upload's body deadline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import raw_http
from fastapi.testclient import TestClient

from geovec.index import Record, VectorIndex
from geovec.models.registry import index_model_record
from geovec.query import Searcher, SearchRequest
from geovec.web import create_app

ANN_ITEMS, TINY_DIM, MINI_DIM = 2000, 16, 384
INSTRUCTION = "Represent the scene for finding bridges over rivers:"
TEXTS = ["a harbour", "boats", "green fields", "a stadium", "dunes"]


def random_index(path: Path, count: int, dim: int, model: dict, ann: bool = False) -> np.ndarray:
    """``count`` random unit vectors (returned) at random places; ``ann``: with a deliberately coarse HNSW graph,
    so that graph search and brute force disagree."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = [Record(id=f"item-{n}", lat=float(rng.uniform(-60, 60)), lon=float(rng.uniform(-170, 170)))
               for n in range(count)]
    with VectorIndex.create(path, dim, model=model) as store:
        store.add(records, vectors)
        if ann:
            store.build_ann(M=4, ef_construction=8, ef_search=8)
    return vectors


@pytest.fixture(scope="module")
def ann_index(tmp_path_factory, tiny_clip_checkpoint) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("ann") / "index"
    return path, random_index(path, ANN_ITEMS, TINY_DIM, {"name": "clip", "path": str(tiny_clip_checkpoint)}, ann=True)


@pytest.fixture(scope="module")
def ann_client(ann_index):
    with TestClient(create_app(ann_index[0], precision="float32", query_cache=0)) as client:
        yield client


@pytest.fixture(scope="module")
def mini_client(tmp_path_factory):
    """geovec-mini, which reads instructions (CLIP ignores them), over random vectors: the app and its Searcher."""
    path = tmp_path_factory.mktemp("mini") / "index"
    random_index(path, 300, MINI_DIM, index_model_record("geovec-mini", None))
    with TestClient(create_app(path, precision="float32", query_cache=0)) as client:
        yield client


def ids(answer: dict) -> list[str]:
    return [row["id"] for row in answer["results"]]


def resolve(document: dict, ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for value in node.values() for r in refs(value)]
    return [r for value in node for r in refs(value)] if isinstance(node, list) else []


def test_openapi_documents_the_json_search_body_answer_and_refusals(ann_client):
    document = ann_client.get("/openapi.json").json()
    assert refs(document) and all(resolve(document, ref) is not None for ref in refs(document))  # none dangles
    operation = document["paths"]["/api/search"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    schema = resolve(document, schema["$ref"]) if "$ref" in schema else schema
    fields = schema["properties"]
    assert {"text", "top_k", "instruction", "exact", "within", "near", "point", "radius_km"} <= set(fields)
    assert fields["exact"]["type"] == "boolean" and fields["top_k"]["type"] == "integer"
    assert schema["additionalProperties"] is False  # unknown fields are refused (422), as the route does
    answer = resolve(document, operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"])
    assert {"results", "elapsed_ms", "message"} <= set(answer["properties"])
    assert {"400", "408", "411", "413", "422"} <= set(operation["responses"])
    error = operation["responses"]["413"]["content"]["application/json"]["schema"]
    assert resolve(document, error["$ref"])["properties"] == {"error": {"title": "Error", "type": "string"}}
    upload = document["paths"]["/api/search/image"]["post"]["requestBody"]["content"]["multipart/form-data"]
    form = resolve(document, upload["schema"]["$ref"])["properties"]
    assert {"image", "text", "instruction", "exact", "top_k"} <= set(form)
    docs = ann_client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_exact_true_ranks_by_brute_force_as_the_cli_does(ann_client, ann_index):
    path, vectors = ann_index
    differs = 0
    with Searcher(path, precision="float32") as searcher:
        for text in TEXTS:
            exact = ann_client.post("/api/search", json={"text": text, "top_k": 20, "exact": True})
            graph = ann_client.post("/api/search", json={"text": text, "top_k": 20})
            assert exact.status_code == graph.status_code == 200
            query = searcher.embedder.encode([text])[0]
            brute_force = [f"item-{n}" for n in np.argsort(-(vectors @ query), kind="stable")[:20]]
            assert ids(exact.json()) == brute_force
            cli = searcher.search(SearchRequest(text=text, top_k=20, exact=True))  # `geovec search --exact`
            assert ids(exact.json()) == [hit.id for hit in cli.hits]
            differs += ids(graph.json()) != brute_force
    assert differs > 0  # the coarse graph misses some: without exact, the answer would not be brute force


def test_image_upload_takes_exact_as_a_form_field(ann_client, ann_index, web_index):
    path = ann_index[0]
    image = web_index.query_image.read_bytes()

    def upload(**fields: str) -> list[str]:
        response = ann_client.post("/api/search/image", files={"image": ("q.jpg", image, "image/jpeg")},
                                   data={"top_k": "20", **fields})
        assert response.status_code == 200, response.json()
        return ids(response.json())

    with Searcher(path, precision="float32") as searcher:
        cli = searcher.search(SearchRequest(image=str(web_index.query_image), top_k=20, exact=True))
    assert upload(exact="true") == [hit.id for hit in cli.hits]
    assert upload(exact="false") != [hit.id for hit in cli.hits]  # the graph's answer: a different one


@pytest.mark.slow
def test_instruction_embeds_the_query_as_the_python_api_does(mini_client):
    searcher = mini_client.app.state.web.searcher
    for text in TEXTS[:3]:
        given = mini_client.post("/api/search", json={"text": text, "top_k": 5, "instruction": INSTRUCTION}).json()
        default = mini_client.post("/api/search", json={"text": text, "top_k": 5}).json()
        direct = searcher.search(SearchRequest(text=text, top_k=5, instruction=INSTRUCTION))
        assert ids(given) == [hit.id for hit in direct.hits]
        assert [row["score"] for row in given["results"]] == pytest.approx([h.score for h in direct.hits], abs=1e-5)
        assert [row["score"] for row in given["results"]] != pytest.approx(
            [row["score"] for row in default["results"]], abs=1e-3)  # the instruction changed the query vector


@pytest.mark.slow
def test_image_upload_takes_an_instruction_as_a_form_field(mini_client, web_index):
    searcher = mini_client.app.state.web.searcher
    image = web_index.query_image.read_bytes()

    def upload(**fields: str) -> list[float]:
        response = mini_client.post("/api/search/image", files={"image": ("q.jpg", image, "image/jpeg")},
                                    data={"top_k": "5", **fields})
        assert response.status_code == 200, response.json()
        return [row["score"] for row in response.json()["results"]]

    direct = searcher.search(SearchRequest(image=str(web_index.query_image), top_k=5, instruction=INSTRUCTION))
    assert upload(instruction=INSTRUCTION) == pytest.approx([hit.score for hit in direct.hits], abs=1e-5)
    assert upload() != pytest.approx([hit.score for hit in direct.hits], abs=1e-3)


@pytest.mark.parametrize("field, message", [
    ({"exact": "yes"}, "exact: Input should be a valid boolean"),
    ({"exact": 1}, "exact: Input should be a valid boolean"),
    ({"instruction": 5}, "instruction: Input should be a valid string"),
])
def test_wrongly_typed_instruction_or_exact_is_422_naming_the_field(ann_client, field, message):
    response = ann_client.post("/api/search", json={"text": "boats", **field})
    assert response.status_code == 422 and response.json()["error"].startswith(message), response.json()


def raw_upload(url: str, announced: int, body: bytes, timeout: float = 10) -> tuple[int, dict]:
    """A multipart POST /api/search/image written by hand: a Content-Length the body need not fill."""
    head = {"Content-Type": "multipart/form-data; boundary=xyz", "Content-Length": str(announced)}
    return raw_http.raw_post(url, "/api/search/image", head, body, timeout)


def test_an_upload_shorter_than_its_content_length_times_out_with_408(web_index, serve):
    image = web_index.query_image.read_bytes()
    part = (b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + image + b"\r\n--xyz--\r\n")
    with serve(create_app(web_index.path, body_timeout_s=0.5)) as url:
        started = time.monotonic()
        status, answer = raw_upload(url, len(part), part[:len(part) // 2])  # half the announced body, then silence
        waited = time.monotonic() - started
        whole = raw_upload(url, len(part), part)
    assert status == 408 and 0.5 <= waited < 5, (status, answer, waited)
    assert answer["error"] == (f"body: the {len(part):,} bytes its Content-Length announces did not arrive within "
                               "0.5 s: send the whole image upload at once")
    assert whole[0] == 200 and len(whole[1]["results"]) == 8  # a whole upload is answered as before
