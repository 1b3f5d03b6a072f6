"""The house rules on imports, checked on every test run: layers only downwards, no cycles, no private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import geovec

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(geovec.__file__).resolve().parent

def test_import_layers_and_no_cycles():
    """The contracts in pyproject.toml ([tool.importlinter]) hold for the package under test."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _private_imports(path: Path) -> list[str]:
    """``from geovec.x import _name`` lines of ``path`` that reach into another module's private names."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("geovec") \
                and node.module != module:
            found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {node.module}.{alias.name}"
                      for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


def test_no_private_name_is_imported_across_modules():
    found = [line for path in sorted(PACKAGE.rglob("*.py")) for line in _private_imports(path)]
    assert not found, "\n".join(found)
