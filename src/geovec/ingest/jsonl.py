"""Reading JSONL files whose every error names the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from geovec.errors import GeovecError


def iter_jsonl(path: str | Path, what: str) -> Iterator[tuple[str, Any]]:
    """Yield ``("FILE:LINE", parsed object)`` for each non-blank line; ``what`` names the file in errors.

    Lines are decoded one by one (not by a text-mode file), so bytes that are not UTF-8 are refused naming their
    line instead of surfacing as a UnicodeDecodeError from somewhere inside the read.
    """
    path = Path(path)
    if not path.is_file():
        raise GeovecError(f"{what} file not found: {path}")
    try:
        with path.open("rb") as lines:
            for number, raw in enumerate(lines, start=1):
                line = _decoded(raw, f"{path}:{number}")
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{number}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise GeovecError(f"{path}:{number}: not valid JSON ({exc.msg}): {what} files hold one JSON "
                                      "value per line") from None
    except OSError as exc:
        raise GeovecError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None


def _decoded(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GeovecError(f"{where}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}): "
                          "save the file as UTF-8 JSON lines") from None
