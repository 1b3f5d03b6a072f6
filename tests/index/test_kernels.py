"""Exact-search kernels give float32's very hits, and the chooser runs the one measured fastest on this machine."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geovec.index.kernels import MEASURED_MIN_ROWS, candidates, choose, float_ranking, top_k

KERNELS = sorted(candidates(32))


def clustered(rows: int, seed: int = 0) -> np.ndarray:
    """Tight clusters of unit vectors: many scores within int8's (or 8-bit FAISS's) rounding of each other."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, 32)).astype(np.float32)
    vectors = centres[rng.integers(0, 50, rows)] + 0.01 * rng.standard_normal((rows, 32)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("exclude", [False, True])
@pytest.mark.parametrize("name", KERNELS)
def test_every_kernel_finds_exactly_the_float32_top_k(name, exclude):
    matrix, queries = clustered(12_000), clustered(12, seed=1)
    excluded = np.random.default_rng(2).random(len(matrix)) < 0.4 if exclude else None
    kernel = candidates(32)[name]()
    kernel.prepare(matrix)
    ks = [1, 10, 100] * 4
    found = kernel.rank(queries, ks, excluded)
    scores = queries @ matrix.T
    if excluded is not None:
        scores[:, excluded] = -np.inf
    for row, k in enumerate(ks):
        columns, values = top_k(scores[row:row + 1], k)
        assert sorted(found[row][0]) == sorted(columns[0])  # the very same rows, although many nearly tie
        assert found[row][1] == pytest.approx(values[0], abs=1e-6)  # float32 scores, best first


@pytest.mark.parametrize("name", KERNELS)
def test_excluded_rows_never_come_back_even_when_fewer_than_k_remain(name):
    matrix = clustered(1_000)
    excluded = np.ones(len(matrix), bool)
    excluded[[3, 500, 999]] = False
    kernel = candidates(32)[name]()
    kernel.prepare(matrix)
    (columns, values), = kernel.rank(matrix[:1], [10], excluded)
    assert sorted(columns) == [3, 500, 999] and np.all(np.diff(values) <= 0)


def made_up(timings: dict[str, float], calls: list[str]):
    """A measure that reports given timings (ms per kernel name) instead of timing: the chooser's input."""
    def measure(kernel, queries):
        calls.append(kernel.name)
        return timings.get(kernel.name, 1000.0) * len(queries)
    return measure


@pytest.mark.parametrize("winner", KERNELS)
def test_the_chooser_runs_the_measured_fastest_and_caches_it(tmp_path, winner):
    matrix, calls = clustered(MEASURED_MIN_ROWS), []
    choice = choose(matrix, measure=made_up({winner: 1.0}, calls), cache_file=tmp_path / "kernels.json")
    assert choice.kernel.name == winner and choice.measured and set(calls) == set(KERNELS)
    assert float_ranking(matrix[:2], matrix, [5, 5], None)[1][0].tolist() == choice.kernel.rank(
        matrix[:2], [5, 5], None)[1][0].tolist()  # prepared over the matrix, ready to search
    cached = json.loads((tmp_path / "kernels.json").read_text())
    assert [entry["kernels"] for entry in cached.values()] == [{"1": winner, "8": winner}]
    again = choose(matrix, measure=made_up({}, calls := []), cache_file=tmp_path / "kernels.json")
    assert again.kernel.name == winner and not again.measured and calls == []  # read back, not measured again


def test_one_query_and_a_batch_each_run_the_kernel_measured_fastest_for_them(tmp_path):
    """A lone query and a server's batch weigh the same read of the matrix differently: each gets its own winner,
    and exact search over live vectors runs the one for its batch size."""
    timings = {"numpy-float32": {1: 1.0, 8: 9.0}, "faiss-flat": {1: 3.0, 8: 4.0}}

    def measure(kernel, queries):
        return timings.get(kernel.name, {}).get(len(queries), 1000.0)

    matrix = clustered(MEASURED_MIN_ROWS)
    choice = choose(matrix, measure=measure, cache_file=tmp_path / "kernels.json")
    assert choice.for_queries(1).name == "numpy-float32" and choice.for_queries(8).name == "faiss-flat"
    assert choice.for_queries(3).name == "numpy-float32" and choice.for_queries(64).name == "faiss-flat"
    assert "numpy-float32 for 1, faiss-flat for 8" in choice.summary()
    again = choose(matrix, measure=made_up({}, calls := []), cache_file=tmp_path / "kernels.json")
    assert again.names() == {"1": "numpy-float32", "8": "faiss-flat"} and calls == []  # read back per size


def test_a_changed_isa_cap_or_size_is_measured_again(tmp_path, monkeypatch):
    matrix, calls, cache = clustered(MEASURED_MIN_ROWS), [], tmp_path / "kernels.json"
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    assert choose(matrix, measure=made_up({"numpy-float32": 1.0}, calls), cache_file=cache).measured
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    capped = choose(matrix, measure=made_up({"faiss-sq8": 1.0}, calls := []), cache_file=cache)
    assert capped.measured and capped.kernel.name == "faiss-sq8" and capped.key["env"]["ATEN_CPU_CAPABILITY"] == "avx2"
    assert len(json.loads(cache.read_text())) == 2  # both choices kept, one per environment
    bigger = np.vstack([matrix, matrix])
    assert choose(bigger, measure=made_up({}, calls := []), cache_file=cache).measured and calls  # new size bucket


def test_small_indexes_use_numpy_without_measuring(tmp_path):
    choice = choose(clustered(MEASURED_MIN_ROWS - 1), measure=made_up({}, calls := []),
                    cache_file=tmp_path / "kernels.json")
    assert choice.kernel.name == "numpy-float32" and calls == [] and not (tmp_path / "kernels.json").exists()


def test_a_damaged_cache_is_measured_again(tmp_path):
    cache = tmp_path / "kernels.json"
    cache.write_text("{not json")
    choice = choose(clustered(MEASURED_MIN_ROWS), measure=made_up({"numpy-float32": 1.0}, []), cache_file=cache)
    assert choice.measured and json.loads(cache.read_text())


def test_a_cache_that_cannot_be_written_is_named_and_the_search_goes_on(tmp_path, capfd):
    (tmp_path / "home").write_text("a file where GEOVEC_HOME's folder should be")
    cache = tmp_path / "home" / "kernels.json"
    choice = choose(clustered(MEASURED_MIN_ROWS), measure=made_up({"numpy-float32": 1.0}, []), cache_file=cache)
    assert choice.measured and choice.kernel.name == "numpy-float32"
    assert "kernels.json: cannot save the exact-search kernel measurement" in capfd.readouterr().err
