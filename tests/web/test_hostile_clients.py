"""A real uvicorn server under bad, slow and unlucky clients: one client's bad body never reaches another's answer,
a frozen worker process is dropped while the others go on being answered, a stalled body times out."""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import suppress

import numpy as np
import pytest
import raw_http

from geovec.index import Record, VectorIndex
from geovec.ingest import IndexItem, index_items
from geovec.inputs import as_input
from geovec.models import load_model
from geovec.web import create_app

httpx = pytest.importorskip("httpx")

CAPTIONS = ["an airport with two runways", "a bridge over a wide river", "a dense green forest", "a football stadium",
            "storage tanks in a port", "farmland with irrigation circles", "a sandy beach next to the sea",
            "many boats moored in a marina"]
POISON = [  # (raw JSON body, status): each must be refused alone, before it joins anyone's batch
    (b'{"text": "harbour \\ud800"}', 400),  # valid JSON, a lone surrogate: the tokenizer raises TypeError on it
    (b'{"text": "harbour \xff\xfe"}', 422),  # not UTF-8
    (b"[" * 100_000 + b"]" * 100_000, 422),  # nested past Python's recursion limit
    (b'{"text": "harbour", "top_k": ' + b"9" * 5_000 + b"}", 422),  # past Python's int-from-text digit limit
    (b'{"text": "harbour", "top_k": true}', 422),
]


@pytest.fixture(scope="module")
def minilm_index(tmp_path_factory):
    embedder = load_model("minilm")
    path = tmp_path_factory.mktemp("hostile") / "index"
    items = [IndexItem(Record(id=f"scene-{n}", lat=10.0, lon=float(n), captions=[text]), (as_input(text),))
             for n, text in enumerate(CAPTIONS)]
    with VectorIndex.create(path, embedder.dim, model={"name": "minilm", "path": None}) as store:
        index_items(items, embedder, store, show_progress=False)
    return path


def answer_of(response) -> list[tuple[str, float]]:
    return [(row["id"], round(row["score"], 4)) for row in response.json()["results"]]


def ask_until(url: str, text: str, stop: threading.Event, expected: list, log: list) -> None:
    """One normal user: the same query again and again; each answer logged as (started, seconds, status, right)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = client.post("/api/search", json={"text": text, "top_k": 3})
                status, right = response.status_code, response.status_code == 200 and answer_of(response) == expected
            except httpx.TransportError:
                status, right = 0, False
            log.append((started, time.monotonic() - started, status, right))


def users(url: str, expected: dict[str, list], stop: threading.Event) -> tuple[list[threading.Thread], list]:
    log: list = []
    threads = [threading.Thread(target=ask_until, args=(url, text, stop, answer, log), daemon=True)
               for text, answer in expected.items()]
    for thread in threads:
        thread.start()
    return threads, log


def wait_for(enough, least: float, most: float = 15.0) -> None:
    """At least ``least`` seconds, then until ``enough()`` or ``most`` seconds (a busy machine answers slower)."""
    started = time.monotonic()
    time.sleep(least)
    while not enough() and time.monotonic() - started < most:
        time.sleep(0.1)


def sequential_answers(url: str) -> dict[str, list]:
    """Every user's answer, asked one at a time before anything else runs: what each must keep getting."""
    with httpx.Client(base_url=url, timeout=30) as client:
        expected = {text: answer_of(client.post("/api/search", json={"text": text, "top_k": 3})) for text in CAPTIONS}
    assert len({answer[0][0] for answer in expected.values()}) == len(CAPTIONS)  # a shifted answer would show
    return expected


@pytest.mark.slow
def test_poisoned_requests_get_4xx_and_never_touch_other_users_answers(minilm_index, serve):
    app = create_app(minilm_index, workers=2, query_cache=0, precision="float32")
    with serve(app) as url:
        assert httpx.get(f"{url}/api/info", timeout=30).json()["batching"]["processes"] == 2
        expected = sequential_answers(url)
        stop_users, stop_poison, refused = threading.Event(), threading.Event(), []

        def poison() -> None:
            with httpx.Client(base_url=url, timeout=10) as client:
                while not stop_poison.is_set():
                    for body, status in POISON:
                        response = client.post("/api/search", content=body,
                                               headers={"content-type": "application/json"})
                        refused.append((status, response.status_code, response.text))  # JSON, or a 500's text
                    time.sleep(0.01)

        attacker = threading.Thread(target=poison, daemon=True)
        threads, log = users(url, expected, stop_users)
        attacker.start()
        wait_for(lambda: len(log) >= 3 * len(CAPTIONS) and len(refused) >= 2 * len(POISON), least=2.5)
        stop_poison.set()
        attacker.join(timeout=30)
        attack_over = time.monotonic()
        wait_for(lambda: sum(e[0] >= attack_over for e in log) >= 2 * len(CAPTIONS), least=1.0)
        stop_users.set()
        for thread in threads:
            thread.join(timeout=30)
        workers_left = len(app.state.web.batcher.workers)
    during, after = [e for e in log if e[0] < attack_over], [e for e in log if e[0] >= attack_over]
    assert [e for e in log if e[2] != 200] == []  # no 500, no refusal, no timeout for a normal user
    assert [e for e in log if not e[3]] == []  # and never another query's results, during or after
    assert [r for r in refused if r[0] != r[1] or '"error":' not in r[2]] == []  # each poison body: its 4xx
    assert len(during) >= 3 * len(CAPTIONS) and len(after) >= 2 * len(CAPTIONS) and len(refused) >= 2 * len(POISON)
    assert workers_left == 1  # the worker process was never lost to a bad query


@pytest.mark.slow
def test_a_frozen_worker_is_killed_and_dropped_while_users_keep_being_answered(minilm_index, serve):
    """SIGSTOP on a worker process: a reply that misses its deadline costs that batch a little, the worker is killed
    and its share computed in the server, and every later request is answered at the usual speed."""
    app = create_app(minilm_index, workers=2, query_cache=0, precision="float32", worker_timeout_s=0.5)
    with serve(app) as url:
        expected = sequential_answers(url)
        (worker,) = app.state.web.batcher.workers.pids
        stop = threading.Event()
        threads, log = users(url, dict(list(expected.items())[:4]), stop)
        try:
            time.sleep(0.5)
            os.kill(worker, signal.SIGSTOP)
            frozen = time.monotonic()
            wait_for(lambda: len(app.state.web.batcher.workers) == 0, least=0.0, most=10.0)
            dropped = time.monotonic()  # the first deadline has passed: the worker is killed
            wait_for(lambda: sum(e[0] > dropped for e in log) >= 20, least=2.0)
        finally:
            with suppress(ProcessLookupError):
                os.kill(worker, signal.SIGCONT)  # what an operator does; the server has killed it by then
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        workers_left = len(app.state.web.batcher.workers)
    assert [e for e in log if e[2] != 200 or not e[3]] == []  # every request answered, and rightly
    assert workers_left == 0 and dropped - frozen < 5.0
    settled = [seconds for started, seconds, _, _ in log if started > dropped]  # after the first deadline
    assert len(settled) >= 20 and np.percentile(settled, 95) < 1.0
    with pytest.raises(ProcessLookupError):  # killed and reaped by the server, not left behind
        os.kill(worker, 0)


@pytest.fixture(scope="module")
def tiny_url(web_index, serve):
    with serve(create_app(web_index.path, body_timeout_s=0.5)) as url:
        yield url


def raw_post(url: str, head: dict[str, str], body: bytes, timeout: float = 10) -> tuple[int, dict]:
    """A JSON POST /api/search written by hand (httpx would not send a Content-Length its body does not fill)."""
    return raw_http.raw_post(url, "/api/search", {"Content-Type": "application/json", **head}, body, timeout)


def test_a_body_shorter_than_its_content_length_times_out_with_408(tiny_url):
    started = time.monotonic()
    status, answer = raw_post(tiny_url, {"Content-Length": "100"}, b'{"text": "a harbour"}')
    assert status == 408 and time.monotonic() - started < 5
    assert answer["error"].startswith("body: the 100 bytes its Content-Length announces did not arrive within 0.5 s")
    assert httpx.post(f"{tiny_url}/api/search", json={"text": "a harbour"}, timeout=30).status_code == 200


@pytest.mark.parametrize("body, status, message", [
    (b'{"text": "harbour \\ud800"}', 400, "text: not valid UTF-8 (lone surrogate U+D800 at character 8)"),
    (b'{"text": "harbour \xff\xfe"}', 422, "body: not valid UTF-8 (byte 18 is b'\\xff')"),
    (b"[" * 100_000 + b"]" * 100_000, 422, "body: JSON nested too deeply to read"),
    (b'{"text": "a", "top_k": ' + b"9" * 5_000 + b"}", 422, "body: a number in it has too many digits to read"),
    (b'{"text": "a", "top_k": true}', 422, "top_k: Input should be a valid integer"),
    (b'{"text": "a", "top_k": 2.0}', 422, "top_k: Input should be a valid integer"),
])
def test_bodies_python_cannot_read_are_4xx_with_what_to_fix(tiny_url, body, status, message):
    got, answer = raw_post(tiny_url, {"Content-Length": str(len(body))}, body)
    assert got == status and answer["error"].startswith(message), answer
    assert "Traceback" not in answer["error"] and "set_int_max_str_digits" not in answer["error"]
