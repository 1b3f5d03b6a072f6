"""Atomic file writes: readers (and a crashed writer's successor) see the old file or the new one, whole."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from geovec.errors import GeovecError

_UMASK = os.umask(0)
os.umask(_UMASK)


def disk_full(path: str | Path) -> GeovecError:
    """The one message for a full disk, wherever it is met (files, SQLite): what to do, and that nothing is lost."""
    return GeovecError(f"disk full while writing {path}: free space and re-run; records already written are kept")


def write_error(path: str | Path, exc: OSError) -> GeovecError:
    """An OSError met writing ``path`` as a user can act on it (full disk, no permission, a folder in the way)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or (exc.errno is None and _nearly_full(Path(path))):
        return disk_full(path)  # errno None: a short write (numpy's "N requested and M written")
    return GeovecError(f"cannot write {path}: {exc.strerror or exc}")


def _nearly_full(path: Path) -> bool:
    folder = path if path.is_dir() else path.parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 1 << 20


def temp_prefix(target: str | Path) -> str:
    """How the temporary files of ``target`` are named while being written (so a folder scan can tell them)."""
    return f".{Path(target).name}."


def atomic_write(target: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(temp_path)`` for a temporary file beside ``target``, fsync it, then rename it over ``target``."""
    _write_then(target, write, os.replace)


def create_exclusive(target: str | Path, write: Callable[[str], None]) -> None:
    """Like ``atomic_write``, but never over an existing ``target``: FileExistsError if one is there already.

    Why a hard link: it appears whole (like a rename) and fails if the name is taken (unlike a rename), so two
    processes creating the same file cannot overwrite each other's.
    """
    _write_then(target, write, os.link)


def _write_then(target: str | Path, write: Callable[[str], None], publish: Callable[[str, Path], None]) -> None:
    """Write a temporary file beside ``target`` and ``publish`` it there; an OSError becomes a GeovecError that
    names ``target`` (FileExistsError from ``publish`` is left to the caller, who knows what it means)."""
    target = Path(target)
    temp = None
    try:
        handle, temp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=".tmp", dir=target.parent)
        os.close(handle)
        write(temp)
        with open(temp, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(temp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        publish(temp, target)
    except FileExistsError:
        raise
    except OSError as exc:
        raise write_error(target, exc) from None
    finally:
        if temp is not None and os.path.exists(temp):
            os.unlink(temp)


def save_npy_atomic(target: str | Path, array: np.ndarray) -> None:
    def write(temp: str) -> None:
        with open(temp, "wb") as handle:
            np.save(handle, array)

    atomic_write(target, write)


def write_text_atomic(target: str | Path, text: str) -> None:
    atomic_write(target, lambda temp: Path(temp).write_text(text, encoding="utf-8"))
