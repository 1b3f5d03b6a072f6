"""Atomic file writes: readers (and a crashed writer's successor) see the old file or the new one, whole."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(target: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(temp_path)`` for a temporary file beside ``target``, fsync it, then rename it over ``target``."""
    target = Path(target)
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        write(temp)
        with open(temp, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(temp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def save_npy_atomic(target: str | Path, array: np.ndarray) -> None:
    def write(temp: str) -> None:
        with open(temp, "wb") as handle:
            np.save(handle, array)

    atomic_write(target, write)


def write_text_atomic(target: str | Path, text: str) -> None:
    atomic_write(target, lambda temp: Path(temp).write_text(text, encoding="utf-8"))
