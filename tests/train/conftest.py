"""Fixtures for the training tests (helpers live in train_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import rsicd_pairs

from geovec.train.examples import write_examples


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_examples(tmp_path_factory.mktemp("examples") / "rsicd-train.jsonl", rsicd_pairs(8))

