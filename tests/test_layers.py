"""The code's shape stays as the README draws it: imports run one way, server -> schema -> resolvers -> auth -> models,
with errors.py a leaf that imports none of them (import-linter's layers contract in pyproject.toml, function-local
imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("server", "schema", "resolvers", "auth", "models")


def test_imports_follow_the_layer_order():
    # In a process of its own: import-linter reconfigures logging, which the other tests' log captures rely on.
    run = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_error_hierarchy_imports_no_layer():
    tree = ast.parse((ROOT / "errors.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name.split(".")[0] for name in imported} & set(LAYERS)
