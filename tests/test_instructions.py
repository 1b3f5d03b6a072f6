"""Models phrase their inputs exactly as the benchmark's tasks do, without importing the benchmark."""

from __future__ import annotations

import subprocess
import sys

from geovec.bench import get_task
from geovec.models import get_spec


def test_loading_a_model_registers_no_benchmark_task():
    code = ("import sys, geovec.models.mini, geovec.models.vlm.encoder; "
            "print([m for m in sys.modules if m.startswith('geovec.bench')])")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "[]"


def test_geovec_mini_indexes_with_the_instructions_it_was_trained_and_benchmarked_with():
    spec, task = get_spec("geovec-mini"), get_task("rsicd-retrieval").metadata
    assert spec.item_instruction == task.query_instruction  # images, as in image -> caption
    assert spec.query_instruction == task.candidate_instruction  # a text query finds images as a caption would
