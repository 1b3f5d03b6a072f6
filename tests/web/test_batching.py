"""Concurrent HTTP clients against a real uvicorn server: their queries are batched, their answers unchanged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
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


def test_geovec_serve_splits_batches_over_worker_processes_and_ctrl_c_stops_them_all(web_index):
    """The real command: its worker processes answer with it, and one Ctrl-C (SIGINT to the terminal's process
    group) stops every process cleanly, with no traceback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "geovec.cli.main", "serve", "--index", str(web_index.path),
                               "--port", str(port), "--workers", "2", "--precision", "float32"],
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                info = httpx.get(f"{url}/api/info", timeout=30).json()
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)
        assert info["batching"]["processes"] == 2

        def ask(text: str) -> list[str]:
            with httpx.Client(base_url=url, timeout=30) as client:
                response = client.post("/api/search", json={"text": text, "top_k": 3})
                response.raise_for_status()
                return [row["id"] for row in response.json()["results"]]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, TEXTS))
        with Searcher(web_index.path) as searcher:
            assert answers == [[h.id for h in searcher.search(SearchRequest(text=t, top_k=3)).hits] for t in TEXTS]
    finally:
        os.killpg(server.pid, signal.SIGINT)
        _, errors = server.communicate(timeout=60)
    assert "Traceback" not in errors, errors
    assert "exact search: numpy-float32 (index under" in errors  # the start lines say which exact kernel searches
    assert "queries embedded by the transformers/float32 pass" in errors  # and which query pass (as asked)
    deadline = time.monotonic() + 20
    while True:  # the worker processes are in the server's group: once they are gone, so is the group
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "a worker process outlived the server"
        time.sleep(0.2)
