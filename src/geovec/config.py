"""Where geovec finds shared data and keeps its own files.

``GEOVEC_DATA`` points at the shared data folder (default: ``../shared/data`` next to the project checkout,
then ``./shared/data``); ``GEOVEC_HOME`` is where indexes and caches live (default ``~/.cache/geovec``).
"""

from __future__ import annotations

import os
from pathlib import Path

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The shared remote-sensing data folder (see its MANIFEST.md)."""
    env = os.environ.get("GEOVEC_DATA")
    if env:
        return Path(env).expanduser()
    for candidate in (_PROJECT_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data",
                      Path.cwd() / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return _PROJECT_ROOT.parent / "shared" / "data"


def home_dir() -> Path:
    """geovec's own writable folder for indexes and embedding caches."""
    return Path(os.environ.get("GEOVEC_HOME", Path.home() / ".cache" / "geovec")).expanduser()


def default_index_path() -> Path:
    """The index the main job (``geovec quickstart``) builds and ``geovec search`` reads by default."""
    return home_dir() / "indexes" / "default"
