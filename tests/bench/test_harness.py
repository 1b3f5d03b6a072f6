"""The evaluation harness with an exactly predictable embedder: scores, cache, result records, report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from geovec.bench.evaluate import EVALUATORS, evaluate_data
from geovec.bench.results import markdown_report, read_results, write_report
from geovec.bench.run import run_loaded
from geovec.bench.task import PROTOCOLS, TaskMetadata
from geovec.datasets import CandidateQuery, DatasetError, Reference, RetrievalSplit
from geovec.errors import GeovecError
from geovec.inputs import Interleaved, TextSegment, render_text
from geovec.models.base import BaseEmbedder
from geovec.models.cache import EmbeddingCache

FIXTURES = Path(__file__).parent / "data"


class KeywordEmbedder(BaseEmbedder):
    """One-hot over keywords in the text: a real embedder whose scores can be computed by hand."""

    name = "keywords"
    modalities = frozenset({"text", "point", "box"})

    def __init__(self, vocabulary: list[str]) -> None:
        self.vocabulary = vocabulary
        self.dim = len(vocabulary) + 1
        self.embedded = 0

    def embed_batch(self, items):
        self.embedded += len(items)
        out = np.zeros((len(items), self.dim), np.float32)
        out[:, -1] = 1e-3  # no all-zero rows
        for row, item in enumerate(items):
            words = render_text(item, include_instruction=False).lower().split()
            for column, keyword in enumerate(self.vocabulary):
                out[row, column] = float(keyword in words)
        return out


def text(value: str) -> Interleaved:
    return Interleaved((TextSegment(value),))


def meta(name: str, protocol: str = "candidates", **kw) -> TaskMetadata:
    return TaskMetadata(name=name, category="vqa" if protocol == "candidates" else "cross-modal-retrieval",
                        description="test", dataset="toy", split="test", data_path="", query_kinds=("text",),
                        candidate_kinds=("text",), protocol=protocol, **kw)  # type: ignore[arg-type]


VOCAB = ["port", "forest", "airport", "river"]
CANDIDATES = tuple(text(w) for w in ("port", "forest", "airport", "river"))
QUERIES = [CandidateQuery("q1", text("a busy port"), CANDIDATES, frozenset({0})),
           CandidateQuery("q2", text("dense forest"), CANDIDATES, frozenset({1})),
           CandidateQuery("q3", text("airport apron"), CANDIDATES, frozenset({2})),
           CandidateQuery("q4", text("a river with a port"), CANDIDATES, frozenset({3}))]  # tie port/river -> port wins
SPLIT = RetrievalSplit(("img-port", "img-forest"), (text("port"), text("forest")),
                       (text("port cranes"), text("river port"), text("forest"), text("airport")), (0, 0, 1, 1))


@pytest.fixture
def cache(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    yield cache
    cache.close()


def test_candidate_scores_are_exact(cache):
    outcome = evaluate_data(meta("toy-vqa"), QUERIES, KeywordEmbedder(VOCAB), cache)
    assert outcome.scores["precision_at_1"] == 75.0 and outcome.scores["main_score"] == 75.0
    assert outcome.counts == {"queries": 4, "candidates": 16, "unique_inputs": 8}


def test_retrieval_scores_are_exact(cache):
    outcome = evaluate_data(meta("toy-ret", "retrieval"), SPLIT, KeywordEmbedder(VOCAB), cache)
    # image "port": own texts 0,1 score 1, others 0 -> R@1 hit; image "forest": text 2 -> hit
    # texts: "port cranes"->port hit, "river port"->port hit, "forest"->forest hit, "airport"-> tie, image 0 wins: miss
    assert outcome.scores["i2t_r1"] == 100 and outcome.scores["t2i_r1"] == 75 and outcome.scores["t2i_r5"] == 100
    assert outcome.scores["mean_recall"] == pytest.approx((100 * 3 + 75 + 100 + 100) / 6)


def test_second_run_encodes_nothing_and_gives_identical_scores(tmp_path):
    embedder = KeywordEmbedder(VOCAB)
    first = EmbeddingCache(tmp_path / "cache.sqlite")
    before = evaluate_data(meta("toy-vqa"), QUERIES, embedder, first)
    first.close()
    assert embedder.embedded == 8 and before.cache == {"hits": 0, "misses": 8}
    reopened = EmbeddingCache(tmp_path / "cache.sqlite")  # as after a restart
    after = evaluate_data(meta("toy-vqa"), QUERIES, embedder, reopened)
    assert embedder.embedded == 8 and after.cache == {"hits": 8, "misses": 0}
    assert after.scores == before.scores and after.fingerprint == before.fingerprint
    reopened.close()


def test_instructions_change_the_cache_identity(cache):
    embedder = KeywordEmbedder(VOCAB)
    evaluate_data(meta("a"), QUERIES, embedder, cache)
    evaluate_data(meta("b", query_instruction="Find the answer:"), QUERIES, embedder, cache)
    assert embedder.embedded == 8 + 4  # queries re-embedded with their instruction, candidates reused


def test_records_report_and_refusals(tmp_path, cache):
    tasks = [(meta("toy-vqa"), QUERIES), (meta("toy-ret", "retrieval"), SPLIT),
             (TaskMetadata(name="toy-image", category="scene-classification", description="", dataset="toy",
                           split="test", data_path="", query_kinds=("image",), candidate_kinds=("text",),
                           protocol="candidates"), QUERIES)]
    lines = run_loaded(tasks, KeywordEmbedder(VOCAB), tmp_path / "results", Path("."), cache, show_progress=False)
    assert [(line.task, line.status) for line in lines] == [("toy-vqa", "ok"), ("toy-ret", "ok"),
                                                            ("toy-image", "skipped")]
    assert "cannot embed image segments" in lines[2].detail
    records = read_results(tmp_path / "results")
    assert {r["task"]["name"] for r in records} == {"toy-vqa", "toy-ret"}
    record = json.loads((tmp_path / "results" / "keywords" / "toy-vqa.json").read_text())
    assert record["scores"]["precision_at_1"] == 75.0 and record["model"]["name"] == "keywords"
    assert record["dataset"]["fingerprint"] and record["geovec_version"] and record["timing"]["total_s"] >= 0
    markdown, png = write_report(tmp_path / "results")
    text_report = markdown.read_text()
    assert "| model | cross-modal-retrieval | vqa | overall |" in text_report
    assert "| keywords | 95.83 | 75.00 | 85.42 |" in text_report
    assert "| toy-vqa | vqa | 75.00 |" in text_report
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert not list((tmp_path / "results").rglob("*.tmp"))


def test_checkpoints_of_one_model_keep_their_own_results_beside_old_files(tmp_path, cache):
    out = tmp_path / "results"
    shutil.copytree(FIXTURES / "results-v0.1.0", out)  # the layout before revisions: <out>/<model>/<task>.json
    first, second = KeywordEmbedder(VOCAB), KeywordEmbedder(["airport"])  # the second ties on all but airport
    first.revision, second.revision = "aaa111", "bbb222"
    for embedder in (first, second):
        run_loaded([(meta("toy-vqa"), QUERIES)], embedder, out, Path("."), cache, show_progress=False)
    for revision, score in (("aaa111", 75.0), ("bbb222", 50.0)):
        record = json.loads((out / "keywords" / revision / "toy-vqa.json").read_text())
        assert record["model"]["revision"] == revision and record["scores"]["main_score"] == score
    report = markdown_report(read_results(out))
    assert "| task | category | keywords@aaa111 | keywords@bbb222 | minilm |" in report
    assert "| toy-vqa | vqa | 75.00 | 50.00 | – |" in report and "| mock-point-to-point |" in report


def test_every_protocol_has_an_evaluator_that_refuses_data_of_another_shape(cache):
    assert set(EVALUATORS) == set(PROTOCOLS)
    embedder = KeywordEmbedder(VOCAB)
    with pytest.raises(GeovecError, match="task toy-ret: a retrieval task must load a RetrievalSplit"):
        evaluate_data(meta("toy-ret", "retrieval"), QUERIES, embedder, cache)
    with pytest.raises(GeovecError, match="task toy-vqa: a candidates task must load a non-empty list of "
                                          "CandidateQuery"):
        evaluate_data(meta("toy-vqa"), SPLIT, embedder, cache)
    with pytest.raises(GeovecError, match="task toy-t2t: a t2t task must load a TextToTextSplit"):
        evaluate_data(meta("toy-t2t", "t2t"), SPLIT, embedder, cache)


def test_bad_task_data_is_named():
    with pytest.raises(DatasetError, match="query 'q9': its answer is not among its candidates"):
        CandidateQuery("q9", text("port"), CANDIDATES, frozenset())
    with pytest.raises(DatasetError, match=r"query 'q9': positive indices \[7\] are outside its 4 candidates"):
        CandidateQuery("q9", text("port"), CANDIDATES, frozenset({7}))
    with pytest.raises(DatasetError, match="duplicate image ids: a"):
        RetrievalSplit(("a", "a"), (text("x"), text("y")), (text("x"), text("y")), (0, 1))
    with pytest.raises(DatasetError, match="image 'b' has no text"):
        RetrievalSplit(("a", "b"), (text("x"), text("y")), (text("x"),), (0,))


def test_duplicate_query_ids_fail_and_write_nothing(tmp_path, cache):
    twice = [QUERIES[0], QUERIES[0]]
    with pytest.raises(GeovecError, match="duplicate query id 'q1'"):
        run_loaded([(meta("dup"), twice)], KeywordEmbedder(VOCAB), tmp_path / "results", Path("."), cache)
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("*"))


def test_old_result_records_stay_readable():
    records = read_results(FIXTURES / "results-v0.1.0")
    report = markdown_report(records)
    assert "## Category averages" in report and "minilm" in report


def test_reference_rows_are_scored_on_the_same_answers_and_reported(tmp_path, cache):
    reversed_candidates = tuple(reversed(CANDIDATES))
    queries = [CandidateQuery(q.id, q.query, q.candidates, q.positives,
                              (Reference("blind", text("nothing")), Reference("moved", q.query, reversed_candidates)))
               for q in QUERIES]
    run_loaded([(meta("toy-vqa"), queries)], KeywordEmbedder(VOCAB), tmp_path / "results", Path("."), cache,
               show_progress=False)
    record = json.loads(next((tmp_path / "results").rglob("toy-vqa.json")).read_text())
    # blind: every candidate ties, so index 0 wins (q1 only); moved: the right words now sit where the answers are not
    assert record["scores"] == {"precision_at_1": 75.0, "precision_at_1_blind": 25.0, "precision_at_1_moved": 0.0,
                                "main_score": 75.0}
    plain = evaluate_data(meta("toy-vqa"), QUERIES, KeywordEmbedder(VOCAB), cache)
    assert record["dataset"]["fingerprint"] != plain.fingerprint  # reference inputs are part of the data
    report = markdown_report(read_results(tmp_path / "results"))
    assert "| task | model | P@1 | blind | moved |" in report
    assert "| toy-vqa | keywords | 75.00 | 25.00 | 0.00 |" in report
