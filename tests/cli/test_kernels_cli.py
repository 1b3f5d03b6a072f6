"""``geovec kernels``: the CPU, each exact-search kernel's timings at the index's size, and the one chosen; the same
for the query passes of the index's model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from geovec.index import Record, VectorIndex
from geovec.index.kernels import MEASURED_MIN_ROWS, candidates, cpu_description


def geovec(*args: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "GEOVEC_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "geovec.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_kernels_prints_the_cpu_the_timings_and_the_choice_it_caches(tmp_path):
    vectors = np.random.default_rng(0).standard_normal((MEASURED_MIN_ROWS, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with VectorIndex.create(tmp_path / "index", 32) as store:
        store.add([Record(id=f"v{n}") for n in range(len(vectors))], vectors)
    result = geovec("kernels", "--index", str(tmp_path / "index"), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"CPU: {cpu_description()['model']}" in result.stdout
    (entry,) = json.loads((tmp_path / "kernels.json").read_text()).values()
    chosen = entry["kernels"]
    assert set(chosen) == {"1", "8"} and set(chosen.values()) <= set(candidates(32))
    assert set(entry["timings_ms"]) == set(candidates(32))
    assert f"exact search runs {chosen['1']} for 1 query, {chosen['8']} for 8 queries" in result.stdout
    assert "(chosen)" in result.stdout
    # and the query pass of the index's model (minilm, recorded by none: its passes were never quality-checked)
    assert "query pass: transformers/float32 (the only quality-checked candidate: not measured)" in result.stdout


def test_kernels_of_a_missing_index_is_one_line_and_exit_2(tmp_path):
    result = geovec("kernels", "--index", str(tmp_path / "nothing"), home=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
