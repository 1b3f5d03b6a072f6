"""The shared search implementation (Python API = CLI = web) on a real index embedded with minilm."""

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from geovec.errors import GeovecError, GeovecInputError
from geovec.index import Record, VectorIndex
from geovec.ingest import IndexItem, index_items
from geovec.inputs import as_input
from geovec.models import load_model
from geovec.query import QueryBatcher, Searcher, SearchRequest, SearchWorkers

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


CAPTIONS = ["an airport with two runways", "a bridge over a wide river", "a dense green forest", "a football stadium",
            "storage tanks in a port", "a residential area with trees", "farmland with irrigation circles",
            "a sandy beach next to the sea", "warehouses in an industrial area", "a church in a town square",
            "a baseball field with a parking lot", "many boats moored in a marina"]


@pytest.fixture(scope="module")
def scenes_path(tmp_path_factory):
    """Twelve captioned places along a line of latitude, embedded with minilm and query/item instructions."""
    embedder = load_model("minilm")
    path = tmp_path_factory.mktemp("batching") / "index"
    model = {"name": "minilm", "path": None, "query_instruction": "Find the scene:", "item_instruction": "A scene:"}
    items = [IndexItem(Record(id=f"scene-{n}", lat=10.0, lon=float(n), captions=[text]), (as_input(text),))
             for n, text in enumerate(CAPTIONS)]
    with VectorIndex.create(path, embedder.dim, model=model) as store:
        index_items(items, embedder, store, show_progress=False)
    return path


def test_concurrent_requests_are_batched_and_each_gets_its_one_at_a_time_result(scenes_path):
    """Dynamic batching changes the cost, never the answer: own filters, k and instructions are kept."""
    requests = [SearchRequest(text=text, top_k=1 + n % 5, exact=n % 3 == 0,
                              within=(3.5, 0.0, 8.5, 20.0) if n % 4 == 1 else None,
                              instruction="A scene:" if n % 5 == 2 else None)
                for n, text in enumerate(["boats", "a plane on a runway", "trees", "a river crossing", "ships",
                                          "houses", "circles of crops", "the sea", "a sports ground", "tanks"] * 2)]
    with Searcher(scenes_path) as searcher:
        alone = [searcher.search(request) for request in requests]
        batcher = QueryBatcher(searcher, max_batch=8, max_wait_ms=5)
        try:
            futures = [batcher.submit(request) for request in requests]  # queued while the first batch runs
            batched = [future.result(timeout=60) for future in futures]
        finally:
            batcher.close()
    assert batcher.stats()["largest_batch"] > 1 and batcher.stats()["batches"] < len(requests)
    for one, many in zip(alone, batched):
        assert [h.id for h in many.hits] == [h.id for h in one.hits]
        assert [h.score for h in many.hits] == pytest.approx([h.score for h in one.hits], abs=1e-5)
    assert all(4 <= int(h.id.split("-")[1]) <= 8 for h in batched[1].hits)  # its area filter held


def gated_searcher(index, gate: threading.Event) -> Searcher:
    """The real searcher, each batch held at the door until the test sets ``gate``."""
    class GatedSearcher(Searcher):
        def search_batch(self, prepared, known=None):
            gate.wait(30)
            return super().search_batch(prepared, known)

    return GatedSearcher(index)


def test_users_who_queued_behind_a_batch_count_as_concurrent_so_the_next_batch_waits_for_all(scenes_path):
    """Users split into groups that take turns would stay split (each waiting a whole extra batch) if the batcher
    only remembered batch sizes: here 7 requests queue behind a batch of 1, and the next batch waits for the 8th."""
    gate = threading.Event()
    with gated_searcher(scenes_path, gate) as searcher:
        batcher = QueryBatcher(searcher, max_batch=32, max_wait_ms=5_000)
        try:
            futures = [batcher.submit(SearchRequest(text="boats"))]
            time.sleep(0.2)  # the first batch (of 1) is at the gate
            futures += [batcher.submit(SearchRequest(text=f"boats {n}")) for n in range(7)]
            gate.set()
            futures[0].result(timeout=30)
            time.sleep(0.3)  # the next batch has taken the 7 and waits for one more
            futures.append(batcher.submit(SearchRequest(text="trees")))
            assert all(future.result(timeout=30).hits for future in futures)
        finally:
            batcher.close()
    assert batcher.stats()["batches"] == 2 and batcher.stats()["largest_batch"] == 8


def test_a_caller_who_stopped_waiting_does_not_stop_the_batcher(scenes_path):
    """A request whose caller gave up (cancelled its future) is skipped, not answered into an error; the
    others in its batch and every later one are still answered."""
    gate = threading.Event()
    with gated_searcher(scenes_path, gate) as searcher:
        batcher = QueryBatcher(searcher, max_batch=8, max_wait_ms=5)
        try:
            gone, kept = batcher.submit(SearchRequest(text="boats")), batcher.submit(SearchRequest(text="trees"))
            assert gone.cancel()
            gate.set()
            assert kept.result(timeout=30).hits and batcher.search(SearchRequest(text="ships")).hits
        finally:
            batcher.close()


def test_worker_processes_answer_as_this_process_does_and_survive_losing_one(scenes_path):
    """A batch split over processes: the same hits and scores, errors stay with their query, the server's cache
    keeps what the workers embedded, and a worker that dies only costs its share being computed here."""
    texts = ["boats", "a plane on a runway", "trees", "a river crossing", "ships", "houses"]
    with Searcher(scenes_path, query_cache=32) as searcher:
        requests = [SearchRequest(text=text, top_k=3, within=(3.5, 0.0, 8.5, 20.0) if n == 2 else None)
                    for n, text in enumerate(texts)] + [SearchRequest(image=np.zeros((8, 8, 3), np.uint8)),
                                                        SearchRequest(text="boats " * 300)]  # over minilm's window
        prepared = [searcher.prepare(request) for request in requests]
        alone = [searcher.search(request) for request in requests[:-2]]
        searcher.cache = type(searcher.cache)(32)  # forget them: the workers must embed
        workers = SearchWorkers(searcher, 2)
        try:
            assert len(workers) == 2 and len(set(workers.pids)) == 2
            results = workers.search_batch(prepared)
            assert isinstance(results[-2], GeovecError) and "cannot embed image" in str(results[-2])
            too_long = results[-1]  # computed in a worker: the error crosses back whole, field and all
            assert isinstance(too_long, GeovecInputError) and too_long.field == "text" and "256" in str(too_long)
            for one, split in zip(alone, results):
                assert split.request is not None and [h.id for h in split.hits] == [h.id for h in one.hits]
                assert [h.score for h in split.hits] == pytest.approx([h.score for h in one.hits], abs=1e-5)
            assert searcher.cache.stats()["entries"] == len(texts)  # vectors embedded elsewhere, kept here
            os.kill(workers.pids[0], signal.SIGKILL)
            searcher.cache = type(searcher.cache)(32)
            again = workers.search_batch(prepared)
            assert len(workers) == 1
            assert [[h.id for h in r.hits] for r in again[:-2]] == [[h.id for h in r.hits] for r in alone]
        finally:
            workers.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="finds the worker through Linux's /proc")
def test_a_worker_killed_while_loading_says_what_to_do(scenes_path):
    """What the out-of-memory killer does to a worker that cannot fit one more copy of the index: a one-line error
    that names the way out, and no process left behind."""
    def kill_workers_as_they_start() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for entry in os.listdir("/proc"):
                try:
                    stat = open(f"/proc/{entry}/stat").read()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and \
                            b"serve_searches" in open(f"/proc/{entry}/cmdline", "rb").read():
                        os.kill(int(entry), signal.SIGKILL)
                        return
                except (OSError, ValueError, IndexError):
                    continue
            time.sleep(0.01)

    killer = threading.Thread(target=kill_workers_as_they_start)
    with Searcher(scenes_path) as searcher:
        killer.start()
        with pytest.raises(GeovecError, match=r"exited while opening the index and model \(exit code -9; out of "
                                              r"memory\?\).*--workers 1"):
            SearchWorkers(searcher, 1)
        killer.join()


def test_a_query_the_model_cannot_embed_fails_alone_in_its_batch(scenes_path):
    with Searcher(scenes_path) as searcher:
        good = searcher.prepare(SearchRequest(text="boats"))
        picture = searcher.prepare(SearchRequest(image=np.zeros((8, 8, 3), np.uint8)))  # minilm embeds no images
        results = searcher.search_batch([good, picture, good])
    assert isinstance(results[1], GeovecError) and "cannot embed image" in str(results[1])
    assert results[0].hits[0].id == results[2].hits[0].id == "scene-11"


def test_repeated_queries_skip_the_encoder_through_a_bounded_cache(scenes_path):
    with Searcher(scenes_path, query_cache=2) as searcher:
        first = searcher.search(SearchRequest(text="boats"))
        again = searcher.search(SearchRequest(text="boats"))
        assert searcher.cache.stats() == {"entries": 1, "capacity": 2, "hits": 1, "misses": 1}
        assert [(h.id, h.score) for h in again.hits] == [(h.id, h.score) for h in first.hits]
        searcher.search(SearchRequest(text="boats", instruction="A scene:"))  # another input: another entry
        searcher.search(SearchRequest(text="trees"))  # evicts the least recently used ("boats")
        searcher.search(SearchRequest(text="boats"))
        assert searcher.cache.stats() == {"entries": 2, "capacity": 2, "hits": 1, "misses": 4}
        assert searcher.prepare(SearchRequest(text="boats")).key.startswith(f"minilm@{searcher.embedder.revision}")


@pytest.mark.parametrize("text, message", [
    ("harbour " * 12_500, "query text is 100,000 characters long; at most 10,000"),
    ("harbour " * 300, "take 306 tokens; model 'minilm' reads at most 256"),  # instruction "Find the scene:" included
])
def test_over_long_query_text_is_refused_not_silently_cut(scenes_path, text, message):
    with Searcher(scenes_path) as searcher, pytest.raises(GeovecInputError, match=message):
        searcher.search(SearchRequest(text=text))


def test_an_index_built_by_another_revision_of_its_model_is_refused(tmp_path):
    """New weights (e.g. a new shipped geovec-mini) embed into another space: searching old vectors with them
    would answer nonsense, so the index says which revision filled it and a mismatch is an error."""
    embedder = load_model("minilm")
    path = tmp_path / "old"
    VectorIndex.create(path, embedder.dim, model={"name": "minilm", "path": None, "revision": "0ld0ld0ld0ld"}).close()
    with pytest.raises(GeovecError, match="revision 0ld0ld0ld0ld, but the model loaded now is revision"):
        Searcher(path)
    same = tmp_path / "same"
    VectorIndex.create(same, embedder.dim, model={"name": "minilm", "path": None,
                                                 "revision": embedder.revision}).close()
    with Searcher(same) as searcher:  # the same revision (and indexes from before revisions were recorded) open
        assert searcher.embedder.revision == embedder.revision


def unchecked(searcher: Searcher, text: str, like: SearchRequest):
    """``like``'s prepared query with ``text`` put in after every check (its text segment's own included): what a
    check nobody wrote would let by."""
    prepared = searcher.prepare(like)
    (segment,) = prepared.query.segments
    object.__setattr__(segment, "text", text)  # past the frozen segment's validation, as a missed check would be
    return replace(prepared, request=replace(prepared.request, text=text), key=f"{prepared.key}\x1funchecked")


def test_a_query_the_tokenizer_crashes_on_fails_alone_with_its_field_named(scenes_path, capfd):
    """Whatever one query raises inside the model (here the tokenizer's TypeError on a lone surrogate that got past
    the checks) is that query's error: the others in its batch get their own results, the user a clear message."""
    with Searcher(scenes_path) as searcher:
        good = [searcher.prepare(SearchRequest(text=text, top_k=3)) for text in ("boats", "an airport")]
        alone = [searcher.search_batch([p])[0] for p in good]
        poison = unchecked(searcher, "harbour \ud800", SearchRequest(text="harbour", top_k=3))
        results = searcher.search_batch([good[0], poison, good[1]])
    assert [[h.id for h in r.hits] for r in (results[0], results[2])] == [[h.id for h in r.hits] for r in alone]
    error = results[1]
    assert isinstance(error, GeovecInputError) and error.field == "text"
    assert "could not be embedded or searched" in str(error) and "Traceback" not in str(error)
    assert "Traceback" in capfd.readouterr().err  # the details are in the server's log


def test_searcher_refuses_text_that_is_not_unicode_before_it_joins_a_batch(scenes_path):
    with Searcher(scenes_path) as searcher:
        for request, field_name in [(SearchRequest(text="harbour \ud800"), "text"),
                                    (SearchRequest(text="boats", instruction="Find \udfff"), "instruction"),
                                    (SearchRequest(text="boats", top_k=True), "top_k"),
                                    (SearchRequest(text="boats", top_k=2.5), "top_k")]:
            with pytest.raises(GeovecInputError) as refused:
                searcher.prepare(request)
            assert refused.value.field == field_name


class FailsWhenTold(Searcher):
    """The real searcher, whose next batch in this process raises (a bug between sending shares and reading them)."""

    fail_next = False

    def search_batch(self, prepared, known=None):
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("a bug in the server's own share")
        return super().search_batch(prepared, known)


def test_a_worker_reply_left_unread_is_never_taken_for_the_next_batch(scenes_path):
    """The server's share of batch 1 fails after the worker got its share: the worker's reply to batch 1 waits
    unread in the pipe. Batch 2 must get batch 2's answers, not batch 1's (one user handed another's results)."""
    texts = ["an airport", "many boats", "a football stadium", "a sandy beach"]
    with FailsWhenTold(scenes_path) as searcher:
        first, second = [[searcher.prepare(SearchRequest(text=t, top_k=2)) for t in pair]
                         for pair in (texts[:2], texts[2:])]
        expected = [[h.id for h in searcher.search_batch([p])[0].hits] for p in second]
        workers = SearchWorkers(searcher, 1)
        try:
            searcher.fail_next = True
            with pytest.raises(RuntimeError, match="a bug"):
                workers.search_batch(first)  # the worker computes "many boats" and replies; nobody reads it
            assert [[h.id for h in r.hits] for r in workers.search_batch(second)] == expected
            assert len(workers) == 1  # a stale reply is no reason to drop the worker
        finally:
            workers.close()


def test_the_search_command_refuses_an_argument_that_is_not_utf8_in_one_line(index_path):
    """The CLI shares the check: a byte that is not UTF-8 (Python keeps it as a lone surrogate) reached the tokenizer
    and ended in a TypeError's traceback."""
    result = subprocess.run([sys.executable, "-m", "geovec.cli.main", "search", "--index", str(index_path),
                             "--text", b"harbour \xff"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [("error: text: not valid UTF-8 (byte 0xff at character 8): give the text "
                                           "encoded as UTF-8")]


def test_searcher_embeds_with_its_own_copy_and_leaves_the_callers_embedder_as_it_was(tmp_path):
    """Searcher(precision="bfloat16") used to switch the caller's embedder to bfloat16 in place."""
    mini = load_model("geovec-mini")
    path = tmp_path / "index"
    items = [IndexItem(Record(id=i, captions=[text]), (as_input(text),)) for i, text, _, _ in PLACES]
    with VectorIndex.create(path, mini.dim, model={"name": "geovec-mini", "path": None}) as store:
        index_items(items, mini, store)
    before = mini.encode(["boats in a port", "a forest"])
    with Searcher(path, embedder=mini, precision="bfloat16") as searcher:
        assert searcher.embedder is not mini and searcher.embedder.precision == "bfloat16"
        assert searcher.search(SearchRequest(text="boats in a port", top_k=1)).hits[0].id.startswith("harbour")
        assert searcher.query_pass_info()["query_pass"] == "lean/bfloat16"  # the caller's pass, in bfloat16
    assert mini.precision == "float32"
    assert np.array_equal(mini.encode(["boats in a port", "a forest"]), before)  # bit-identical float32
