"""Concurrent HTTP clients against a real uvicorn server: their queries are batched, their answers unchanged."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from geovec.query import Searcher, SearchRequest
from geovec.web import create_app

httpx = pytest.importorskip("httpx")

TEXTS = ["a harbour", "boats", "green fields", "a stadium", "dunes", "a port with cranes", "greenhouses", "a town"]


def test_concurrent_requests_share_batches_and_get_their_own_results(web_index, serve):
    bodies = [{"text": text, "top_k": 1 + n % 4, "within": web_index.region_box("nl") if n % 3 == 0 else None}
              for n, text in enumerate(TEXTS * 3)]
    # float32 queries: bfloat16 rounding depends on the batch's shape, so only float32 can match to 1e-5
    with serve(create_app(web_index.path, max_batch=8, max_wait_ms=20, precision="float32")) as url:
        def ask(body: dict) -> dict:
            with httpx.Client(base_url=url, timeout=30) as client:
                response = client.post("/api/search", json=body)
                response.raise_for_status()
                return response.json()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, bodies))
        batching = httpx.get(f"{url}/api/info", timeout=30).json()["batching"]
    assert batching["queries"] == len(bodies) and batching["largest_batch"] > 1
    with Searcher(web_index.path) as searcher:
        for body, answer in zip(bodies, answers):
            within = tuple(body["within"]) if body["within"] else None
            alone = searcher.search(SearchRequest(text=body["text"], top_k=body["top_k"], within=within))
            assert [row["id"] for row in answer["results"]] == [hit.id for hit in alone.hits]
            assert [row["score"] for row in answer["results"]] == pytest.approx([h.score for h in alone.hits],
                                                                                abs=1e-5)
