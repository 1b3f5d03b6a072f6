"""The dataset fixtures under tests/data (written by tests/data/make_fixtures.py) and helpers to read them in tests."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "data"
_spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
make_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixtures)  # type: ignore[union-attr]


def texts(items) -> list[str]:
    return [item.segments[0].text for item in items]


def by_id(queries) -> dict:
    return {q.id: q for q in queries}


def copy(tmp_path: Path, *folders: str) -> Path:
    """``folders`` of the fixtures copied under ``tmp_path`` (to break them without touching the originals)."""
    for folder in folders:
        shutil.copytree(FIXTURES / folder, tmp_path / folder)
    return tmp_path
