"""Reading JSONL files whose every error names the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from geovec.errors import GeovecError


def iter_jsonl(path: str | Path, what: str) -> Iterator[tuple[str, Any]]:
    """Yield ``("FILE:LINE", parsed object)`` for each non-blank line; ``what`` names the file in errors."""
    path = Path(path)
    if not path.is_file():
        raise GeovecError(f"{what} file not found: {path}")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise GeovecError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
